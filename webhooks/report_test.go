package webhooks

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
)

// fakeService's report: figures scripted, the query echoed, behind the app's role rule (a
// supervisor key gets its own activity).
func (f *fakeService) SupervisionReport(ctx context.Context, p app.Principal, q app.ReportQuery) (app.Report, error) {
	if err := p.Authorize(app.PermSupervise); err != nil {
		return app.Report{}, err
	}
	f.record("SupervisionReport")
	if q.GroupBy == "" {
		q.GroupBy = app.GroupByDay
	}
	fig := app.ReportFigures{
		Supervision: app.SupervisionFigures{
			Sessions: 2, SessionsByMode: map[string]int64{"spy": 1, "whisper": 1, "barge": 0},
			SecondsInMode: map[string]float64{"spy": 60, "whisper": 30.5, "barge": 0}, Switches: 1,
			JoinsByTrigger: map[string]int64{"feature_code": 1, "phone": 1}, EndsByReason: map[string]int64{"call_ended": 2},
			Refusals: 3, RefusalsByReason: map[string]int64{"talker_busy": 3},
		},
		Help: app.HelpFigures{
			Raised: 1, RaisedByTrigger: map[string]int64{"api": 1}, Accepted: 1, Closed: 1,
			ClosedByReason:   map[string]int64{"agent": 1},
			TimeToAccept:     app.DurationStats{Count: 1, MedianSeconds: 5, P90Seconds: 5, TotalSeconds: 5},
			TimeInProgress:   app.DurationStats{Count: 1, MedianSeconds: 180, P90Seconds: 180, TotalSeconds: 180},
			RefusalsByReason: map[string]int64{},
		},
	}
	r := app.Report{From: q.From, To: q.To, Until: q.To.Add(app.ReportLookahead), GroupBy: q.GroupBy, Total: fig,
		Rows: []app.ReportRow{{Key: "200", ReportFigures: fig}}}
	if p.Role == config.RoleSupervisor {
		r.Supervisor = p.Extension
	}
	return r, nil
}

// TestReportEdge: the JSON shape (golden), the query as the app gets it, the roles, and the
// query checks.
func TestReportEdge(t *testing.T) {
	e := newEnv(t)
	path := "/v1/reports/supervision?" + url.Values{"from": {"2026-03-01T00:00:00Z"}, "to": {"2026-03-02T00:00:00Z"},
		"group_by": {"supervisor"}}.Encode()
	rec := e.do(http.MethodGet, path, keyAdmin, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, rec.Code, rec.Body)
	}
	golden(t, "report.golden.json", rec.Body.Bytes())
	if got := e.svc.take(); len(got) != 1 || got[0] != "SupervisionReport" {
		t.Errorf("calls %v", got)
	}

	rec = e.do(http.MethodGet, "/v1/reports/supervision", keySup, "")
	var r struct {
		GroupBy    string    `json:"group_by"`
		Supervisor string    `json:"supervisor"`
		To         time.Time `json:"to"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); rec.Code != http.StatusOK || err != nil || r.Supervisor != "200" || r.GroupBy != "day" {
		t.Errorf("supervisor key: %d %s", rec.Code, rec.Body)
	}

	for _, tc := range []struct {
		key, query string
		want       int
		field      string
	}{
		{keyAgent, "", http.StatusForbidden, ""},
		{keyAdmin, "group_by=team", http.StatusUnprocessableEntity, "group_by"},
		{keyAdmin, "from=yesterday", http.StatusUnprocessableEntity, "from"},
		{keyAdmin, "to=2026-03-02", http.StatusUnprocessableEntity, "to"},
		{"", "", http.StatusUnauthorized, ""},
	} {
		rec := e.do(http.MethodGet, "/v1/reports/supervision?"+tc.query, tc.key, "")
		var body struct {
			Error struct{ Field string } `json:"error"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != tc.want || body.Error.Field != tc.field {
			t.Errorf("%q with key %q = %d %s, want %d field %q", tc.query, tc.key, rec.Code, rec.Body, tc.want, tc.field)
		}
	}
	if got := e.svc.take(); len(got) != 1 {
		t.Errorf("only the supervisor's request reaches the app: %v", got)
	}
}
