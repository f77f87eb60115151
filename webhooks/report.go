package webhooks

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/app"
)

// ReportService is what the report route asks of the app (implemented by *app.App): the
// supervision report computed from the tenant's audit trail. Supervisor and admin keys; the app
// limits a supervisor key to its own activity.
type ReportService interface {
	SupervisionReport(ctx context.Context, p app.Principal, q app.ReportQuery) (app.Report, error)
}

var _ ReportService = (*app.App)(nil)

// reportRoutes registers the report route on v1, with mw, when the Service implements
// ReportService.
func (s *Server) reportRoutes(v1 *echo.Group, mw ...echo.MiddlewareFunc) {
	rs, ok := s.cfg.Service.(ReportService)
	if !ok {
		return
	}
	v1.GET("/reports/supervision", func(c *echo.Context) error { return supervisionReport(c, rs) }, mw...)
}

// GET /v1/reports/supervision?from=&to=&group_by=supervisor|agent|day
func supervisionReport(c *echo.Context, svc ReportService) error {
	q := c.Request().URL.Query()
	rq := app.ReportQuery{GroupBy: q.Get("group_by")}
	switch rq.GroupBy {
	case "", app.GroupBySupervisor, app.GroupByAgent, app.GroupByDay:
	default:
		return fieldError("group_by", "want supervisor, agent or day")
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &rq.From}, {"to", &rq.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return fieldError(p.name, "want an RFC 3339 time, e.g. 2026-03-01T00:00:00Z")
			}
			*p.dst = t
		}
	}
	r, err := svc.SupervisionReport(c.Request().Context(), principal(c), rq)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}
