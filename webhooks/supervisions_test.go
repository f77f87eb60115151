package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/store"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestIdempotentRetry(t *testing.T) {
	e := newEnv(t)
	body := `{"agent":"100","mode":"whisper"}`
	first := e.do(http.MethodPost, "/v1/supervisions", keySup, body, HeaderIdempotencyKey, "req-1")
	if first.Code != http.StatusAccepted {
		t.Fatalf("first = %d %s", first.Code, first.Body)
	}
	if first.Header().Get(HeaderIdempotentReplayed) != "" {
		t.Error("first answer marked as replayed")
	}
	second := e.do(http.MethodPost, "/v1/supervisions", keySup, body, HeaderIdempotencyKey, "req-1")
	if second.Code != first.Code || !bytes.Equal(second.Body.Bytes(), first.Body.Bytes()) {
		t.Errorf("retry = %d %s, want %d %s", second.Code, second.Body, first.Code, first.Body)
	}
	if second.Header().Get(HeaderIdempotentReplayed) != "true" {
		t.Error("retry not marked Idempotent-Replayed")
	}
	if n := e.svc.count("Join"); n != 1 {
		t.Errorf("Join called %d times, want 1", n)
	}
	var sess app.SessionView
	if err := json.Unmarshal(first.Body.Bytes(), &sess); err != nil || sess.State != store.StateRinging || sess.Mode != "whisper" || sess.Supervisor != "200" {
		t.Errorf("session = %+v, %v", sess, err)
	}

	// The answer is kept for IdempotencyTTL.
	keys := e.rdb.Keys(t.Context(), store.Prefix+"idem:acme:*").Val()
	if len(keys) != 1 {
		t.Fatalf("idempotency keys = %v", keys)
	}
	if ttl := e.rdb.PTTL(t.Context(), keys[0]).Val(); ttl < 23*time.Hour || ttl > 24*time.Hour {
		t.Errorf("answer TTL = %v, want 24h", ttl)
	}

	// Another key: a new join.
	third := e.do(http.MethodPost, "/v1/supervisions", keySup, body, HeaderIdempotencyKey, "req-2")
	if third.Code != http.StatusAccepted || bytes.Equal(third.Body.Bytes(), first.Body.Bytes()) || e.svc.count("Join") != 2 {
		t.Errorf("new key = %d %s, Join count %d", third.Code, third.Body, e.svc.count("Join"))
	}
	// Same key, different body: 422.
	rec := e.do(http.MethodPost, "/v1/supervisions", keySup, `{"agent":"101","mode":"whisper"}`, HeaderIdempotencyKey, "req-1")
	if rec.Code != http.StatusUnprocessableEntity || apiErr(t, rec).Code != codeIdempotencyMismatch {
		t.Errorf("different body = %d %s", rec.Code, rec.Body)
	}
	// Same key and body from another API key of the tenant: a different request.
	rec = e.do(http.MethodPost, "/v1/supervisions", keyAdmin, `{"agent":"100","supervisor":"200","mode":"whisper"}`, HeaderIdempotencyKey, "req-1")
	if rec.Code != http.StatusUnprocessableEntity || apiErr(t, rec).Code != codeIdempotencyMismatch {
		t.Errorf("other key = %d %s", rec.Code, rec.Body)
	}
	// Another tenant's key space is separate.
	rec = e.do(http.MethodPost, "/v1/supervisions", keyGlobexSup, `{"agent":"301","mode":"spy"}`, HeaderIdempotencyKey, "req-1")
	if rec.Code != http.StatusAccepted {
		t.Errorf("other tenant, same key = %d %s", rec.Code, rec.Body)
	}
	if n := e.svc.count("Join"); n != 3 {
		t.Errorf("Join called %d times, want 3", n)
	}
	// A bad key.
	rec = e.do(http.MethodPost, "/v1/supervisions", keySup, body, HeaderIdempotencyKey, "has space")
	if rec.Code != http.StatusUnprocessableEntity || apiErr(t, rec).Field != HeaderIdempotencyKey {
		t.Errorf("bad Idempotency-Key = %d %s", rec.Code, rec.Body)
	}
}

