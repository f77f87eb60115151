package store_test

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

// TestHealth: the background PING sees Redis go (stopped: refused; frozen: no answer) and come
// back; while it is down, every command through the hooked client fails at once with
// ErrUnavailable instead of waiting for its own deadline; the health PINGs themselves go through
// and bring it up again. Latencies are medians of 5.
func TestHealth(t *testing.T) {
	for _, fault := range []string{"stopped", "frozen"} {
		t.Run(fault, func(t *testing.T) {
			e := setup(t, store.Options{})
			var mu sync.Mutex
			var changes []bool
			h := store.NewHealth(e.rdb, store.HealthOptions{OnChange: func(up bool, _ error) {
				mu.Lock()
				changes = append(changes, up)
				mu.Unlock()
			}})
			e.rdb.AddHook(h)
			run, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { h.Run(run) })
			defer func() { stop(); wg.Wait() }()
			changed := h.Changed()
			if !h.Up() {
				t.Fatal("down before any failure")
			}
			went := time.Now()
			if fault == "stopped" {
				e.srv.Stop()
			} else {
				e.srv.Pause()
			}
			select {
			case <-changed:
			case <-time.After(3 * time.Second):
				t.Fatal("Redis not seen down within 3 s")
			}
			t.Logf("%s Redis seen down after %v", fault, time.Since(went).Round(time.Millisecond))
			if h.Up() || h.Err() == nil {
				t.Fatalf("Up %v, Err %v after going down", h.Up(), h.Err())
			}
			var took []time.Duration
			for range 5 {
				c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				start := time.Now()
				_, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Action: "join", Outcome: "allowed"})
				took = append(took, time.Since(start))
				cancel()
				if !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("append while down: %v, want ErrUnavailable", err)
				}
				_, err = e.st.ListSessions(c, "acme")
				if !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("a read while down: %v, want ErrUnavailable", err)
				}
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			if took[2] > 10*time.Millisecond {
				t.Errorf("a write while Redis is known down failed after %v (median), want at once", took[2])
			}
			changed = h.Changed()
			back := time.Now()
			if fault == "stopped" {
				e.srv.Restart()
			} else {
				e.srv.Resume()
			}
			select {
			case <-changed:
			case <-time.After(3 * time.Second):
				t.Fatal("Redis not seen back within 3 s")
			}
			t.Logf("Redis seen back %v after it answered again", time.Since(back).Round(time.Millisecond))
			if _, err := e.st.AppendAudit(context.Background(), store.AuditEntry{Tenant: "acme", Action: "join", Outcome: "allowed"}); err != nil {
				t.Errorf("append once back: %v", err)
			}
			// OnChange runs right after Changed is closed: give it a moment.
			for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				mu.Lock()
				n := len(changes)
				mu.Unlock()
				if n >= 2 {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(changes) != 2 || changes[0] || !changes[1] || h.Downs() != 1 {
				t.Errorf("changes %v, downs %d; want down then up", changes, h.Downs())
			}
		})
	}
}

// TestHealthOneSlowPing: a single PING failing (a slow moment) does not count Redis as down.
func TestHealthOneSlowPing(t *testing.T) {
	e := setup(t, store.Options{})
	h := store.NewHealth(e.rdb, store.HealthOptions{Interval: 50 * time.Millisecond, Timeout: 100 * time.Millisecond, Failures: 3})
	run, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { h.Run(run) })
	defer func() { stop(); wg.Wait() }()
	time.Sleep(100 * time.Millisecond)
	e.srv.Pause()
	time.Sleep(120 * time.Millisecond) // one PING lost, maybe two
	e.srv.Resume()
	time.Sleep(200 * time.Millisecond)
	if h.Downs() != 0 {
		t.Errorf("Redis counted down %d times for a pause shorter than Failures PINGs", h.Downs())
	}
}
