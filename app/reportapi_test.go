package app

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

// TestFastReportFromTrail: the report of what the app itself wrote to a real Redis (so the
// report and the writers agree on action names and fields): a feature-code session of 60 s, a
// help request accepted after 5 s (a second accept losing) and closed 180 s later; then the
// role rules and the query checks.
func TestFastReportFromTrail(t *testing.T) {
	// The app's clock runs near Redis's: the window selects entries by when Redis recorded them.
	clk := &testClock{now: time.Now().UTC().Truncate(time.Second)}
	start := clk.Now()
	r := newFastRig(t, func(c *Config) { c.Clock = clk.Now })
	ctx := context.Background()

	agent := r.ari.Call("PJSIP/744")
	r.waitCall("acme", "744")
	h, err := r.app.Raise(ctx, pAgent744, RaiseRequest{})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	if _, err := r.app.Accept(ctx, pAdam, h.ID, AcceptRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.app.Accept(ctx, pAdmin, h.ID, AcceptRequest{Supervisor: "700"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second accept: %v, want a conflict", err)
	}
	clk.Advance(180 * time.Second)
	if _, err := r.app.CloseHelp(ctx, pAgent744, h.ID); err != nil {
		t.Fatal(err)
	}

	adam := r.ari.Dial("PJSIP/700", "acme", "*90744")
	r.active(adam)
	clk.Advance(60 * time.Second)
	r.ari.HangupFromPhone(adam)
	r.eventually("the session's end audited", func() bool {
		return slices.ContainsFunc(r.audit("acme"), func(e store.AuditEntry) bool { return e.Action == "end" && e.Actor == "700" })
	})
	clk.Advance(time.Second)
	_ = agent

	q := ReportQuery{From: start.Add(-time.Minute), To: start.Add(time.Hour), GroupBy: GroupBySupervisor}
	rep, err := r.app.SupervisionReport(ctx, pAdmin, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Key != "700" {
		t.Fatalf("rows %+v", rep.Rows)
	}
	sv, hp := rep.Total.Supervision, rep.Total.Help
	if sv.Sessions != 1 || sv.SessionsByMode["spy"] != 1 || sv.SecondsInMode["spy"] != 60 || sv.JoinsByTrigger["feature_code"] != 1 ||
		sv.EndsByReason[ReasonSupervisorHangup] != 1 || sv.StillActive != 0 || sv.Refusals != 0 {
		t.Errorf("supervision %+v", sv)
	}
	if hp.Raised != 1 || hp.Accepted != 1 || hp.Closed != 1 || hp.ClosedByReason[store.HelpReasonAgent] != 1 ||
		hp.TimeToAccept != (DurationStats{Count: 1, MedianSeconds: 5, P90Seconds: 5, TotalSeconds: 5}) ||
		hp.TimeInProgress != (DurationStats{Count: 1, MedianSeconds: 180, P90Seconds: 180, TotalSeconds: 180}) ||
		hp.Refusals != 1 || hp.RefusalsByReason[RefuseHelpState] != 1 {
		t.Errorf("help %+v", hp)
	}
	if !rep.Until.Equal(clk.Now()) {
		t.Errorf("until %v, want now %v", rep.Until, clk.Now())
	}

	// A supervisor key: its own activity; another supervisor's is empty.
	own, err := r.app.SupervisionReport(ctx, pAdam, q)
	if err != nil || own.Supervisor != "700" || own.Total.Supervision.Sessions != 1 || own.Total.Help.Accepted != 1 {
		t.Errorf("Adam's own report: %+v, %v", own, err)
	}
	beth, err := r.app.SupervisionReport(ctx, pBeth, q)
	if err != nil || beth.Total.Supervision.Sessions != 0 || beth.Total.Help.Raised != 0 || len(beth.Rows) != 0 {
		t.Errorf("Beth's own report: %+v, %v", beth, err)
	}
	if _, err := r.app.SupervisionReport(ctx, pAgent744, q); !errors.Is(err, ErrForbidden) {
		t.Errorf("agent key: %v, want forbidden", err)
	}
	for _, bad := range []ReportQuery{
		{GroupBy: "team"},
		{From: start, To: start},
		{From: start, To: start.Add(MaxReportSpan + time.Second)},
	} {
		if _, err := r.app.SupervisionReport(ctx, pAdmin, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want invalid", bad, err)
		}
	}
	// Defaults: the last 24 h, by day.
	def, err := r.app.SupervisionReport(ctx, pAdmin, ReportQuery{})
	if err != nil || def.GroupBy != GroupByDay || !def.To.Equal(clk.Now()) || def.From != def.To.Add(-DefaultReportSpan) ||
		def.Total.Supervision.Sessions != 1 {
		t.Errorf("defaults: %+v, %v", def, err)
	}
}
