package app

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

// memRollups reads windows of an in-memory trail as the app reads Redis: each rollup goes
// through JSON, as the cache keeps it.
func memRollups(t testing.TB, trail []store.AuditEntry, w reportWindow) (
	func(reportWindow) (*reportRollup, error), func(time.Time, int) ([]*reportRollup, error)) {
	scan := func(sw reportWindow) (*reportRollup, error) {
		b := newReportBuilder(sw)
		for i := range trail {
			b.Add(&trail[i])
		}
		data, err := json.Marshal(b.rollup())
		if err != nil {
			t.Fatal(err)
		}
		var r reportRollup
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		return &r, nil
	}
	days := func(first time.Time, n int) ([]*reportRollup, error) {
		out := make([]*reportRollup, n)
		for i := range out {
			out[i], _ = scan(dayWindow(first.Add(time.Duration(i)*reportDaySpan), w))
		}
		return out, nil
	}
	return scan, days
}

func directReport(trail []store.AuditEntry, w reportWindow) Report {
	b := newReportBuilder(w)
	for i := range trail {
		b.Add(&trail[i])
	}
	return b.Report()
}

// sameReport compares two reports as the API shows them (JSON).
func sameReport(t *testing.T, name string, got, want Report) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	var gv, wv any
	_ = json.Unmarshal(g, &gv)
	_ = json.Unmarshal(w, &wv)
	if !reflect.DeepEqual(gv, wv) {
		t.Errorf("%s: the rollup path differs from the direct path:\n got %s\nwant %s", name, g, w)
	}
}

// TestReportRollupsMatchDirect: reports composed of day rollups (through JSON), partial days and
// the trail after the first unsettled day equal the reports computed over the whole window, on
// the hand-checked fixtures and on a synthetic month, for every grouping and scope, with windows
// on and off midnight.
func TestReportRollupsMatchDirect(t *testing.T) {
	month := time.Duration(benchDays) * 24 * time.Hour
	synth := synthTrail(40_000, reportDay) // a month of a busy tenant (the benchmark runs benchEntries)
	for _, tc := range []struct {
		name     string
		trail    []store.AuditEntry
		from, to time.Time
		now      time.Time
		minUsed  int
	}{
		// Fixtures: day 0 is not settled (H5 is still in progress at 01:00 on day 1), so what
		// follows it is read from the trail; day 1 ends with S6 still active, but its
		// look-ahead is the report's.
		{"fixtures", reportTrail(), at(0, "00:00:00.000"), at(2, "00:00:00.000"), at(5, "00:00:00.000"), 0},
		{"fixtures before the look-ahead is over", reportTrail(), at(0, "00:00:00.000"), at(2, "00:00:00.000"), at(2, "00:30:00.000"), 0},
		{"fixtures from mid-day", reportTrail(), at(0, "12:00:00.000"), at(2, "00:00:00.000"), at(5, "00:00:00.000"), 0},
		{"fixtures to mid-day", reportTrail(), at(0, "00:00:00.000"), at(1, "23:40:00.000"), at(5, "00:00:00.000"), 0},
		{"fixtures one day", reportTrail(), at(1, "00:00:00.000"), at(2, "00:00:00.000"), at(5, "00:00:00.000"), 1},
		{"synthetic month", synth, reportDay, reportDay.Add(month), reportDay.Add(40 * 24 * time.Hour), benchDays},
		{"synthetic month off midnight", synth, reportDay.Add(9*time.Hour + 17*time.Minute), reportDay.Add(month - 5*time.Hour),
			reportDay.Add(40 * 24 * time.Hour), benchDays - 2},
		{"synthetic month, now in it", synth, reportDay.Add(time.Hour), reportDay.Add(20*24*time.Hour + 30*time.Minute),
			reportDay.Add(20*24*time.Hour + 30*time.Minute), 18},
	} {
		for _, g := range []struct{ by, only string }{
			{GroupByDay, ""}, {GroupBySupervisor, ""}, {GroupByAgent, ""}, {GroupBySupervisor, "700"}, {GroupByAgent, "701"},
		} {
			until := tc.to.Add(ReportLookahead)
			if tc.now.Before(until) {
				until = tc.now
			}
			w := reportWindow{From: tc.from, To: tc.to, Until: until, GroupBy: g.by, Only: g.only}
			scan, days := memRollups(t, tc.trail, w)
			got, used, err := composeReport(w, tc.now, scan, days)
			if err != nil {
				t.Fatal(err)
			}
			name := tc.name + " by " + g.by + " of " + g.only
			sameReport(t, name, got, directReport(tc.trail, w))
			if used < tc.minUsed {
				t.Errorf("%s: %d days from rollups, want at least %d", name, used, tc.minUsed)
			}
		}
	}
}

// TestFastReportRollupCache: on a real Redis, a day that is over is cached as a rollup, the next
// report reads it, and an entry appended to that day's span (its marks change) makes the report
// compute the day from the trail again.
func TestFastReportRollupCache(t *testing.T) {
	now := time.Now().UTC()
	day := now.Truncate(reportDaySpan)
	if now.Sub(day) < time.Minute || day.Add(reportDaySpan).Sub(now) < time.Minute {
		t.Skip("too close to midnight UTC: the entries would fall on two days")
	}
	clk := &testClock{now: now.Truncate(time.Second)}
	r := newFastRig(t, func(c *Config) { c.Clock = clk.Now })
	ctx := context.Background()
	refusedRaise := func() {
		t.Helper()
		if _, err := r.app.Raise(ctx, pAgent744, RaiseRequest{}); err == nil {
			t.Fatal("a raise with no call was not refused")
		}
	}
	refusedRaise()
	clk.Advance(2 * reportDaySpan) // the day and its look-ahead are over
	q := ReportQuery{From: day, To: day.Add(reportDaySpan), GroupBy: GroupByDay}
	refusals := func() int64 {
		t.Helper()
		rep, err := r.app.SupervisionReport(ctx, pAdmin, q)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Total.Help.Refusals
	}
	if n := refusals(); n != 1 {
		t.Fatalf("%d help refusals, want 1", n)
	}
	span := []store.ReportRollupSpan{{From: day, To: day.Add(reportDaySpan + ReportLookahead), Name: day.Format(time.DateOnly) + ":day:"}}
	slots, err := r.store.ReportRollups(ctx, "acme", span)
	if err != nil || slots[0].Data == nil || slots[0].Mark.LastID == "" || slots[0].Mark.LastHash == "" {
		t.Fatalf("no rollup cached: %+v, %v", slots, err)
	}
	// The cache is what the next report reads: doctor it (keeping its marks) and see.
	var roll reportRollup
	if err := json.Unmarshal(slots[0].Data, &roll); err != nil {
		t.Fatal(err)
	}
	roll.Total.HelpRefusals = 99
	data, _ := json.Marshal(roll)
	if err := r.store.SetReportRollup(ctx, "acme", span[0].Name, data); err != nil {
		t.Fatal(err)
	}
	if n := refusals(); n != 99 {
		t.Fatalf("%d help refusals, want the cached 99", n)
	}
	// A new entry in the day's span: the rollup no longer matches the trail and is recomputed.
	clk.Advance(-2 * reportDaySpan) // entries are selected by Redis's clock, counted by the app's
	refusedRaise()
	clk.Advance(2 * reportDaySpan)
	if n := refusals(); n != 2 {
		t.Fatalf("%d help refusals after a new entry, want 2 from the trail", n)
	}
	if n := refusals(); n != 2 {
		t.Fatalf("%d help refusals from the new rollup, want 2", n)
	}
}
