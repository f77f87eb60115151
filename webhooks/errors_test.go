package webhooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/store"
)

// syncBuffer is a log destination the server's goroutines may write to concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// deadRedis is a store whose Redis refuses connections: every call fails with go-redis's
// "dial tcp 127.0.0.1:<port>: connect: connection refused". It returns the store and the
// address, which must never reach a client.
func deadRedis(t *testing.T) (*store.Store, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	return store.New(rdb, store.Options{}), addr
}

// TestRedisFailureTextNotInBody is the regression test of leaked causes: with the real app over
// a Redis that refuses connections, every route that needs Redis answers 503 with a fixed
// message, and the Redis error (its text, the address) appears only in the log, once per
// request, next to the request id the client got.
func TestRedisFailureTextNotInBody(t *testing.T) {
	st, addr := deadRedis(t)
	var logs syncBuffer
	dir := testDirectory(t)
	sup := app.New(app.Config{Logger: zerolog.Nop()}, nil, st, dir)
	srv := New(Config{Service: sup, Directory: dir, Store: st, Logger: zerolog.New(&logs), Clock: func() time.Time { return t0 }})
	e := &env{t: t, srv: srv}

	for _, tc := range []struct {
		method, path, key, body string
		code                    string
	}{
		{http.MethodGet, "/v1/supervisions", keySup, "", app.RefuseStoreUnavailable},
		{http.MethodGet, "/v1/supervisions/sup-1", keySup, "", app.RefuseStoreUnavailable},
		{http.MethodPatch, "/v1/supervisions/sup-1", keySup, `{"mode":"whisper"}`, app.RefuseStoreUnavailable},
		{http.MethodDelete, "/v1/supervisions/sup-1", keyAdmin, "", app.RefuseStoreUnavailable},
		{http.MethodGet, "/v1/api-keys", keyAdmin, "", codeUnavailable},
		{http.MethodGet, "/v1/webhook-deliveries", keyAdmin, "", codeUnavailable},
		{http.MethodGet, "/v1/calls", "ek_unknown-key", "", codeUnavailable}, // not a bootstrap key: looked up in Redis
	} {
		name := tc.method + " " + tc.path
		rec := e.do(tc.method, tc.path, tc.key, tc.body)
		body := rec.Body.String()
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s = %d %s, want 503", name, rec.Code, body)
			continue
		}
		d := apiErr(t, rec)
		if d.Code != tc.code || d.Message != failureMessages[tc.code] {
			t.Errorf("%s: %s, want code %s with its fixed message %q", name, body, tc.code, failureMessages[tc.code])
		}
		for _, leak := range []string{addr, "dial tcp", "connection refused", "redis"} {
			if strings.Contains(strings.ToLower(body), strings.ToLower(leak)) {
				t.Errorf("%s: the answer shows %q: %s", name, leak, body)
			}
		}
		id := rec.Header().Get(HeaderRequestID)
		if id == "" {
			t.Errorf("%s: no %s", name, HeaderRequestID)
			continue
		}
		var lines []string
		for line := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(line, `"request_id":"`+id+`"`) {
				lines = append(lines, line)
			}
		}
		if len(lines) != 1 || !strings.Contains(lines[0], "connection refused") || !strings.Contains(lines[0], `"level":"error"`) {
			t.Errorf("%s: log lines of request %s = %q, want one error line with the cause", name, id, lines)
		}
	}
}

