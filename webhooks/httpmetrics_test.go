package webhooks

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// durationSeries returns earpiece_http_request_duration_seconds' series as
// "METHOD ROUTE CODE" -> number of observations.
func durationSeries(t *testing.T, reg *prometheus.Registry) map[string]uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "earpiece_http_request_duration_seconds" {
			continue
		}
		if mf.GetType().String() != "HISTOGRAM" {
			t.Fatalf("type %v, want histogram", mf.GetType())
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out[l["method"]+" "+l["route"]+" "+l["code"]] = m.GetHistogram().GetSampleCount()
		}
	}
	return out
}

// TestRequestDurationHistogram: every answer is observed under its route's pattern, never its
// path; paths no route matches and invented methods share one label each, so no client can
// make series without bound; event streams are not observed, a refused one is.
func TestRequestDurationHistogram(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *Config) {
		c.Registerer, c.Gatherer = reg, reg
		c.MaxStreamLifetime = 300 * time.Millisecond
	})

	e.do(http.MethodGet, "/healthz", "", "")
	for i := range 3 {
		e.do(http.MethodGet, fmt.Sprintf("/v1/supervisions/nope-%d", i), keySup, "")
	}
	for i := range 50 {
		e.do(http.MethodGet, fmt.Sprintf("/no/such/path/%d", i), "", "")
	}
	e.do(http.MethodDelete, "/healthz", "", "") // 405
	e.do("BREW", "/healthz", "", "")
	e.do(http.MethodGet, "/v1/events", "", "") // refused: no key

	ts := e.httpServer()
	s := openStream(t, ts, "/v1/events", keySup)
	if s.status != http.StatusOK {
		t.Fatalf("stream: %d", s.status)
	}
	select {
	case <-s.done: // ended at MaxStreamLifetime: its handler has returned
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end at its lifetime")
	}

	got := durationSeries(t, reg)
	want := map[string]uint64{
		"GET /healthz 200":             1,
		"GET /v1/supervisions/:id 404": 3,
		"GET unmatched 404":            50,
		"DELETE unmatched 405":         1,
		"other unmatched 405":          1,
		"GET /v1/events 401":           1,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %d observations, want %d", k, got[k], n)
		}
	}
	for k := range got {
		if strings.Contains(k, "nope") || strings.Contains(k, "/no/such") {
			t.Errorf("a path became a label: %q", k)
		}
		if strings.HasPrefix(k, "GET /v1/events 200") {
			t.Errorf("an event stream was observed: %q", k)
		}
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want exactly %v", got, want)
	}
}
