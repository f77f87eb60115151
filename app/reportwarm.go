package app

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/earpiece/earpiece/store"
)

// Report warming: the rollups of recent days computed ahead of the reports that need them
// (reportrollup.go), so the first report over a month does not read the month's trail.
//
// Every Config.ReportWarm, the instance that holds the lease (as the help sweep: a claim renewed
// at every tick, lapsing when its instance stops) looks, for every tenant of the directory, at
// the last reportWarmDays UTC days whose span (the day and its look-ahead) is over by
// Config.Clock, with reportWarmSettle to spare for clocks that differ, most recent first, and
// computes the rollups those days lack, for the groupings admins use (day, supervisor, agent) at
// admin scope: one read of the day's trail for all three. At most reportWarmPerTick days are read
// per tick over all tenants, so warming never holds Redis for long; a month of a new tenant is
// warm after a few ticks. What it caches is what a report would (the same builder, the span's
// marks read before the trail), so a report trusts it the same way; a rollup already cached is
// left alone (one whose span changed since is recomputed by the report that reads it). Supervisor
// keys' reports (one supervisor's scope) are still cached lazily.

// reportWarmLease is the claim the warming instance holds.
const reportWarmLease = "report-warm"

const (
	// reportWarmDays is how many finished days back warming looks: a report spans at most 31.
	reportWarmDays = 31
	// reportWarmPerTick bounds the days read from the trail per tick, over all tenants.
	reportWarmPerTick = 4
	// reportWarmSettle is how long past its look-ahead a day is left before it is warmed.
	reportWarmSettle = 5 * time.Minute
)

// reportWarmGroupings are the groupings warmed, at admin scope.
var reportWarmGroupings = [...]string{GroupByDay, GroupBySupervisor, GroupByAgent}

// runReportWarm warms every ReportWarm until ctx is done, then gives up the lease.
func (a *App) runReportWarm(ctx context.Context) {
	t := time.NewTicker(a.cfg.ReportWarm)
	defer t.Stop()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
		defer cancel()
		if err := a.store.Release(cctx, reportWarmLease, a.cfg.Instance); err != nil && !errors.Is(err, store.ErrNotOwner) {
			a.log.Debug().Err(err).Msg("report warming: releasing the lease")
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.warmReports(ctx)
		}
	}
}

// warmReports computes the missing rollups of up to reportWarmPerTick days, if this instance
// holds the lease; it returns how many days it read.
func (a *App) warmReports(ctx context.Context) int {
	cctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	ok, err := a.store.Claim(cctx, reportWarmLease, a.cfg.Instance, 3*a.cfg.ReportWarm)
	cancel()
	if err != nil {
		a.log.Warn().Err(err).Msg("report warming: taking the lease")
		return 0
	}
	if !ok {
		return 0 // another instance warms
	}
	now := a.cfg.Clock()
	budget := reportWarmPerTick
	for _, t := range a.dir.Current().Tenants() {
		if budget == 0 || ctx.Err() != nil {
			break
		}
		budget -= a.warmTenant(ctx, t.ID, now, budget)
	}
	return reportWarmPerTick - budget
}

// lastWarmDay is the most recent UTC day whose span is over, with reportWarmSettle to spare.
func lastWarmDay(now time.Time) time.Time {
	return now.Add(-reportDaySpan - ReportLookahead - reportWarmSettle).Truncate(reportDaySpan)
}

// warmTenant computes the missing rollups of up to budget of the tenant's recent days, most
// recent first; it returns how many days it read (a failure ends the tenant's turn, counted).
func (a *App) warmTenant(ctx context.Context, tenant string, now time.Time, budget int) int {
	last := lastWarmDay(now)
	names := make([]string, 0, reportWarmDays*len(reportWarmGroupings))
	for i := range reportWarmDays {
		d := last.Add(-time.Duration(i) * reportDaySpan)
		for _, g := range reportWarmGroupings {
			names = append(names, rollupName(d, reportWindow{GroupBy: g}))
		}
	}
	cctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	cached, err := a.store.ReportRollupsCached(cctx, tenant, names)
	cancel()
	if err != nil {
		a.log.Warn().Err(err).Str("tenant", tenant).Msg("report warming: listing rollups")
		return 1
	}
	read := 0
	for i := range reportWarmDays {
		if read == budget || ctx.Err() != nil {
			break
		}
		var missing []string
		for j, g := range reportWarmGroupings {
			if !cached[i*len(reportWarmGroupings)+j] {
				missing = append(missing, g)
			}
		}
		if len(missing) == 0 {
			continue
		}
		read++
		d := last.Add(-time.Duration(i) * reportDaySpan)
		if err := a.warmDay(ctx, tenant, d, missing); err != nil {
			a.log.Warn().Err(err).Str("tenant", tenant).Time("day", d).Msg("report warming")
			break
		}
	}
	return read
}

// warmDay computes and caches the tenant's rollups of day in the groupings given (admin scope).
func (a *App) warmDay(ctx context.Context, tenant string, day time.Time, groupings []string) error {
	ws := make([]reportWindow, len(groupings))
	spans := make([]store.ReportRollupSpan, len(groupings))
	for i, g := range groupings {
		ws[i] = dayWindow(day, reportWindow{GroupBy: g})
		spans[i] = store.ReportRollupSpan{From: ws[i].From, To: ws[i].Until, Name: rollupName(day, ws[i])}
	}
	// The marks before the trail: an entry appended in between leaves the rollup stale, not wrong.
	cctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	slots, err := a.store.ReportRollups(cctx, tenant, spans)
	cancel()
	if err != nil {
		return err
	}
	rolls, err := a.scanRollups(ctx, tenant, ws)
	if err != nil {
		return err
	}
	for i, r := range rolls {
		r.Mark = slots[i].Mark
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
		err = a.store.SetReportRollup(cctx, tenant, spans[i].Name, data)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}