func TestIdempotentConcurrentDuplicates(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	e.svc.onJoin = func(ctx context.Context, p app.Principal, req app.JoinRequest) (store.Session, error) {
		<-release // hold the first request while the duplicates arrive
		return store.Session{ID: "sup-x", Tenant: p.Tenant, Supervisor: req.Supervisor, Agent: req.Agent, Mode: req.Mode.String(), State: store.StateRinging, StartedAt: t0, UpdatedAt: t0}, nil
	}
	const n = 10
	recs := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			recs[i] = e.do(http.MethodPost, "/v1/supervisions", keySup, `{"agent":"100","mode":"barge"}`, HeaderIdempotencyKey, "dup")
		})
	}
	e2etest.WaitFor(t, 5*time.Second, "the first Join", func() bool { return e.svc.count("Join") == 1 })
	time.Sleep(50 * time.Millisecond) // let the duplicates reach their wait loop (they would also pass without)
	close(release)
	wg.Wait()
	if c := e.svc.count("Join"); c != 1 {
		t.Fatalf("Join called %d times for %d concurrent duplicates, want 1", c, n)
	}
	for i, r := range recs {
		if r.Code != http.StatusAccepted || !bytes.Equal(r.Body.Bytes(), recs[0].Body.Bytes()) {
			t.Errorf("request %d = %d %s, want 202 %s", i, r.Code, r.Body, recs[0].Body)
		}
	}
}

func TestIdempotencyWaitsThen409(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.IdempotencyWait = 100 * time.Millisecond })
	release := make(chan struct{})
	e.svc.onJoin = func(ctx context.Context, p app.Principal, req app.JoinRequest) (store.Session, error) {
		<-release
		return store.Session{ID: "sup-x", Tenant: p.Tenant, State: store.StateRinging}, nil
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		done <- e.do(http.MethodPost, "/v1/supervisions", keySup, `{"agent":"100","mode":"spy"}`, HeaderIdempotencyKey, "slow")
	}()
	e2etest.WaitFor(t, 5*time.Second, "the first Join", func() bool { return e.svc.count("Join") == 1 })
	// The claim is short-lived, so that a crash half-way does not block retries for a day.
	if ttl := e.rdb.PTTL(t.Context(), store.Prefix+"idem:acme:http:POST:/v1/supervisions:slow").Val(); ttl <= 0 || ttl > 2*DefaultActionTimeout {
		t.Errorf("claim TTL = %v, want at most %v", ttl, 2*DefaultActionTimeout)
	}
	rec := e.do(http.MethodPost, "/v1/supervisions", keySup, `{"agent":"100","mode":"spy"}`, HeaderIdempotencyKey, "slow")
	if rec.Code != http.StatusConflict || apiErr(t, rec).Code != codeIdempotencyBusy {
		t.Errorf("duplicate while the first runs = %d %s", rec.Code, rec.Body)
	}
	close(release)
	if first := <-done; first.Code != http.StatusAccepted {
		t.Errorf("first = %d %s", first.Code, first.Body)
	}
}

func TestIdempotentErrors(t *testing.T) {
	e := newEnv(t)
	var fail error
	e.svc.onJoin = func(ctx context.Context, p app.Principal, req app.JoinRequest) (store.Session, error) {
		if fail != nil {
			return store.Session{}, fail
		}
		return store.Session{ID: "sup-x", Tenant: p.Tenant, State: store.StateRinging}, nil
	}
	body := `{"agent":"100","mode":"spy"}`

	// A refusal is an answer: kept and replayed.
	fail = &app.Error{Kind: app.ErrNotFound, Code: "no_active_call", Message: "agent 100 has no active call"}
	a := e.do(http.MethodPost, "/v1/supervisions", keySup, body, HeaderIdempotencyKey, "k-refused")
	b := e.do(http.MethodPost, "/v1/supervisions", keySup, body, HeaderIdempotencyKey, "k-refused")
	if a.Code != 404 || apiErr(t, a).Code != "no_active_call" || b.Code != 404 || !bytes.Equal(a.Body.Bytes(), b.Body.Bytes()) {
		t.Errorf("refusal: %d %s / %d %s", a.Code, a.Body, b.Code, b.Body)
	}
	if n := e.svc.count("Join"); n != 1 {
		t.Errorf("refusal replayed with %d Join calls, want 1", n)
	}

	// Unavailable is not an answer: the claim goes, a retry tries again.
	e.svc.take()
	fail = app.ErrUnavailable
	a = e.do(http.MethodPost, "/v1/supervisions", keySup, body, HeaderIdempotencyKey, "k-503")
	if a.Code != http.StatusServiceUnavailable {
		t.Errorf("unavailable = %d %s", a.Code, a.Body)
	}
	fail = nil
	b = e.do(http.MethodPost, "/v1/supervisions", keySup, body, HeaderIdempotencyKey, "k-503")
	if b.Code != http.StatusAccepted || e.svc.count("Join") != 2 {
		t.Errorf("retry after 503 = %d %s, Join count %d", b.Code, b.Body, e.svc.count("Join"))
	}
}

