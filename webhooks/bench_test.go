package webhooks

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/earpiece/earpiece/app"
)

// BenchmarkGetCalls measures GET /v1/calls in process (authentication with a bootstrap key,
// the handler, JSON encoding) with a fake app returning 50 calls, from parallel clients:
//
//	go test -run '^$' -bench BenchmarkGetCalls ./webhooks/
func BenchmarkGetCalls(b *testing.B) {
	e := newEnv(b)
	for i := range 50 {
		e.svc.calls = append(e.svc.calls, app.Call{
			ID: fmt.Sprintf("1709373500.%d", i), Tenant: "acme", Agent: fmt.Sprintf("%d", 100+i),
			CustomerNumber: "+14155550100", Direction: "inbound", StartedAt: t0.Add(-time.Duration(i) * time.Second),
			Supervisors: []app.Participant{{SessionID: "sup-1", Extension: "200", Mode: "spy", State: "active"}},
		})
	}
	h := e.srv.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, "/v1/calls", nil)
			req.Header.Set("Authorization", "Bearer "+keySup)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("GET /v1/calls = %d %s", rec.Code, rec.Body)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
