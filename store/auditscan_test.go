package store_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/earpiece/earpiece/store"
)

// TestScanAudit: every entry of [from, to) once, in order, across batches and within one
// millisecond; the bounds; fn's error stops the scan.
func TestScanAudit(t *testing.T) {
	e := setup(t, store.Options{})
	c := ctx(t)
	key := store.AuditKeyForTest("acme")
	n := store.AuditScanBatch + 7
	base := int64(1772442000000) // 2026-03-02T09:00:00Z
	pipe := e.rdb.Pipeline()
	for i := range n {
		// Three entries a millisecond, so batches end inside one.
		id := fmt.Sprintf("%d-%d", base+int64(i/3), i%3)
		pipe.XAdd(c, &redis.XAddArgs{Stream: key, ID: id, Values: []string{"time", time.UnixMilli(base + int64(i/3)).UTC().Format(time.RFC3339Nano),
			"tenant", "acme", "action", "join", "actor", strconv.Itoa(i)}})
	}
	if _, err := pipe.Exec(c); err != nil {
		t.Fatal(err)
	}
	scan := func(from, to time.Time) []string {
		t.Helper()
		var actors []string
		if err := e.st.ScanAudit(c, "acme", from, to, func(es []store.AuditEntry) error {
			if len(es) > store.AuditScanBatch {
				t.Errorf("batch of %d", len(es))
			}
			for _, a := range es {
				actors = append(actors, a.Actor)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return actors
	}
	all := scan(time.Time{}, time.Time{})
	if len(all) != n {
		t.Fatalf("scanned %d of %d", len(all), n)
	}
	for i, a := range all {
		if a != strconv.Itoa(i) {
			t.Fatalf("entry %d is %s", i, a)
		}
	}
	// [ms 10, ms 20): entries 30..59.
	got := scan(time.UnixMilli(base+10), time.UnixMilli(base+20))
	if len(got) != 30 || got[0] != "30" || got[29] != "59" {
		t.Errorf("[10 ms, 20 ms) = %d entries %v", len(got), got)
	}
	if got := scan(time.UnixMilli(base+10), time.UnixMilli(base+10)); len(got) != 0 {
		t.Errorf("empty range: %v", got)
	}
	stop := fmt.Errorf("enough")
	calls := 0
	if err := e.st.ScanAudit(c, "acme", time.Time{}, time.Time{}, func([]store.AuditEntry) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("fn's error: %v after %d calls", err, calls)
	}
	if err := e.st.ScanAudit(c, "", time.Time{}, time.Time{}, func([]store.AuditEntry) error { return nil }); err == nil {
		t.Error("no tenant: no error")
	}
}

// BenchmarkScanAudit reads a month of a 500-agent tenant's trail from Redis: 2M entries (set
// EARPIECE_BENCH_AUDIT_ENTRIES for another size) with the fields and sizes app writes (hash
// chain included), through ScanAudit, decoding every entry. Filling Redis takes a while and is
// not timed. The aggregation of the same month: app.BenchmarkReportAggregate.
//
//	go test -run '^$' -bench BenchmarkScanAudit -benchtime 1x -count 5 ./store/
func BenchmarkScanAudit(b *testing.B) {
	n := 2_000_000
	if v := os.Getenv("EARPIECE_BENCH_AUDIT_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	e := setup(b, store.Options{})
	c, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // filling 2M entries takes a while
	defer cancel()
	key := store.AuditKeyForTest("acme")
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	step := 30 * 24 * time.Hour / time.Duration(n)
	hash := func(i int) string { return fmt.Sprintf("%064x", uint64(i)*0x9e3779b97f4a7c15) }
	const chunk = 10_000
	for lo := 0; lo < n; lo += chunk {
		pipe := e.rdb.Pipeline()
		for i := lo; i < min(lo+chunk, n); i++ {
			t := start.Add(time.Duration(i) * step)
			agent := strconv.Itoa(1000 + i%500)
			pipe.XAdd(c, &redis.XAddArgs{Stream: key, ID: fmt.Sprintf("%d-%d", t.UnixMilli(), i), Values: []string{
				"time", t.Format(time.RFC3339Nano), "tenant", "acme", "action", "mode_change", "actor", strconv.Itoa(700 + i%50),
				"target", agent, "outcome", "allowed", "session", "sup-" + strconv.Itoa(i/4), "call", "1772442000." + agent,
				"mode", "whisper", "trigger", "dtmf", "extra", `{"from":"spy","to":"whisper","via":"dtmf"}`,
				"seq", strconv.Itoa(i + 1), "prev", hash(i), "hash", hash(i + 1),
			}})
		}
		if _, err := pipe.Exec(c); err != nil {
			b.Fatal(err)
		}
	}
	var read int
	for b.Loop() {
		read = 0
		if err := e.st.ScanAudit(c, "acme", start, start.Add(31*24*time.Hour), func(es []store.AuditEntry) error {
			read += len(es)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	if read != n {
		b.Fatalf("read %d of %d", read, n)
	}
	b.ReportMetric(float64(n), "entries")
}
