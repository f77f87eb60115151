package app

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/earpiece/earpiece/store"
)

// Report rollups: a month's report without reading a month of trail.
//
// The figures of a UTC day D (what report.go counts for the window [D, D+24h) read to
// D+24h+ReportLookahead) are cached in Redis (store keyReportRollup), per grouping and scope,
// once that span is over by the app's clock, computed by the same reportBuilder from the trail;
// the trail stays the one source: a rollup carries the marks (first and last entry ids and
// hashes) of the span it was read from, and one whose span's marks changed is ignored and
// computed again. A report of [From, To) is then the sum of: the partial first day (from the
// trail), the cached full days, and the rest (the partial last day, and days not over yet) from
// the trail read to Until, as the direct path does.
//
// Sums are exact: counts and times add up, and the rollups keep every duration sample (one per
// accepted or closed help request: a few thousand a day), so medians and p90 are those of the
// whole window. A day's rollup stands for the window's days only when reading past its
// look-ahead could not change it, that is when it is *settled*: no session still active and no
// help request open or in progress at its end. The first day that is not settled (a session
// longer than the look-ahead across midnight, say) and everything after it are read from the
// trail, as the direct path would. What a settled day still cannot see, and the direct path
// could: a refused help entry more than the look-ahead later about a request of that day with no
// attempt of its own before it (app audits its attempts first, so a refusal follows its own
// attempt, which it cancels), and so the supervisor that such a late refused accept of an admin
// key would be counted against.

// reportRollupVersion changes when what a rollup holds changes meaning; older ones are ignored.
const reportRollupVersion = 1

// reportRollupWorkers bounds how many missing days one report computes at once.
const reportRollupWorkers = 4

const reportDaySpan = 24 * time.Hour

// reportRollup is a day's figures as cached.
type reportRollup struct {
	V       int                    `json:"v"`
	Mark    store.AuditMark        `json:"mark"`
	Settled bool                   `json:"settled"`
	Total   rollFigures            `json:"total"`
	Groups  map[string]rollFigures `json:"groups"`
}

// rollFigures is figures as JSON (durations in ns).
type rollFigures struct {
	Sessions     int64                   `json:"sessions,omitempty"`
	Unanswered   int64                   `json:"unanswered,omitempty"`
	StillActive  int64                   `json:"still_active,omitempty"`
	Switches     int64                   `json:"switches,omitempty"`
	Refusals     int64                   `json:"refusals,omitempty"`
	ByMode       [len(reportModes)]int64 `json:"by_mode"`
	InMode       [len(reportModes)]int64 `json:"in_mode"`
	JoinsBy      map[string]int64        `json:"joins_by,omitempty"`
	EndsBy       map[string]int64        `json:"ends_by,omitempty"`
	RefusedBy    map[string]int64        `json:"refused_by,omitempty"`
	Raised       int64                   `json:"raised,omitempty"`
	Accepted     int64                   `json:"accepted,omitempty"`
	Closed       int64                   `json:"closed,omitempty"`
	Cancelled    int64                   `json:"cancelled,omitempty"`
	Escalated    int64                   `json:"escalated,omitempty"`
	Expired      int64                   `json:"expired,omitempty"`
	Open         int64                   `json:"open,omitempty"`
	InProgress   int64                   `json:"in_progress,omitempty"`
	HelpRefusals int64                   `json:"help_refusals,omitempty"`
	RaisedBy     map[string]int64        `json:"raised_by,omitempty"`
	ClosedBy     map[string]int64        `json:"closed_by,omitempty"`
	HelpRefused  map[string]int64        `json:"help_refused_by,omitempty"`
	ToAccept     []time.Duration         `json:"to_accept,omitempty"`
	Progress     []time.Duration         `json:"progress,omitempty"`
}

