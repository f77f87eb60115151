package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

// With Redis gone (stopped: connections refused) or wedged (paused: nothing
// answers) every call fails within the caller's deadline (no hang, no
// misleading ErrNotFound), and the same Store works again once Redis is back.
func TestRedisUnavailable(t *testing.T) {
	t.Run("stopped", func(t *testing.T) {
		e := setup(t, store.Options{})
		a := mustCreate(t, e, session("acme", "200", "744"))
		e.srv.Stop()
		checkUnavailable(t, e, a)
		e.srv.Restart() // same port, empty (no persistence)
		checkRecovers(t, e)
	})
	t.Run("paused", func(t *testing.T) {
		e := setup(t, store.Options{})
		a := mustCreate(t, e, session("acme", "200", "744"))
		e.srv.Pause()
		checkUnavailable(t, e, a)
		e.srv.Resume()
		checkRecovers(t, e)
		// The paused server kept its data.
		if _, err := e.st.GetSession(ctx(t), a.ID); err != nil {
			t.Errorf("GetSession after Resume: %v", err)
		}
	})
}

func checkUnavailable(t *testing.T, e *env, a store.Session) {
	t.Helper()
	const deadline = 300 * time.Millisecond
	ops := map[string]func(context.Context) error{
		"Ping": e.st.Ping,
		"CreateSession": func(c context.Context) error {
			return e.st.CreateSession(c, session("acme", "201", "745"))
		},
		"GetSession":   func(c context.Context) error { _, err := e.st.GetSession(c, a.ID); return err },
		"ListSessions": func(c context.Context) error { _, err := e.st.ListSessions(c, "acme"); return err },
		"UpdateSession": func(c context.Context) error {
			_, err := e.st.UpdateSession(c, a.ID, func(s *store.Session) error { s.Mode = "barge"; return nil })
			return err
		},
		"EndSession": func(c context.Context) error { _, err := e.st.EndSession(c, a.ID, "x", time.Time{}); return err },
		"Claim":      func(c context.Context) error { _, err := e.st.Claim(c, "k", "node-a", time.Minute); return err },
		"Release":    func(c context.Context) error { return e.st.Release(c, "k", "node-a") },
		"AppendAudit": func(c context.Context) error {
			_, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Action: "join"})
			return err
		},
		"Audit": func(c context.Context) error {
			_, err := e.st.Audit(c, "acme", time.Time{}, time.Time{}, 10)
			return err
		},
		"PutIfAbsent": func(c context.Context) error {
			_, _, err := e.st.PutIfAbsent(c, "acme", "k", []byte("v"), time.Minute)
			return err
		},
	}
	// Concurrently: each call has its own deadline and is timed on its own.
	var wg sync.WaitGroup
	for name, op := range ops {
		wg.Go(func() {
			c, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			err := op(c)
			took := time.Since(start)
			if err == nil {
				t.Errorf("%s succeeded with Redis unavailable", name)
			}
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNotOwner) {
				t.Errorf("%s: %v; an outage must not look like a domain answer", name, err)
			}
			if took > deadline+250*time.Millisecond {
				t.Errorf("%s took %v with a %v deadline", name, took, deadline)
			}
		})
	}
	wg.Wait()
}

func checkRecovers(t *testing.T, e *env) {
	t.Helper()
	c := ctx(t)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := e.st.Ping(c)
		if err == nil {
			break
		}
		if c.Err() != nil {
			t.Fatalf("store did not recover after Restart: %v", err)
		}
		<-tick.C
	}
	b := session("initech", "202", "746") // alone in its tenant, whatever Redis kept
	if err := e.st.CreateSession(c, b); err != nil {
		t.Fatalf("CreateSession after recovery: %v", err)
	}
	if l, err := e.st.ListSessions(c, b.Tenant); err != nil || len(l) != 1 || l[0].ID != b.ID {
		t.Fatalf("ListSessions after recovery = %v, %v", ids(l), err)
	}
	if _, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Action: "join"}); err != nil {
		t.Fatalf("AppendAudit after recovery: %v", err)
	}
}

func BenchmarkCreateEndSession(b *testing.B) {
	e := setup(b, store.Options{})
	c := ctx(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		s := store.Session{
			ID: fmt.Sprintf("sup-bench-%d", i), Tenant: "acme", Supervisor: "200", Agent: "744",
			Origin: "api", Mode: "spy", State: store.StateActive,
			SupervisorChannel: fmt.Sprintf("sup-ch-%d", i), AgentChannel: "agent-ch",
			SnoopChannel: fmt.Sprintf("snoop-ch-%d", i),
		}
		if err := e.st.CreateSession(c, s); err != nil {
			b.Fatal(err)
		}
		if _, err := e.st.EndSession(c, s.ID, "bench", time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListSessions(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("live=%d", n), func(b *testing.B) {
			e := setup(b, store.Options{})
			c := ctx(b)
			for i := range n {
				s := store.Session{
					ID: fmt.Sprintf("sup-bench-%d", i), Tenant: "acme", Supervisor: "200", Agent: "744",
					Origin: "api", Mode: "spy", State: store.StateActive,
					SupervisorChannel: fmt.Sprintf("sup-ch-%d", i), AgentChannel: fmt.Sprintf("agent-ch-%d", i),
					SnoopChannel: fmt.Sprintf("snoop-ch-%d", i),
				}
				if err := e.st.CreateSession(c, s); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				l, err := e.st.ListSessions(c, "acme")
				if err != nil || len(l) != n {
					b.Fatalf("ListSessions = %d, %v", len(l), err)
				}
			}
		})
	}
}
