package app

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// A month of a 500-agent tenant: about 2 million audit entries.
const (
	benchAgents      = 500
	benchSupervisors = 50
	benchEntries     = 2_000_000
	benchDays        = 30
)

var (
	benchTrailOnce sync.Once
	benchTrail     []store.AuditEntry
)

// synthTrail makes a month of trail of the shape app writes: sessions (join, mode changes, end),
// help requests (raise, escalate, accept, close, cancel, expire, lost races) and refusals, in
// time order, about n entries; the same every time (fixed seed).
func synthTrail(n int, start time.Time) []store.AuditEntry {
	return synthTrailSpan(n, start, time.Duration(benchDays)*24*time.Hour)
}

// synthTrailSpan is synthTrail over span from start.
func synthTrailSpan(n int, start time.Time, span time.Duration) []store.AuditEntry {
	rng := rand.New(rand.NewPCG(9, 2026))
	agents := make([]string, benchAgents)
	for i := range agents {
		agents[i] = strconv.Itoa(1000 + i)
	}
	sups := make([]string, benchSupervisors)
	for i := range sups {
		sups[i] = strconv.Itoa(700 + i)
	}
	modes := []string{"spy", "whisper", "barge"}
	reasons := []string{"not_allowed", "talker_busy", "no_active_call", "unknown_code"}
	out := make([]store.AuditEntry, 0, n+n/50)
	hash := func() string { return fmt.Sprintf("%064x", rng.Uint64()) } // realistic field sizes
	add := func(e store.AuditEntry) {
		e.Tenant, e.Hash, e.PrevHash = "acme", hash(), hash()
		out = append(out, e)
	}
	for id := 0; len(out) < n; id++ {
		t := start.Add(time.Duration(rng.Int64N(int64(span))))
		agent, sup := agents[rng.IntN(len(agents))], sups[rng.IntN(len(sups))]
		switch r := rng.IntN(100); {
		case r < 70: // a session: join, 0-3 switches, end
			sid := "sup-" + strconv.Itoa(id)
			mode := modes[rng.IntN(3)]
			trigger := []string{"feature_code", "api"}[rng.IntN(2)]
			add(store.AuditEntry{Time: t, Actor: sup, Action: "join", Target: agent, Outcome: "allowed",
				Session: sid, Mode: mode, Trigger: trigger, Call: "chan-" + agent})
			for range rng.IntN(4) {
				t = t.Add(time.Duration(5+rng.IntN(120)) * time.Second)
				add(store.AuditEntry{Time: t, Actor: sup, Action: "mode_change", Target: agent, Outcome: "allowed",
					Session: sid, Mode: modes[rng.IntN(3)], Trigger: "dtmf", Call: "chan-" + agent})
			}
			t = t.Add(time.Duration(5+rng.IntN(600)) * time.Second)
			add(store.AuditEntry{Time: t, Actor: sup, Action: "end", Target: agent, Outcome: "ok",
				Reason: ReasonSupervisorHangup, Session: sid, Call: "chan-" + agent})
		case r < 90: // a help request
			hid := "help-" + strconv.Itoa(id)
			h := func(t time.Time, action, outcome, reason, actor string) {
				add(store.AuditEntry{Time: t, Actor: actor, Action: action, Target: agent, Outcome: outcome,
					Reason: reason, HelpRequest: hid, Call: "chan-" + agent})
			}
			h(t, auditHelpRaise, "allowed", "", agent)
			wait := time.Duration(rng.IntN(700)) * time.Second
			if wait >= 2*time.Minute {
				h(t.Add(2*time.Minute), auditHelpEscalate, "allowed", "", sweepActor)
			}
			switch {
			case wait >= 10*time.Minute:
				h(t.Add(10*time.Minute), auditHelpExpire, "allowed", "", sweepActor)
			case rng.IntN(10) == 0:
				h(t.Add(wait), auditHelpCancel, "allowed", "", agent)
			default:
				h(t.Add(wait), auditHelpAccept, "allowed", "", sup)
				if rng.IntN(5) == 0 { // a lost race
					other := sups[rng.IntN(len(sups))]
					h(t.Add(wait+time.Millisecond), auditHelpAccept, "allowed", "", other)
					h(t.Add(wait+2*time.Millisecond), auditHelpAccept, store.OutcomeRefused, RefuseHelpState, other)
				}
				h(t.Add(wait+time.Duration(30+rng.IntN(900))*time.Second), auditHelpClose, "allowed", "", agent)
			}
		default: // a refused attempt
			add(store.AuditEntry{Time: t, Actor: sup, Action: "join", Target: agent, Outcome: store.OutcomeRefused,
				Reason: reasons[rng.IntN(len(reasons))], Session: "sup-" + strconv.Itoa(id), Trigger: "feature_code"})
		}
	}
	// Sorted by index: moving the entries themselves costs seconds.
	idx := make([]int32, len(out))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return out[a].Time.Compare(out[b].Time) })
	sorted := make([]store.AuditEntry, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted
}

func benchmarkTrail() []store.AuditEntry {
	benchTrailOnce.Do(func() { benchTrail = synthTrail(benchEntries, reportDay) })
	return benchTrail
}