func (f *figures) roll() rollFigures {
	r := rollFigures{Sessions: f.sessions, Unanswered: f.unanswered, StillActive: f.stillActive, Switches: f.switches,
		Refusals: f.refusals, ByMode: f.byMode, JoinsBy: f.joinsBy, EndsBy: f.endsBy, RefusedBy: f.refusedBy,
		Raised: f.raised, Accepted: f.accepted, Closed: f.closed, Cancelled: f.cancelled, Escalated: f.escalated,
		Expired: f.expired, Open: f.open, InProgress: f.inProgress, HelpRefusals: f.helpRefusals,
		RaisedBy: f.raisedBy, ClosedBy: f.closedBy, HelpRefused: f.helpRefusedBy, ToAccept: f.toAccept, Progress: f.progress}
	for m, d := range f.inMode {
		r.InMode[m] = int64(d)
	}
	return r
}

// addRoll adds r's figures to f.
func (f *figures) addRoll(r *rollFigures) {
	f.sessions += r.Sessions
	f.unanswered += r.Unanswered
	f.stillActive += r.StillActive
	f.switches += r.Switches
	f.refusals += r.Refusals
	for m := range f.byMode {
		f.byMode[m] += r.ByMode[m]
		f.inMode[m] += time.Duration(r.InMode[m])
	}
	addCounts(&f.joinsBy, r.JoinsBy)
	addCounts(&f.endsBy, r.EndsBy)
	addCounts(&f.refusedBy, r.RefusedBy)
	f.raised += r.Raised
	f.accepted += r.Accepted
	f.closed += r.Closed
	f.cancelled += r.Cancelled
	f.escalated += r.Escalated
	f.expired += r.Expired
	f.open += r.Open
	f.inProgress += r.InProgress
	f.helpRefusals += r.HelpRefusals
	addCounts(&f.raisedBy, r.RaisedBy)
	addCounts(&f.closedBy, r.ClosedBy)
	addCounts(&f.helpRefusedBy, r.HelpRefused)
	f.toAccept = append(f.toAccept, r.ToAccept...)
	f.progress = append(f.progress, r.Progress...)
}

func addCounts(dst *map[string]int64, src map[string]int64) {
	for k, n := range src {
		bump(dst, k, n)
	}
}

// rollSum accumulates the figures of the segments of a report.
type rollSum struct {
	total  figures
	groups map[string]*figures
}

func (s *rollSum) add(r *reportRollup) {
	s.total.addRoll(&r.Total)
	for k, g := range r.Groups {
		f := s.groups[k]
		if f == nil {
			f = &figures{}
			s.groups[k] = f
		}
		f.addRoll(&g)
	}
}

