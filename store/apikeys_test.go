package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

func sha(c byte) string { return strings.Repeat(string(c), 64) }

func TestAPIKeys(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)

	k := store.APIKey{Name: "crm", Tenant: "acme", Role: "admin", SHA256: sha('a'), CreatedBy: "boot"}
	if err := e.st.CreateAPIKey(c, k); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if err := e.st.CreateAPIKey(c, store.APIKey{Name: "adam", Tenant: "acme", Role: "supervisor", Extension: "700", SHA256: sha('b')}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateAPIKey(c, store.APIKey{Name: "crm", Tenant: "globex", Role: "admin", SHA256: sha('c')}); err != nil {
		t.Fatalf("same name, other tenant: %v", err)
	}
	// Duplicates.
	if err := e.st.CreateAPIKey(c, store.APIKey{Name: "crm", Tenant: "acme", Role: "admin", SHA256: sha('d')}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate name: %v, want ErrExists", err)
	}
	if err := e.st.CreateAPIKey(c, store.APIKey{Name: "other", Tenant: "acme", Role: "admin", SHA256: sha('a')}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate hash: %v, want ErrExists", err)
	}
	// Validation.
	for _, bad := range []store.APIKey{
		{Name: "", Tenant: "acme", SHA256: sha('e')},
		{Name: "x", Tenant: "a:b", SHA256: sha('e')},
		{Name: "x", Tenant: "acme", SHA256: "short"},
		{Name: "x", Tenant: "acme", SHA256: sha('E')},
		{Name: "x", Tenant: "acme", SHA256: sha('g')},
	} {
		if err := e.st.CreateAPIKey(c, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CreateAPIKey(%+v) = %v, want ErrInvalid", bad, err)
		}
	}

	got, err := e.st.APIKeyByHash(c, sha('a'))
	if err != nil || got.Name != "crm" || got.Tenant != "acme" || got.Role != "admin" || got.CreatedBy != "boot" {
		t.Fatalf("APIKeyByHash = %+v, %v", got, err)
	}
	if !got.CreatedAt.Equal(e.clock.Now()) {
		t.Errorf("CreatedAt = %v, want the store clock %v", got.CreatedAt, e.clock.Now())
	}
	if _, err := e.st.APIKeyByHash(c, sha('f')); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown hash: %v, want ErrNotFound", err)
	}

	list, err := e.st.APIKeys(c, "acme")
	if err != nil || len(list) != 2 || list[0].Name != "adam" || list[1].Name != "crm" {
		t.Fatalf("APIKeys(acme) = %+v, %v", list, err)
	}
	if list, err := e.st.APIKeys(c, "initech"); err != nil || len(list) != 0 || list == nil {
		t.Errorf("APIKeys(initech) = %#v, %v; want an empty slice", list, err)
	}

	rev, err := e.st.RevokeAPIKey(c, "acme", "crm")
	if err != nil || rev.SHA256 != sha('a') || rev.Role != "admin" {
		t.Fatalf("RevokeAPIKey = %+v, %v", rev, err)
	}
	if _, err := e.st.APIKeyByHash(c, sha('a')); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoked key still found: %v", err)
	}
	if _, err := e.st.RevokeAPIKey(c, "acme", "crm"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke twice: %v, want ErrNotFound", err)
	}
	if _, err := e.st.APIKeyByHash(c, sha('c')); err != nil {
		t.Errorf("globex key gone after revoking acme's: %v", err)
	}
	// The name is free again.
	if err := e.st.CreateAPIKey(c, store.APIKey{Name: "crm", Tenant: "acme", Role: "admin", SHA256: sha('d')}); err != nil {
		t.Errorf("recreate after revoke: %v", err)
	}
	for _, key := range keys(t, e.rdb) {
		if strings.Contains(key, "{apikeys}") {
			if ttl := e.rdb.PTTL(c, key).Val(); ttl != -1 {
				t.Errorf("%s has TTL %v; api keys live until revoked", key, ttl)
			}
		}
	}
}

func TestClaimNonce(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	fresh, err := e.st.ClaimNonce(c, "acme", "sig-1", 2*time.Minute)
	if err != nil || !fresh {
		t.Fatalf("first ClaimNonce = %v, %v", fresh, err)
	}
	if fresh, err := e.st.ClaimNonce(c, "acme", "sig-1", time.Minute); err != nil || fresh {
		t.Fatalf("replayed ClaimNonce = %v, %v; want false", fresh, err)
	}
	if fresh, err := e.st.ClaimNonce(c, "globex", "sig-1", time.Minute); err != nil || !fresh {
		t.Fatalf("other tenant = %v, %v; want fresh", fresh, err)
	}
	if ttl := e.rdb.PTTL(c, store.Prefix+"nonce:acme:sig-1").Val(); ttl <= time.Minute || ttl > 2*time.Minute {
		t.Errorf("nonce TTL = %v", ttl)
	}
	if _, err := e.st.ClaimNonce(c, "acme", "x", 0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("zero TTL: %v", err)
	}
	// Once the window has passed, the nonce is fresh again.
	if _, err := e.st.ClaimNonce(c, "acme", "sig-2", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitNonce := time.Now().Add(5 * time.Second)
	for {
		fresh, err := e.st.ClaimNonce(c, "acme", "sig-2", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if fresh {
			break
		}
		if time.Now().After(waitNonce) {
			t.Fatal("nonce never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSwapAndDeleteIdempotent(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	claim := []byte("claim-1")
	if _, created, err := e.st.PutIfAbsent(c, "acme", "k", claim, time.Hour); err != nil || !created {
		t.Fatal(created, err)
	}
	if ok, err := e.st.SwapIdempotent(c, "acme", "k", []byte("other"), []byte("x"), time.Hour); err != nil || ok {
		t.Fatalf("swap with wrong old = %v, %v", ok, err)
	}
	if ok, err := e.st.SwapIdempotent(c, "acme", "k", claim, []byte("result"), 2*time.Hour); err != nil || !ok {
		t.Fatalf("swap = %v, %v", ok, err)
	}
	existing, created, err := e.st.PutIfAbsent(c, "acme", "k", []byte("again"), time.Hour)
	if err != nil || created || string(existing) != "result" {
		t.Fatalf("after swap PutIfAbsent = %q, %v, %v", existing, created, err)
	}
	if ttl := e.rdb.PTTL(c, store.Prefix+"idem:acme:k").Val(); ttl <= time.Hour {
		t.Errorf("TTL after swap = %v, want the new 2h", ttl)
	}
	if ok, err := e.st.DeleteIdempotent(c, "acme", "k", claim); err != nil || ok {
		t.Fatalf("delete with stale old = %v, %v", ok, err)
	}
	if ok, err := e.st.DeleteIdempotent(c, "acme", "k", []byte("result")); err != nil || !ok {
		t.Fatalf("delete = %v, %v", ok, err)
	}
	if _, created, err := e.st.PutIfAbsent(c, "acme", "k", claim, time.Hour); err != nil || !created {
		t.Fatalf("after delete PutIfAbsent created=%v, %v", created, err)
	}
}
