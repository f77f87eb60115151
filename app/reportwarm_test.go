package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
	"github.com/redis/go-redis/v9"
)

// countingStore counts the reads of the trail (ScanAudit).
type countingStore struct {
	Store
	scans atomic.Int64
}

func (c *countingStore) ScanAudit(ctx context.Context, tenant string, from, to time.Time, fn func([]store.AuditEntry) error) error {
	c.scans.Add(1)
	return c.Store.ScanAudit(ctx, tenant, from, to, fn)
}

// warmedDays are which of the days (by offset from last) have all the warmed groupings cached.
func warmedDays(t *testing.T, st Store, tenant string, last time.Time, offsets ...int) []bool {
	t.Helper()
	var out []bool
	for _, o := range offsets {
		d := last.Add(time.Duration(o) * reportDaySpan)
		var names []string
		for _, g := range reportWarmGroupings {
			names = append(names, rollupName(d, reportWindow{GroupBy: g}))
		}
		got, err := st.ReportRollupsCached(context.Background(), tenant, names)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, !slices.Contains(got, false))
	}
	return out
}

// TestFastReportWarm: on a real Redis with an injected clock, a tick of the warmer computes the
// rollups (day, supervisor, agent) of the most recent finished days, at most reportWarmPerTick
// per tick, most recent first; a report over a warmed day then reads no trail and uses the
// cached rollup; ticks go on until the last reportWarmDays days of every tenant are warm, then
// read nothing; an instance without the lease warms nothing.
func TestFastReportWarm(t *testing.T) {
	now := time.Now().UTC()
	day := now.Truncate(reportDaySpan)
	if now.Sub(day) < time.Minute || day.Add(reportDaySpan).Sub(now) < time.Minute {
		t.Skip("too close to midnight UTC: the entries would fall on two days")
	}
	clk := &testClock{now: now.Truncate(time.Second)}
	r := newFastRig(t, func(c *Config) { c.Clock, c.ReportWarm = clk.Now, time.Hour })
	ctx := context.Background()
	if _, err := r.app.Raise(ctx, pAgent744, RaiseRequest{}); err == nil { // a refused raise: one entry today
		t.Fatal("a raise with no call was not refused")
	}
	// Two days and two hours on: yesterday's span (by this clock: day+1) is over, day+2 is not.
	clk.now = day.Add(2*reportDaySpan + 2*time.Hour)
	last := lastWarmDay(clk.Now())
	if !last.Equal(day.Add(reportDaySpan)) {
		t.Fatalf("last warm day %v, want %v", last, day.Add(reportDaySpan))
	}
	cs := &countingStore{Store: r.store}
	w := New(Config{Instance: "warm", Clock: clk.Now, ReportWarm: time.Hour, CallTimeout: 2 * time.Second}, r.ari, cs, r.app.dir)
	first := r.app.dir.Current().Tenants()[0].ID
	if n := w.warmReports(ctx); n != reportWarmPerTick || cs.scans.Load() != reportWarmPerTick {
		t.Fatalf("first tick read %d days (%d scans), want %d", n, cs.scans.Load(), reportWarmPerTick)
	}
	if got, want := warmedDays(t, r.store, first, last, 1, 0, -1, -2, -3, -4),
		[]bool{false, true, true, true, true, false}; !slices.Equal(got, want) {
		t.Fatalf("tenant %s, days last+1..last-4 warm: %v, want %v", first, got, want)
	}
	// Another instance finds the lease taken.
	other := New(Config{Instance: "other", Clock: clk.Now, ReportWarm: time.Hour}, r.ari, r.store, r.app.dir)
	if n := other.warmReports(ctx); n != 0 {
		t.Errorf("the instance without the lease read %d days", n)
	}
	if !errors.Is(r.store.Release(ctx, reportWarmLease, "probe"), store.ErrNotOwner) {
		t.Error("the warming instance does not hold the lease")
	}
	ticks, days := 1, reportWarmPerTick
	for n := w.warmReports(ctx); n > 0; n = w.warmReports(ctx) {
		if n > reportWarmPerTick {
			t.Fatalf("a tick read %d days", n)
		}
		ticks++
		days += n
	}
	tenants := len(r.app.dir.Current().Tenants())
	if want := reportWarmDays * tenants; days != want || cs.scans.Load() != int64(want) {
		t.Errorf("warming read %d days (%d scans) in %d ticks, want %d", days, cs.scans.Load(), ticks, want)
	}
	for _, tn := range r.app.dir.Current().Tenants() {
		if got, want := warmedDays(t, r.store, tn.ID, last, 0, 1-reportWarmDays, -reportWarmDays),
			[]bool{true, true, false}; !slices.Equal(got, want) {
			t.Errorf("tenant %s, days last, last-30, last-31 warm: %v, want %v", tn.ID, got, want)
		}
	}

	// A report over the warmed day reads no trail, and takes what the rollup says: doctor it.
	name := rollupName(day, reportWindow{GroupBy: GroupByDay})
	slots, err := r.store.ReportRollups(ctx, "acme", []store.ReportRollupSpan{{From: day, To: day.Add(reportDaySpan + ReportLookahead), Name: name}})
	if err != nil || slots[0].Data == nil || slots[0].Mark.LastID == "" {
		t.Fatalf("no rollup of %v with the day's marks: %+v, %v", day, slots, err)
	}
	var roll reportRollup
	if err := json.Unmarshal(slots[0].Data, &roll); err != nil {
		t.Fatal(err)
	}
	if roll.Total.HelpRefusals != 1 || roll.Mark != slots[0].Mark {
		t.Fatalf("warmed rollup: %d help refusals, mark %+v; want 1, %+v", roll.Total.HelpRefusals, roll.Mark, slots[0].Mark)
	}
	roll.Total.HelpRefusals = 99
	data, _ := json.Marshal(roll)
	if err := r.store.SetReportRollup(ctx, "acme", name, data); err != nil {
		t.Fatal(err)
	}
	before := cs.scans.Load()
	for _, g := range reportWarmGroupings {
		rep, err := w.SupervisionReport(ctx, pAdmin, ReportQuery{From: day.Add(-10 * reportDaySpan), To: day.Add(2 * reportDaySpan), GroupBy: g})
		if err != nil {
			t.Fatal(err)
		}
		if g == GroupByDay && rep.Total.Help.Refusals != 99 {
			t.Errorf("report by day: %d help refusals, want the warmed (doctored) 99", rep.Total.Help.Refusals)
		}
	}
	if n := cs.scans.Load() - before; n != 0 {
		t.Errorf("reports over warmed days read the trail %d times, want 0", n)
	}
}