func TestValidation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, method, path, body, contentType string
		status                                int
		code, field                           string
	}{
		{"unknown field", "POST", "/v1/supervisions", `{"agent":"100","mode":"spy","volume":11}`, "", 400, codeUnknownField, "volume"},
		{"bad mode", "POST", "/v1/supervisions", `{"agent":"100","mode":"loud"}`, "", 422, codeInvalidField, "mode"},
		{"no mode", "POST", "/v1/supervisions", `{"agent":"100"}`, "", 422, codeInvalidField, "mode"},
		{"mode not a string", "POST", "/v1/supervisions", `{"agent":"100","mode":3}`, "", 422, codeInvalidField, "mode"},
		{"call_id and agent", "POST", "/v1/supervisions", `{"call_id":"c1","agent":"100","mode":"spy"}`, "", 422, codeInvalidField, "call_id"},
		{"neither", "POST", "/v1/supervisions", `{"mode":"spy"}`, "", 422, codeInvalidField, "call_id"},
		{"bad agent", "POST", "/v1/supervisions", `{"agent":"10a","mode":"spy"}`, "", 422, codeInvalidField, "agent"},
		{"bad supervisor", "POST", "/v1/supervisions", `{"agent":"100","supervisor":"x","mode":"spy"}`, "", 422, codeInvalidField, "supervisor"},
		{"malformed", "POST", "/v1/supervisions", `{"agent":`, "", 400, codeInvalidJSON, ""},
		{"syntax", "POST", "/v1/supervisions", `{"agent" "100"}`, "", 400, codeInvalidJSON, ""},
		{"empty", "POST", "/v1/supervisions", ``, "", 400, codeInvalidJSON, ""},
		{"array", "POST", "/v1/supervisions", `[1]`, "", 400, codeInvalidJSON, ""},
		{"trailing", "POST", "/v1/supervisions", `{"agent":"100","mode":"spy"} {}`, "", 400, codeInvalidJSON, ""},
		{"not JSON", "POST", "/v1/supervisions", `agent=100`, "application/x-www-form-urlencoded", 415, codeUnsupportedMedia, ""},
		{"patch unknown", "PATCH", "/v1/supervisions/sup-own", `{"mode":"spy","x":1}`, "", 400, codeUnknownField, "x"},
		{"patch bad mode", "PATCH", "/v1/supervisions/sup-own", `{"mode":"loud"}`, "", 422, codeInvalidField, "mode"},
		{"patch no mode", "PATCH", "/v1/supervisions/sup-own", `{}`, "", 422, codeInvalidField, "mode"},
		{"bad limit", "GET", "/v1/webhook-deliveries?limit=0", ``, "", 422, codeInvalidField, "limit"},
		// Issue 12: modes are the OpenAPI enum, exactly; JSON is UTF-8; limit is digits.
		{"mode in capitals", "POST", "/v1/supervisions", `{"agent":"100","mode":"SPY"}`, "", 422, codeInvalidField, "mode"},
		{"mode capitalised", "POST", "/v1/supervisions", `{"agent":"100","mode":"Whisper"}`, "", 422, codeInvalidField, "mode"},
		{"patch mode in capitals", "PATCH", "/v1/supervisions/sup-own", `{"mode":"BARGE"}`, "", 422, codeInvalidField, "mode"},
		{"utf-16 body", "POST", "/v1/supervisions", `{"agent":"100","mode":"spy"}`, "application/json; charset=utf-16", 415, codeUnsupportedMedia, ""},
		{"latin-1 body", "PATCH", "/v1/supervisions/sup-own", `{"mode":"spy"}`, "application/json; charset=iso-8859-1", 415, codeUnsupportedMedia, ""},
		{"limit with a space", "GET", "/v1/webhook-deliveries?limit=1%20", ``, "", 422, codeInvalidField, "limit"},
		{"limit with a sign", "GET", "/v1/webhook-deliveries?limit=%2B5", ``, "", 422, codeInvalidField, "limit"},
		{"limit as an exponent", "GET", "/v1/webhook-deliveries?limit=1e2", ``, "", 422, codeInvalidField, "limit"},
		{"limit as a fraction", "GET", "/v1/webhook-deliveries?limit=5.0", ``, "", 422, codeInvalidField, "limit"},
	} {
		e.svc.reset()
		key := keySup
		if strings.Contains(tc.path, "deliveries") {
			key = keyAdmin
		}
		hdr := []string{}
		if tc.contentType != "" {
			hdr = append(hdr, "Content-Type", tc.contentType)
		}
		rec := e.do(tc.method, tc.path, key, tc.body, hdr...)
		if rec.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.status)
			continue
		}
		d := apiErr(t, rec)
		if d.Code != tc.code || d.Field != tc.field {
			t.Errorf("%s: code %q field %q, want %q %q (%s)", tc.name, d.Code, d.Field, tc.code, tc.field, rec.Body)
		}
		if tc.field != "" && !strings.Contains(d.Message, tc.field) {
			t.Errorf("%s: message %q does not name %s", tc.name, d.Message, tc.field)
		}
		if c := e.svc.take(); len(c) != 0 {
			t.Errorf("%s: Service called %v for an invalid request", tc.name, c)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t)
	big := `{"agent":"100","mode":"spy","pad":"` + strings.Repeat("x", 70<<10) + `"}`
	// With Content-Length: refused before reading.
	rec := e.do(http.MethodPost, "/v1/supervisions", keySup, big)
	if rec.Code != http.StatusRequestEntityTooLarge || apiErr(t, rec).Code != codeBodyTooLarge {
		t.Errorf("oversize = %d %s", rec.Code, rec.Body)
	}
	// Chunked (no Content-Length): refused while reading.
	req := httptest.NewRequest(http.MethodPost, "/v1/supervisions", strings.NewReader(big))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+keySup)
	req.Header.Set("Content-Type", "application/json")
	rec = httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || apiErr(t, rec).Code != codeBodyTooLarge {
		t.Errorf("oversize chunked = %d %s", rec.Code, rec.Body)
	}
	if c := e.svc.take(); len(c) != 0 {
		t.Errorf("Service called %v", c)
	}
}