// BenchmarkReportAggregate is the pure aggregation of a month of a 500-agent tenant's trail (2M
// entries, in memory) into a report, per grouping (reading them from Redis:
// store.BenchmarkScanAudit).
//
//	go test -run '^$' -bench BenchmarkReportAggregate -count 5 ./app/
func BenchmarkReportAggregate(b *testing.B) {
	trail := benchmarkTrail()
	month := time.Duration(benchDays) * 24 * time.Hour
	for _, g := range []string{GroupBySupervisor, GroupByAgent, GroupByDay} {
		b.Run(g, func(b *testing.B) {
			w := reportWindow{From: reportDay, To: reportDay.Add(month), Until: reportDay.Add(month + ReportLookahead), GroupBy: g}
			var r Report
			for b.Loop() {
				rb := newReportBuilder(w)
				for i := range trail {
					rb.Add(&trail[i])
				}
				r = rb.Report()
			}
			b.ReportMetric(float64(len(trail)), "entries")
			if r.Total.Supervision.Sessions == 0 || r.Total.Help.Accepted == 0 {
				b.Fatalf("empty report: %+v", r.Total)
			}
		})
	}
}

// TestSynthTrailReport checks the benchmark's trail is what it claims (so the benchmark measures
// a realistic report), on a small trail: every session counted, every race resolved.
func TestSynthTrailReport(t *testing.T) {
	trail := synthTrail(20_000, reportDay)
	month := time.Duration(benchDays) * 24 * time.Hour
	b := newReportBuilder(reportWindow{From: reportDay, To: reportDay.Add(month), Until: reportDay.Add(month + ReportLookahead), GroupBy: GroupByDay})
	var joins, raises, lost int64
	for i := range trail {
		b.Add(&trail[i])
		switch e := trail[i]; {
		case e.Action == "join" && e.Outcome == "allowed":
			joins++
		case e.Action == auditHelpRaise:
			raises++
		case e.Action == auditHelpAccept && e.Outcome == store.OutcomeRefused && e.Time.Before(reportDay.Add(month)):
			lost++
		}
	}
	r := b.Report()
	s, h := r.Total.Supervision, r.Total.Help
	if s.Sessions != joins || s.StillActive != 0 || h.Raised != raises || h.StillOpen != 0 || h.StillInProgress != 0 ||
		h.Accepted+h.Cancelled+h.Expired != h.Raised || h.Closed != h.Accepted || h.Refusals != lost || lost == 0 {
		t.Errorf("joins %d, raises %d, lost races %d: supervision %+v, help %+v", joins, raises, lost, s, h)
	}
	if len(r.Rows) < benchDays-1 {
		t.Errorf("%d day rows", len(r.Rows))
	}
}

// trailWindow is the part of a time-ordered trail in [from, until), as ScanAudit reads it.
func trailWindow(trail []store.AuditEntry, from, until time.Time) []store.AuditEntry {
	lo, _ := slices.BinarySearchFunc(trail, from, func(e store.AuditEntry, t time.Time) int { return e.Time.Compare(t) })
	hi, _ := slices.BinarySearchFunc(trail, until, func(e store.AuditEntry, t time.Time) int { return e.Time.Compare(t) })
	return trail[lo:hi]
}

// BenchmarkReportRollups is the request's work for a month of a 500-agent tenant (the 2M
// entries of BenchmarkReportAggregate) once its 30 days are cached as rollups in a real Redis:
// read the 30 rollups (one pipelined round trip, with their spans' marks), decode, merge, and
// render the report, per grouping. The trail itself is not in this Redis (the marks of an empty
// span match the rollups' empty marks); reading the partial days that a window off midnight
// adds costs what store.BenchmarkScanAudit gives per entry.
//
//	go test -run '^$' -bench BenchmarkReportRollups -count 5 ./app/
func BenchmarkReportRollups(b *testing.B) {
	trail := benchmarkTrail()
	month := time.Duration(benchDays) * 24 * time.Hour
	rs := redistest.Start(b)
	rdb := redis.NewClient(rs.Options())
	b.Cleanup(func() { rdb.Close() })
	a := &App{store: store.New(rdb, store.Options{}), log: zerolog.Nop()}
	ctx := context.Background()
	now := reportDay.Add(month + 10*24*time.Hour)
	for _, g := range []string{GroupBySupervisor, GroupByAgent, GroupByDay} {
		w := reportWindow{From: reportDay, To: reportDay.Add(month), Until: reportDay.Add(month + ReportLookahead), GroupBy: g}
		var size int
		for d := range benchDays {
			dw := dayWindow(reportDay.Add(time.Duration(d)*reportDaySpan), w)
			rb := newReportBuilder(dw)
			part := trailWindow(trail, dw.From, dw.Until)
			for i := range part {
				rb.Add(&part[i])
			}
			data, err := json.Marshal(rb.rollup())
			if err != nil {
				b.Fatal(err)
			}
			size += len(data)
			if err := a.store.SetReportRollup(ctx, "acme", rollupName(dw.From, w), data); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(g, func(b *testing.B) {
			var r Report
			for b.Loop() {
				var err error
				if r, err = a.reportFromRollups(ctx, "acme", w, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size)/benchDays, "rollup-bytes/day")
			if r.Total.Supervision.Sessions == 0 || r.Total.Help.Accepted == 0 {
				b.Fatalf("empty report: %+v", r.Total)
			}
		})
	}
}