// TestMeasureReportWarmMonth measures, end to end on a real Redis, warming a month of a
// 500-agent tenant (the synthetic trail of BenchmarkReportAggregate, 31 days, about 2M entries
// in any 30; EARPIECE_BENCH_AUDIT_ENTRIES for another size per 30 days), tick after tick with
// no pause, then SupervisionReport for "the last 30 days" at 14:17 (partial first and last
// days), per grouping, five times each (median). Filling Redis takes a while and is not timed.
//
//	EARPIECE_MEASURE_WARM=1 go test -run TestMeasureReportWarmMonth -v -timeout 30m ./app/
func TestMeasureReportWarmMonth(t *testing.T) {
	if os.Getenv("EARPIECE_MEASURE_WARM") == "" {
		t.Skip("set EARPIECE_MEASURE_WARM=1 to measure")
	}
	n := benchEntries
	if v := os.Getenv("EARPIECE_BENCH_AUDIT_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	const days = 31
	began := time.Now()
	trail := synthTrailSpan(n*days/benchDays, reportDay, days*reportDaySpan)
	rs := redistest.Start(t)
	rdb := redis.NewClient(rs.Options())
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	key := store.Prefix + "audit:acme"
	var lastMs, seq int64
	const chunk = 10_000
	for lo := 0; lo < len(trail); lo += chunk {
		pipe := rdb.Pipeline()
		for i := lo; i < min(lo+chunk, len(trail)); i++ {
			e := &trail[i]
			ms := e.Time.UnixMilli()
			if ms == lastMs {
				seq++
			} else {
				lastMs, seq = ms, 0
			}
			vals := []string{"time", e.Time.UTC().Format(time.RFC3339Nano), "tenant", e.Tenant, "action", e.Action,
				"seq", strconv.Itoa(i + 1), "prev", e.PrevHash, "hash", e.Hash}
			for _, kv := range [...][2]string{{"actor", e.Actor}, {"target", e.Target}, {"outcome", e.Outcome},
				{"reason", e.Reason}, {"session", e.Session}, {"call", e.Call}, {"help", e.HelpRequest},
				{"mode", e.Mode}, {"trigger", e.Trigger}} {
				if kv[1] != "" {
					vals = append(vals, kv[0], kv[1])
				}
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: fmt.Sprintf("%d-%d", ms, seq), Values: vals})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("filled %d entries over %d days in %v", len(trail), days, time.Since(began).Round(time.Second))

	cfg, err := config.Load("testdata/e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := reportDay.Add(30*reportDaySpan + 14*time.Hour + 17*time.Minute)
	clk := &testClock{now: now}
	a := New(Config{Instance: "measure", Clock: clk.Now, CallTimeout: time.Minute}, newFakeARI(t), store.New(rdb, store.Options{}), dir)

	began = time.Now()
	var ticks, read int
	var slowest time.Duration
	for {
		t0 := time.Now()
		n := a.warmReports(ctx)
		if n == 0 {
			break
		}
		slowest = max(slowest, time.Since(t0))
		ticks++
		read += n
	}
	t.Logf("warmed %d days (all tenants) in %d ticks, %v of work; slowest tick %v (%d days a tick)",
		read, ticks, time.Since(began).Round(time.Millisecond), slowest.Round(time.Millisecond), reportWarmPerTick)

	q := ReportQuery{From: now.Add(-30 * reportDaySpan), To: now}
	for _, g := range reportWarmGroupings {
		q.GroupBy = g
		var took []time.Duration
		var rep Report
		for range 5 {
			t0 := time.Now()
			if rep, err = a.SupervisionReport(ctx, pAdmin, q); err != nil {
				t.Fatal(err)
			}
			took = append(took, time.Since(t0))
		}
		slices.Sort(took)
		if rep.Total.Supervision.Sessions == 0 || rep.Total.Help.Accepted == 0 {
			t.Fatalf("empty report: %+v", rep.Total)
		}
		t.Logf("last 30 days by %s: median %v (min %v, max %v), %d sessions, %d rows", g,
			took[2].Round(time.Millisecond), took[0].Round(time.Millisecond), took[4].Round(time.Millisecond),
			rep.Total.Supervision.Sessions, len(rep.Rows))
	}
}