func TestRoutingErrorsAreJSON(t *testing.T) {
	e := newEnv(t)
	rec := e.do(http.MethodGet, "/v1/nope", keySup, "")
	if rec.Code != http.StatusNotFound || apiErr(t, rec).Code != codeNotFound {
		t.Errorf("unknown route = %d %s", rec.Code, rec.Body)
	}
	rec = e.do(http.MethodGet, "/nope", "", "")
	if rec.Code != http.StatusNotFound || apiErr(t, rec).Code != codeNotFound {
		t.Errorf("unknown route outside /v1 = %d %s", rec.Code, rec.Body)
	}
	rec = e.do(http.MethodPut, "/v1/calls", keySup, "")
	if rec.Code != http.StatusMethodNotAllowed || apiErr(t, rec).Code != codeMethodNotAllowed {
		t.Errorf("wrong method = %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("Allow") == "" {
		t.Error("405 without Allow")
	}
}

func TestPanicIs500(t *testing.T) {
	e := newEnv(t)
	e.svc.onCalls = func() ([]app.Call, error) { panic("boom") }
	rec := e.do(http.MethodGet, "/v1/calls", keySup, "")
	if rec.Code != http.StatusInternalServerError || apiErr(t, rec).Code != codeInternal {
		t.Errorf("panic = %d %s", rec.Code, rec.Body)
	}
	// The server still serves.
	e.svc.onCalls = nil
	if rec := e.do(http.MethodGet, "/v1/calls", keySup, ""); rec.Code != 200 {
		t.Errorf("after panic: %d", rec.Code)
	}
}

func TestDomainErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{app.ErrNotFound, 404, "not_found"},
		{app.ErrForbidden, 403, "forbidden"},
		{app.ErrConflict, 409, "conflict"},
		{app.ErrInvalid, 422, "invalid"},
		{app.ErrUnavailable, 503, "unavailable"},
		{&app.Error{Kind: app.ErrForbidden, Code: "not_allowed", Message: "200 may not supervise 100"}, 403, "not_allowed"},
		{&app.Error{Kind: app.ErrConflict, Code: "already_supervising", Message: "x"}, 409, "already_supervising"},
		{&app.Error{Kind: app.ErrInvalid, Code: "self", Message: "x"}, 422, "self"},
		{context.DeadlineExceeded, 503, "unavailable"},
		{&app.Error{Code: "kindless", Message: "x"}, 500, "internal"},
		{errUnexpected, 500, "internal"},
	} {
		e.svc.onCalls = func() ([]app.Call, error) { return nil, tc.err }
		rec := e.do(http.MethodGet, "/v1/calls", keySup, "")
		if rec.Code != tc.status || apiErr(t, rec).Code != tc.code {
			t.Errorf("%v: %d %s, want %d %s", tc.err, rec.Code, rec.Body, tc.status, tc.code)
		}
		if tc.status == 500 && strings.Contains(rec.Body.String(), errUnexpected.Error()) {
			t.Errorf("internal error text leaked: %s", rec.Body)
		}
	}
}

