package webhooks

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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

// BenchmarkGetCallsHTTP is GET /v1/calls over real HTTP on loopback (keep-alive clients, the
// server's full stack), 50 calls listed:
//
//	go test -run '^$' -bench BenchmarkGetCallsHTTP ./webhooks/
func BenchmarkGetCallsHTTP(b *testing.B) {
	e := newEnv(b)
	for i := range 50 {
		e.svc.calls = append(e.svc.calls, app.Call{
			ID: fmt.Sprintf("1709373500.%d", i), Tenant: "acme", Agent: fmt.Sprintf("%d", 100+i),
			CustomerNumber: "+14155550100", Direction: "inbound", StartedAt: t0,
			Supervisors: []app.Participant{},
		})
	}
	srv := httptest.NewServer(e.srv.Handler())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/calls", nil)
			req.Header.Set("Authorization", "Bearer "+keySup)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("GET /v1/calls = %d", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkPostSupervisions is POST /v1/supervisions in process with a fresh Idempotency-Key per
// request (authentication, body validation, the idempotency claim and record in Redis, the
// 202 answer); the app is a fake, so the supervisor's call is not placed:
//
//	go test -run '^$' -bench BenchmarkPostSupervisions ./webhooks/
func BenchmarkPostSupervisions(b *testing.B) {
	e := newEnv(b)
	h := e.srv.Handler()
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/v1/supervisions", strings.NewReader(`{"agent":"100","mode":"spy"}`))
			req.Header.Set("Authorization", "Bearer "+keySup)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%d", n.Add(1)))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusAccepted {
				b.Fatalf("POST /v1/supervisions = %d %s", rec.Code, rec.Body)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
