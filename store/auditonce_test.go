package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

// TestAuditOnce: appends with the same Once write one entry, whoever makes them and however
// often (a replayed journal, a retry whose first answer was lost, concurrent writers); every
// one of them returns that entry's id; the chain verifies; a refusal appended twice counts
// once in its burst; other tenants' Once are their own.
func TestAuditOnce(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	first, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Actor: "700", Action: "end", Outcome: "ok", Session: "s1", Once: "s1:end:ok"})
	if err != nil || first == "" {
		t.Fatalf("first append: %q %v", first, err)
	}
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			ids[i], _ = e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Actor: "700", Action: "end", Outcome: "ok", Session: "s1", Once: "s1:end:ok"})
		})
	}
	wg.Wait()
	for i, id := range ids {
		if id != first {
			t.Errorf("append %d returned %q, want the first entry's %q", i, id, first)
		}
	}
	// Concurrent first appends of another Once: exactly one entry.
	for i := range ids {
		wg.Go(func() {
			ids[i], _ = e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Actor: "700", Action: "join", Outcome: "allowed", Session: "s2", Once: "s2:join:allowed"})
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("concurrent appends of one Once returned %q", ids)
		}
	}
	// A refusal replayed: written once, and not counted again in its burst (no Repeats).
	for range 3 {
		if _, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Actor: "700", Action: "join", Outcome: "refused", Reason: "store_unavailable", Session: "s3", Once: "s3:join:refused"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "globex", Actor: "700", Action: "end", Outcome: "ok", Session: "s1", Once: "s1:end:ok"}); err != nil {
		t.Fatal(err)
	}
	es, err := e.st.Audit(c, "acme", time.Time{}, time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries in acme, want 3 (one per Once)", len(es))
	}
	if es[2].Repeats != 0 {
		t.Errorf("the replayed refusal counts %d repeats, want 0", es[2].Repeats)
	}
	if v, err := e.st.VerifyAudit(c, "acme"); err != nil || !v.OK || v.Entries != 3 {
		t.Errorf("chain: %+v %v", v, err)
	}
	if g, _ := e.st.Audit(c, "globex", time.Time{}, time.Time{}, 100); len(g) != 1 {
		t.Errorf("globex has %d entries, want its own one", len(g))
	}
	// Without Once, appends are all written.
	for range 2 {
		if _, err := e.st.AppendAudit(c, store.AuditEntry{Tenant: "acme", Actor: "700", Action: "mode_change", Outcome: "allowed"}); err != nil {
			t.Fatal(err)
		}
	}
	if es, _ := e.st.Audit(c, "acme", time.Time{}, time.Time{}, 100); len(es) != 5 {
		t.Errorf("%d entries, want 5", len(es))
	}
}

// TestMarkOnce: of concurrent markers of one key exactly one is first; the marker expires.
func TestMarkOnce(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := 0
	for range 8 {
		wg.Go(func() {
			ok, err := e.st.MarkOnce(c, "supervision.ended:s1", time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				firsts++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firsts != 1 {
		t.Errorf("%d callers marked first, want 1", firsts)
	}
	if ok, _ := e.st.MarkOnce(c, "supervision.ended:s2", 50*time.Millisecond); !ok {
		t.Error("another key not first")
	}
	time.Sleep(100 * time.Millisecond)
	if ok, _ := e.st.MarkOnce(c, "supervision.ended:s2", time.Minute); !ok {
		t.Error("an expired marker still marked")
	}
	if _, err := e.st.MarkOnce(c, "", time.Minute); err == nil {
		t.Error("empty key accepted")
	}
}