var errUnexpected = &testError{"redis: connection pool exhausted at 10.0.0.5"}

type testError struct{ s string }

func (e *testError) Error() string { return e.s }

// TestGolden pins the exact JSON of GET /v1/calls and of an error answer.
func TestGolden(t *testing.T) {
	e := newEnv(t)
	e.svc.calls = []app.Call{
		{ID: "1709373500.42", Tenant: "acme", Agent: "100", CustomerNumber: "+14155550100", Direction: "inbound",
			StartedAt:   t0.Add(-95 * time.Second),
			Supervisors: []app.Participant{{SessionID: "sup-own", Extension: "200", Mode: "whisper", State: "active"}}},
		{ID: "1709373580.57", Tenant: "acme", Agent: "101", CustomerNumber: "+14155550111", Direction: "outbound",
			StartedAt: t0.Add(-3 * time.Second)},
		{ID: "other", Tenant: "globex", Agent: "301", StartedAt: t0},
	}
	for _, tc := range []struct {
		file, method, path, key, body string
		status                        int
	}{
		{"calls.golden.json", http.MethodGet, "/v1/calls", keyAdmin, "", 200},
		{"error_not_found.golden.json", http.MethodGet, "/v1/supervisions/sup-nope", keyAdmin, "", 404},
		{"error_invalid_field.golden.json", http.MethodPost, "/v1/supervisions", keySup, `{"agent":"100","mode":"loud"}`, 422},
		{"supervision.golden.json", http.MethodGet, "/v1/supervisions/sup-own", keySup, "", 200},
	} {
		rec := e.do(tc.method, tc.path, tc.key, tc.body)
		if rec.Code != tc.status {
			t.Errorf("%s: %d %s", tc.file, rec.Code, rec.Body)
			continue
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, rec.Body.Bytes(), "", "  "); err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		path := filepath.Join("testdata", tc.file)
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./webhooks/ -run TestGolden -update)", err)
		}
		if !bytes.Equal(pretty.Bytes(), want) {
			t.Errorf("%s: got\n%s\nwant\n%s", tc.file, pretty.Bytes(), want)
		}
	}
}
