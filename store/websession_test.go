package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

// TestWebSessions: a dashboard session is stored under its token's hash (never the token),
// read back and kept alive by each touch, for the idle TTL but never past its absolute end,
// and gone after a delete or once that end has passed.
func TestWebSessions(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	ws := store.WebSession{KeySHA256: strings.Repeat("ab", 32), CSRF: "csrf-token", CreatedAt: now, ExpiresAt: now.Add(8 * time.Hour)}
	const token = "token-of-the-browser"
	if err := e.st.CreateWebSession(c, token, ws, time.Hour, now); err != nil {
		t.Fatal(err)
	}
	keys := e.rdb.Keys(c, "*").Val()
	if len(keys) != 1 || !strings.HasPrefix(keys[0], store.Prefix+"websession:") || strings.Contains(keys[0], token) {
		t.Fatalf("keys %v", keys)
	}
	if ttl := e.rdb.PTTL(c, keys[0]).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL %v, want the idle timeout", ttl)
	}
	got, err := e.st.TouchWebSession(c, token, time.Hour, now.Add(30*time.Minute))
	if err != nil || got.KeySHA256 != ws.KeySHA256 || got.CSRF != ws.CSRF || !got.ExpiresAt.Equal(ws.ExpiresAt) {
		t.Fatalf("touch: %+v %v", got, err)
	}
	// Half an hour before the end, the idle TTL is cut to what is left.
	if _, err := e.st.TouchWebSession(c, token, time.Hour, now.Add(7*time.Hour+30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ttl := e.rdb.PTTL(c, keys[0]).Val(); ttl > 30*time.Minute || ttl < 29*time.Minute {
		t.Errorf("TTL near the end %v, want the 30 min left", ttl)
	}
	// Past the end: gone, and deleted.
	if _, err := e.st.TouchWebSession(c, token, time.Hour, now.Add(8*time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("past the end: %v", err)
	}
	if n := e.rdb.Exists(c, keys[0]).Val(); n != 0 {
		t.Error("the ended session is still stored")
	}

	// Sign-out.
	if err := e.st.CreateWebSession(c, token, ws, time.Hour, now); err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteWebSession(c, token); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.TouchWebSession(c, token, time.Hour, now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if err := e.st.DeleteWebSession(c, token); err != nil {
		t.Errorf("deleting again: %v", err)
	}
	if _, err := e.st.TouchWebSession(c, "another-token", time.Hour, now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown token: %v", err)
	}

	// Idle: the TTL expires it.
	if err := e.st.CreateWebSession(c, token, ws, 200*time.Millisecond, now); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, err := e.st.TouchWebSession(c, token, time.Hour, now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("idle session: %v", err)
	}

	for name, bad := range map[string]func() error{
		"empty token":   func() error { return e.st.CreateWebSession(c, "", ws, time.Hour, now) },
		"already ended": func() error { return e.st.CreateWebSession(c, token, ws, time.Hour, ws.ExpiresAt) },
		"no CSRF token": func() error {
			w := ws
			w.CSRF = ""
			return e.st.CreateWebSession(c, token, w, time.Hour, now)
		},
	} {
		if err := bad(); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