// TestFailureMessagesAreFixed: whatever text an error carries, a 5xx answer shows the fixed
// message of its code, and a bare domain error shows the fixed message of its kind; an app
// refusal keeps the app's message and field.
func TestFailureMessagesAreFixed(t *testing.T) {
	const secret = "ListSessions: dial tcp 10.0.0.5:6379: i/o timeout"
	e := newEnv(t)
	for _, tc := range []struct {
		err              error
		status           int
		code, msg, field string
	}{
		{&app.Error{Kind: app.ErrUnavailable, Code: app.RefuseStoreUnavailable, Message: secret}, 503, app.RefuseStoreUnavailable, failureMessages[app.RefuseStoreUnavailable], ""},
		{&app.Error{Kind: app.ErrUnavailable, Code: "new_failure", Message: secret}, 503, "new_failure", failureMessages[codeUnavailable], ""},
		{fmt.Errorf("%s: %w", secret, app.ErrUnavailable), 503, codeUnavailable, failureMessages[codeUnavailable], ""},
		{fmt.Errorf("%s: %w", secret, app.ErrNotFound), 404, codeNotFound, "not found", ""},
		{fmt.Errorf("%s: %w", secret, app.ErrConflict), 409, codeConflict, "conflict", ""},
		{fmt.Errorf("%s", secret), 500, codeInternal, "internal error", ""},
		{&app.Error{Kind: app.ErrInvalid, Code: "invalid_field", Message: "supervisor: required", Field: "supervisor"}, 422, "invalid_field", "supervisor: required", "supervisor"},
	} {
		e.svc.onCalls = func() ([]app.Call, error) { return nil, tc.err }
		rec := e.do(http.MethodGet, "/v1/calls", keySup, "")
		d := apiErr(t, rec)
		if rec.Code != tc.status || d.Code != tc.code || d.Message != tc.msg || d.Field != tc.field {
			t.Errorf("%v: %d %s, want %d %s %q field %q", tc.err, rec.Code, rec.Body, tc.status, tc.code, tc.msg, tc.field)
		}
		if strings.Contains(rec.Body.String(), "10.0.0.5") {
			t.Errorf("%v: cause leaked: %s", tc.err, rec.Body)
		}
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t)
	made := map[string]bool{}
	for _, tc := range []struct{ sent, want string }{
		{"", ""},
		{"crm-7f3a", "crm-7f3a"},
		{"has space", ""},
		{strings.Repeat("x", 129), ""},
	} {
		var hdr []string
		if tc.sent != "" {
			hdr = []string{HeaderRequestID, tc.sent}
		}
		for _, path := range []string{"/v1/calls", "/v1/nope"} { // answered, and an error
			got := e.do(http.MethodGet, path, keySup, "", hdr...).Header().Get(HeaderRequestID)
			switch {
			case tc.want != "" && got != tc.want:
				t.Errorf("%s with %q: %s %q, want it kept", path, tc.sent, HeaderRequestID, got)
			case tc.want == "" && (got == "" || got == tc.sent || made[got]):
				t.Errorf("%s with %q: %s %q, want a new one", path, tc.sent, HeaderRequestID, got)
			}
			made[got] = true
		}
	}
}

// TestDeliveriesListing: GET /v1/webhook-deliveries lists the records package outbound saves,
// the admin's tenant's only, newest first, at most limit.
func TestDeliveriesListing(t *testing.T) {
	e := newEnv(t)
	for i, tenant := range []string{"acme", "globex", "acme", "acme"} {
		d := store.Delivery{ID: fmt.Sprintf("msg_%d", i), Tenant: tenant, URL: "https://crm.example/hook",
			Type: app.NoteCallStarted, Status: store.DeliveryDelivered, Attempts: 1, LastStatus: 204,
			CreatedAt: t0.Add(time.Duration(i) * time.Second), UpdatedAt: t0.Add(time.Duration(i) * time.Second)}
		if err := e.st.SaveDelivery(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(key, query string) []string {
		rec := e.do(http.MethodGet, "/v1/webhook-deliveries"+query, key, "")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /v1/webhook-deliveries%s = %d %s", query, rec.Code, rec.Body)
		}
		var out struct{ Deliveries []store.Delivery }
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range out.Deliveries {
			ids = append(ids, d.Tenant+"/"+d.ID)
		}
		return ids
	}
	if got, want := strings.Join(ids(keyAdmin, ""), " "), "acme/msg_3 acme/msg_2 acme/msg_0"; got != want {
		t.Errorf("acme's deliveries = %s, want %s", got, want)
	}
	if got, want := strings.Join(ids(keyAdmin, "?limit=2"), " "), "acme/msg_3 acme/msg_2"; got != want {
		t.Errorf("acme's deliveries, limit 2 = %s, want %s", got, want)
	}
	if got, want := strings.Join(ids(keyGlobexAdmin, ""), " "), "globex/msg_1"; got != want {
		t.Errorf("globex's deliveries = %s, want %s", got, want)
	}
}