// scanRollup computes the figures of window w from the trail, as a rollup (its mark unset).
func (a *App) scanRollup(ctx context.Context, tenant string, w reportWindow) (*reportRollup, error) {
	rs, err := a.scanRollups(ctx, tenant, []reportWindow{w})
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// scanRollups is scanRollup for windows that differ only in grouping and scope, in one read of
// the trail (that of ws[0]).
func (a *App) scanRollups(ctx context.Context, tenant string, ws []reportWindow) ([]*reportRollup, error) {
	bs := make([]*reportBuilder, len(ws))
	for i, w := range ws {
		bs[i] = newReportBuilder(w)
	}
	err := a.store.ScanAudit(ctx, tenant, ws[0].From, ws[0].Until, func(entries []store.AuditEntry) error {
		for i := range entries {
			for _, b := range bs {
				b.Add(&entries[i])
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*reportRollup, len(bs))
	for i, b := range bs {
		out[i] = b.rollup()
	}
	return out, nil
}

// rollup finishes the aggregation into a rollup (its mark unset).
func (b *reportBuilder) rollup() *reportRollup {
	r := &reportRollup{V: reportRollupVersion, Settled: b.finish(), Total: b.total.roll(),
		Groups: make(map[string]rollFigures, len(b.groups))}
	for k, g := range b.groups {
		r.Groups[k] = g.roll()
	}
	return r
}

// rollupName is the cache name of day's rollup for w's grouping and scope.
func rollupName(day time.Time, w reportWindow) string {
	return day.Format(time.DateOnly) + ":" + w.GroupBy + ":" + w.Only
}

// dayWindow is the window of the UTC day from day, with w's grouping and scope.
func dayWindow(day time.Time, w reportWindow) reportWindow {
	return reportWindow{From: day, To: day.Add(reportDaySpan), Until: day.Add(reportDaySpan + ReportLookahead),
		GroupBy: w.GroupBy, Only: w.Only}
}

// dayRollups are the rollups of the days from first (n of them), from the cache where it holds
// one for the span as it is now, else computed from the trail (and cached).
func (a *App) dayRollups(ctx context.Context, tenant string, w reportWindow, first time.Time, n int) ([]*reportRollup, error) {
	spans := make([]store.ReportRollupSpan, n)
	for i := range spans {
		d := first.Add(time.Duration(i) * reportDaySpan)
		dw := dayWindow(d, w)
		spans[i] = store.ReportRollupSpan{From: dw.From, To: dw.Until, Name: rollupName(d, w)}
	}
	slots, err := a.store.ReportRollups(ctx, tenant, spans)
	if err != nil {
		return nil, err
	}
	out := make([]*reportRollup, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, reportRollupWorkers)
	)
	for i, slot := range slots {
		if slot.Data != nil {
			var r reportRollup
			if json.Unmarshal(slot.Data, &r) == nil && r.V == reportRollupVersion && r.Mark == slot.Mark {
				out[i] = &r
				continue
			}
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r, err := a.scanRollup(ctx, tenant, dayWindow(spans[i].From, w))
			if err != nil {
				mu.Lock()
				firstErr = firstOf(firstErr, err)
				mu.Unlock()
				return
			}
			r.Mark = slot.Mark
			out[i] = r
			if data, err := json.Marshal(r); err == nil {
				if err := a.store.SetReportRollup(ctx, tenant, spans[i].Name, data); err != nil {
					a.log.Warn().Err(err).Str("tenant", tenant).Str("rollup", spans[i].Name).Msg("report: caching a day's rollup")
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

func firstOf(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// reportFromRollups is the report of w, as the direct path computes it, from the cached days it
// spans (see above) and the trail for the rest.
func (a *App) reportFromRollups(ctx context.Context, tenant string, w reportWindow, now time.Time) (Report, error) {
	r, _, err := composeReport(w, now,
		func(w reportWindow) (*reportRollup, error) { return a.scanRollup(ctx, tenant, w) },
		func(first time.Time, n int) ([]*reportRollup, error) { return a.dayRollups(ctx, tenant, w, first, n) })
	return r, err
}

// composeReport is reportFromRollups given how to read a window from the trail (scan) and how to
// get the rollups of n days from first (days); used is how many days' rollups it used.
func composeReport(w reportWindow, now time.Time, scan func(reportWindow) (*reportRollup, error),
	days func(first time.Time, n int) ([]*reportRollup, error)) (_ Report, used int, _ error) {
	firstDay := w.From.Truncate(reportDaySpan)
	if firstDay.Before(w.From) {
		firstDay = firstDay.Add(reportDaySpan)
	}
	n := 0
	for d := firstDay; !d.Add(reportDaySpan).After(w.To) && !d.Add(reportDaySpan+ReportLookahead).After(now); d = d.Add(reportDaySpan) {
		n++
	}
	sum := rollSum{groups: map[string]*figures{}}
	cursor := w.From
	if n > 0 && firstDay.After(w.From) {
		head, err := scan(reportWindow{From: w.From, To: firstDay, Until: firstDay.Add(ReportLookahead),
			GroupBy: w.GroupBy, Only: w.Only})
		if err != nil {
			return Report{}, 0, err
		}
		if head.Settled {
			sum.add(head)
			cursor = firstDay
		} else {
			n = 0
		}
	}
	if n > 0 {
		rolls, err := days(firstDay, n)
		if err != nil {
			return Report{}, 0, err
		}
		for i, r := range rolls {
			d := firstDay.Add(time.Duration(i) * reportDaySpan)
			if !r.Settled && !dayWindow(d, w).Until.Equal(w.Until) {
				break
			}
			sum.add(r)
			cursor = d.Add(reportDaySpan)
			used++
		}
	}
	if cursor.Before(w.To) {
		rest, err := scan(reportWindow{From: cursor, To: w.To, Until: w.Until, GroupBy: w.GroupBy, Only: w.Only})
		if err != nil {
			return Report{}, 0, err
		}
		sum.add(rest)
	}
	return renderReport(w, &sum.total, sum.groups), used, nil
}
