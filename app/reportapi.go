package app

import (
	"context"
	"fmt"
	"time"

	"github.com/earpiece/earpiece/config"
)

// SupervisionReport computes the supervision report of the principal's tenant from its audit
// trail (report.go). Admin keys get the whole tenant; a supervisor key gets its own activity
// only: the sessions it ran, its refused attempts and the help requests it accepted (so with
// group_by supervisor, one row: its own). Agent keys may not.
func (a *App) SupervisionReport(ctx context.Context, p Principal, q ReportQuery) (Report, error) {
	if err := p.Authorize(PermSupervise); err != nil {
		return Report{}, err
	}
	invalid := func(field, msg string) error {
		e := apiError(ErrInvalid, "invalid_field", field+": "+msg)
		e.Field = field
		return e
	}
	now := a.cfg.Clock()
	if q.To.IsZero() {
		q.To = now
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-DefaultReportSpan)
	}
	if q.GroupBy == "" {
		q.GroupBy = GroupByDay
	}
	switch {
	case q.GroupBy != GroupBySupervisor && q.GroupBy != GroupByAgent && q.GroupBy != GroupByDay:
		return Report{}, invalid("group_by", "want supervisor, agent or day")
	case !q.To.After(q.From):
		return Report{}, invalid("to", "want a time after from")
	case q.To.Sub(q.From) > MaxReportSpan:
		return Report{}, invalid("to", fmt.Sprintf("at most %d days after from", int(MaxReportSpan/(24*time.Hour))))
	}
	// Read on past To to see how the window's sessions and requests ended, up to now (a window
	// that ends in the future is read to now: sessions still active count their time to now).
	w := reportWindow{From: q.From, To: q.To, Until: q.To.Add(ReportLookahead), GroupBy: q.GroupBy}
	if now.Before(w.Until) {
		w.Until = now
	}
	if p.Role == config.RoleSupervisor {
		w.Only = p.Extension
	}
	r, err := a.reportFromRollups(ctx, p.Tenant, w, now)
	if err != nil {
		return Report{}, storeFailure(err)
	}
	return r, nil
}
