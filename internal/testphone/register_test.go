package testphone

import (
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// registrar is a fake registrar that challenges every REGISTER without valid credentials
// (RFC 3261 section 22.4) and records what it accepted.
type registrar struct {
	addr     string
	password string

	mu       sync.Mutex
	requests int
	accepted []int // Expires of each accepted REGISTER
}

func newRegistrar(t *testing.T, password string) *registrar {
	t.Helper()
	st, err := newSIPStack(t.Context(), testLogger(t), "registrar")
	if err != nil {
		t.Fatal(err)
	}
	r := &registrar{addr: st.addr.String(), password: password}
	chal := &digest.Challenge{Realm: "earpiece-test", Nonce: "5f2a9c", Algorithm: "MD5"}
	st.srv.OnRegister(st.handle(func(req *sip.Request, tx sip.ServerTransaction) {
		r.mu.Lock()
		r.requests++
		r.mu.Unlock()
		if !r.authorized(req, chal) {
			res := sip.NewResponseFromRequest(req, sip.StatusUnauthorized, "Unauthorized", nil)
			res.AppendHeader(sip.NewHeader("WWW-Authenticate", chal.String()))
			tx.Respond(res)
			return
		}
		expires := -1
		if h := req.GetHeader("Expires"); h != nil {
			expires, _ = strconv.Atoi(h.Value())
		}
		r.mu.Lock()
		r.accepted = append(r.accepted, expires)
		r.mu.Unlock()
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		if c := req.Contact(); c != nil {
			res.AppendHeader(c.Clone())
		}
		tx.Respond(res)
	}))
	// The same shutdown as a phone's: a REGISTER repeated late leaves nothing behind.
	t.Cleanup(func() {
		if err := st.close(closeTimeout); err != nil {
			t.Errorf("registrar: %v", err)
		}
	})
	if err := st.start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *registrar) authorized(req *sip.Request, chal *digest.Challenge) bool {
	h := req.GetHeader("Authorization")
	if h == nil {
		return false
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil {
		return false
	}
	want, err := digest.Digest(chal, digest.Options{
		Method: req.Method.String(), URI: cred.URI, Username: cred.Username, Password: r.password,
	})
	return err == nil && cred.Response == want.Response
}

func (r *registrar) snapshot() (int, []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, append([]int(nil), r.accepted...)
}

func TestRegisterDigest(t *testing.T) {
	reg := newRegistrar(t, "s3cret")
	ctx := timeout(t, 5*time.Second)

	p, err := New(ctx, Config{User: "744", Password: "s3cret", Server: reg.addr, RegisterExpiry: 5 * time.Minute, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if n, acc := reg.snapshot(); n != 2 || len(acc) != 1 || acc[0] != 300 {
		t.Fatalf("after Register: %d requests, accepted %v; want challenge then 300 s", n, acc)
	}
	// Close unregisters (Expires: 0), answering the challenge again.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, acc := reg.snapshot(); len(acc) != 2 || acc[1] != 0 {
		t.Fatalf("after Close: accepted %v, want an Expires: 0", acc)
	}

	for _, pw := range []string{"wrong", ""} {
		p := newPhone(t, Config{User: "745", Password: pw, Server: reg.addr})
		err := p.Register(ctx)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != sip.StatusUnauthorized {
			t.Errorf("password %q: %v, want 401", pw, err)
		}
	}
}
