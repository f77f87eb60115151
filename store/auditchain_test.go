package store_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/earpiece/earpiece/store"
)

const acmeAudit = store.Prefix + "audit:acme"

// appendN appends n allowed joins to acme's trail and returns their stream ids.
func appendN(t *testing.T, e *env, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id, err := e.st.AppendAudit(ctx(t), store.AuditEntry{Tenant: "acme", Actor: "700", KeyID: "crm",
			Action: "join", Target: fmt.Sprint(740 + i), Outcome: "allowed", Mode: "spy", Trigger: "api"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// rewrite replaces acme's stream by fn's version of its entries, ids kept: what someone with
// write access to Redis would do to edit or reorder the trail.
func rewrite(t *testing.T, rdb *redis.Client, fn func([]redis.XMessage) []redis.XMessage) {
	t.Helper()
	c := ctx(t)
	msgs, err := rdb.XRange(c, acmeAudit, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	msgs = fn(msgs)
	if err := rdb.Del(c, acmeAudit).Err(); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := rdb.XAdd(c, &redis.XAddArgs{Stream: acmeAudit, ID: m.ID, Values: m.Values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func verify(t *testing.T, e *env) store.AuditVerification {
	t.Helper()
	v, err := e.st.VerifyAudit(ctx(t), "acme")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAuditChainDetectsTampering: an edited, a deleted and a reordered entry are each detected,
// and the first broken link is named.
func TestAuditChainDetectsTampering(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, rdb *redis.Client, ids []string)
		problem string
		at      int // index (stream position) of the entry named
		after   int // index of the last entry that verified, -1 for none
	}{
		{"edited", func(t *testing.T, rdb *redis.Client, ids []string) {
			rewrite(t, rdb, func(ms []redis.XMessage) []redis.XMessage {
				ms[2].Values["actor"] = "701"
				return ms
			})
		}, "edited", 2, 1},
		{"edited and rehashed", func(t *testing.T, rdb *redis.Client, ids []string) {
			// Whoever edits and recomputes the entry's own hash breaks the next link.
			rewrite(t, rdb, func(ms []redis.XMessage) []redis.XMessage {
				ms[2].Values["outcome"] = "refused"
				ms[2].Values["hash"] = store.AuditHashForTest(ms[2].Values)
				return ms
			})
		}, "broken_link", 3, 2},
		{"deleted", func(t *testing.T, rdb *redis.Client, ids []string) {
			if err := rdb.XDel(ctx(t), acmeAudit, ids[2]).Err(); err != nil {
				t.Fatal(err)
			}
		}, "missing", 3, 1},
		{"deleted first", func(t *testing.T, rdb *redis.Client, ids []string) {
			if err := rdb.XDel(ctx(t), acmeAudit, ids[0]).Err(); err != nil {
				t.Fatal(err)
			}
		}, "missing", 1, -1},
		{"reordered", func(t *testing.T, rdb *redis.Client, ids []string) {
			rewrite(t, rdb, func(ms []redis.XMessage) []redis.XMessage {
				ms[1].Values, ms[2].Values = ms[2].Values, ms[1].Values
				return ms
			})
		}, "out_of_order", 1, 0},
		{"moved to the end", func(t *testing.T, rdb *redis.Client, ids []string) {
			rewrite(t, rdb, func(ms []redis.XMessage) []redis.XMessage {
				moved := ms[1]
				moved.ID = "" // re-added last
				return append(append(ms[:1:1], ms[2:]...), moved)
			})
		}, "out_of_order", 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, store.Options{})
			ids := appendN(t, e, 5)
			if v := verify(t, e); !v.OK || v.Entries != 5 || v.Head == nil || v.Head.ID != ids[4] || v.Head.Seq != 5 {
				t.Fatalf("before tampering: %+v", v)
			}
			tc.tamper(t, e.rdb, ids)
			v := verify(t, e)
			want, after := ids[tc.at], ""
			if tc.after >= 0 {
				after = ids[tc.after]
			}
			if v.OK || v.Broken == nil || v.Broken.Problem != tc.problem || v.Broken.ID != want || v.Broken.After != after {
				t.Fatalf("verification = %+v, broken %+v; want %s at %s after %q", v, v.Broken, tc.problem, want, after)
			}
		})
	}
}

// TestAuditChainTrimmed: retention trimming leaves a signed checkpoint, the rest verifies from
// it; a forged checkpoint, or one nobody can check, does not.
func TestAuditChainTrimmed(t *testing.T) {
	const retention = 300 * time.Millisecond
	e := setup(t, store.Options{AuditRetention: retention, AuditKey: []byte("test-audit-key")})
	old := appendN(t, e, 3)
	time.Sleep(retention + 50*time.Millisecond) // the Redis server's clock decides; tolerance
	for deadline := time.Now().Add(5 * time.Second); serverMillis(t, e.rdb) <= idMillis(t, old[2])+retention.Milliseconds(); {
		if time.Now().After(deadline) {
			t.Fatal("Redis clock did not advance")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fresh := appendN(t, e, 2)
	all, err := e.st.Audit(ctx(t), "acme", time.Time{}, time.Time{}, 0)
	if err != nil || len(all) != 2 || all[0].ID != fresh[0] || all[0].Seq != 4 {
		t.Fatalf("after trimming: %+v, %v", all, err)
	}
	v := verify(t, e)
	if !v.OK || v.Entries != 2 || v.Start == nil || v.Start.ID != old[2] || v.Start.Seq != 3 || !v.Start.Signed || v.Head.Seq != 5 {
		t.Fatalf("verification = %+v (checkpoint %+v, broken %+v)", v, v.Start, v.Broken)
	}

	// The same trail, checked without the key: unverifiable, not OK.
	unkeyed := store.New(e.rdb, store.Options{})
	if v, err := unkeyed.VerifyAudit(ctx(t), "acme"); err != nil || v.OK || v.Broken.Problem != "checkpoint_unsigned" {
		t.Errorf("without the key: %+v, %v", v, err)
	}
	// A checkpoint moved on (to hide trimmed-then-deleted entries) fails its signature.
	cpKey := store.Prefix + "audit-checkpoint:{" + acmeAudit + "}"
	if err := e.rdb.HSet(ctx(t), cpKey, "seq", "2").Err(); err != nil {
		t.Fatal(err)
	}
	if v := verify(t, e); v.OK || v.Broken.Problem != "checkpoint_signature" {
		t.Errorf("forged checkpoint: %+v", v.Broken)
	}
}

// TestAuditChainConcurrent: appenders racing on one tenant make one chain, none lost.
func TestAuditChainConcurrent(t *testing.T) {
	e := setup(t, store.Options{})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := e.st.AppendAudit(ctx(t), store.AuditEntry{Tenant: "acme", Actor: fmt.Sprint(700 + w),
					Action: "mode_change", Target: fmt.Sprint(i), Outcome: "allowed"}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v := verify(t, e)
	if !v.OK || v.Entries != workers*each || v.Head.Seq != workers*each {
		t.Fatalf("verification = %+v, broken %+v", v, v.Broken)
	}
}

// TestAuditChainAfterUnchained: entries written before the chain existed are counted, not
// checked; the chain starts after them.
func TestAuditChainAfterUnchained(t *testing.T) {
	e := setup(t, store.Options{})
	for range 2 {
		if err := e.rdb.XAdd(ctx(t), &redis.XAddArgs{Stream: acmeAudit, Values: []any{"tenant", "acme", "action", "join",
			"time", time.Now().UTC().Format(time.RFC3339Nano)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	appendN(t, e, 3)
	if v := verify(t, e); !v.OK || v.Unchained != 2 || v.Entries != 3 {
		t.Fatalf("verification = %+v, broken %+v", v, v.Broken)
	}
	// One written after chained entries (an old instance still running) is a break.
	if err := e.rdb.XAdd(ctx(t), &redis.XAddArgs{Stream: acmeAudit, Values: []any{"tenant", "acme", "action", "join"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if v := verify(t, e); v.OK || v.Broken.Problem != "unchained" {
		t.Fatalf("verification = %+v, broken %+v", v, v.Broken)
	}
}

// TestAuditPage: filters, and cursor pagination that neither skips nor repeats.
func TestAuditPage(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	for i := range 30 {
		en := store.AuditEntry{Tenant: "acme", Actor: fmt.Sprint(700 + i%3), Action: []string{"join", "mode_change"}[i%2],
			Target: fmt.Sprint(740 + i%5), Outcome: "allowed"}
		if i%3 == 2 {
			en.Actor, en.KeyID = "key:crm", "crm"
		}
		if _, err := e.st.AppendAudit(c, en); err != nil {
			t.Fatal(err)
		}
	}
	collect := func(f store.AuditFilter, limit int) ([]store.AuditEntry, int) {
		t.Helper()
		var out []store.AuditEntry
		pages := 0
		for {
			page, next, err := e.st.AuditPage(c, "acme", f, limit)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			out = append(out, page...)
			if next == "" {
				return out, pages
			}
			if pages > 100 {
				t.Fatal("no end")
			}
			f.After = next
		}
	}
	all, pages := collect(store.AuditFilter{}, 7)
	if len(all) != 30 || pages != 5 {
		t.Fatalf("all: %d entries in %d pages", len(all), pages)
	}
	for i, en := range all {
		if en.Seq != int64(i+1) {
			t.Fatalf("entry %d has seq %d: skipped or repeated", i, en.Seq)
		}
	}
	for _, tc := range []struct {
		f    store.AuditFilter
		want int
	}{
		{store.AuditFilter{Actor: "700"}, 10},
		{store.AuditFilter{Actor: "crm"}, 10},
		{store.AuditFilter{Actor: "key:crm"}, 10},
		{store.AuditFilter{Agent: "741"}, 6},
		{store.AuditFilter{Action: "join"}, 15},
		{store.AuditFilter{Action: "join", Agent: "740"}, 3},
		{store.AuditFilter{Action: "nothing"}, 0},
	} {
		got, _ := collect(tc.f, 4)
		if len(got) != tc.want {
			t.Errorf("%+v: %d entries, want %d", tc.f, len(got), tc.want)
		}
		for _, en := range got {
			if tc.f.Action != "" && en.Action != tc.f.Action || tc.f.Agent != "" && en.Target != tc.f.Agent ||
				tc.f.Actor != "" && en.Actor != tc.f.Actor && en.KeyID != tc.f.Actor {
				t.Errorf("%+v: got %+v", tc.f, en)
			}
		}
	}
	if _, _, err := e.st.AuditPage(c, "acme", store.AuditFilter{After: "x-1"}, 5); err == nil || !strings.Contains(err.Error(), "stream id") {
		t.Errorf("bad after: %v", err)
	}
}
