package webhooks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
)

// serve runs the env's server itself (its http.Server settings, not httptest's) on a loopback
// port until the test ends, and returns its address.
func (e *env) serve() string {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ln) }()
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.srv.Shutdown(ctx)
		if err := <-done; err != nil {
			e.t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// ended waits until the stream ends and returns its last comment.
func (s *sseStream) ended(t *testing.T, d time.Duration) string {
	t.Helper()
	var last string
	deadline := time.After(d)
	for {
		select {
		case m := <-s.msgs:
			if m.comment != "" {
				last = m.comment
			}
		case <-s.done:
			for {
				select {
				case m := <-s.msgs:
					if m.comment != "" {
						last = m.comment
					}
				default:
					return last
				}
			}
		case <-deadline:
			t.Fatalf("the stream is still open after %v", d)
		}
	}
}

// TestRevokedKeyCutsItsStreams: revoking a key ends its open event streams, at once on the
// instance that revoked it and within KeyCheckInterval on another instance sharing the Redis;
// the client's reconnection is refused. (It used to go on receiving events.)
func TestRevokedKeyCutsItsStreams(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.KeyCheckInterval = 200 * time.Millisecond })
	other := New(e.cfg) // another instance: same Redis, same configuration
	ts, ots := e.httpServer(), httptest.NewServer(other.Handler())
	t.Cleanup(ots.Close)
	key := e.createKey(keyAdmin, `{"name":"dash","role":"supervisor","extension":"200"}`)
	here := openStream(t, ts, "/v1/events", key)
	there := openStream(t, ots, "/v1/events", key)
	bootstrap := openStream(t, ts, "/v1/events", keySup) // another key of the tenant: unaffected

	if rec := e.do(http.MethodDelete, "/v1/api-keys/dash", keyAdmin, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("revoke = %d %s", rec.Code, rec.Body)
	}
	start := time.Now()
	if last := here.ended(t, 2*time.Second); !strings.Contains(last, "revoked") {
		t.Errorf("the stream ended with %q, want a note that the key was revoked", last)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the revoking instance took %v to cut the stream", d)
	}
	there.ended(t, 3*time.Second)
	if got := testutil.ToFloat64(e.srv.met.streamsClosed.WithLabelValues(closedRevoked)); got != 1 {
		t.Errorf("streams closed as revoked here = %v", got)
	}
	if got := testutil.ToFloat64(other.met.streamsClosed.WithLabelValues(closedRevoked)); got != 1 {
		t.Errorf("streams closed as revoked on the other instance = %v", got)
	}
	if again := openStream(t, ts, "/v1/events", key); again.status != http.StatusUnauthorized {
		t.Errorf("reconnection with the revoked key: %d", again.status)
	}
	id := e.publish(noteFor("acme"))
	if m := bootstrap.next(t, 5*time.Second, false); m.id != id {
		t.Errorf("the other key's stream got %+v, want %s", m, id)
	}
}

// TestStreamMaxLifetime: a stream ends after MaxStreamLifetime with a note, and the client
// resumes where it was.
func TestStreamMaxLifetime(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxStreamLifetime = 300 * time.Millisecond })
	ts := e.httpServer()
	s := openStream(t, ts, "/v1/events", keySup)
	id := e.publish(noteFor("acme"))
	if m := s.next(t, 2*time.Second, false); m.id != id {
		t.Fatalf("got %+v", m)
	}
	if last := s.ended(t, 3*time.Second); !strings.Contains(last, "lifetime") {
		t.Errorf("the stream ended with %q, want a note about its lifetime", last)
	}
	if got := testutil.ToFloat64(e.srv.met.streamsClosed.WithLabelValues(closedLifetime)); got != 1 {
		t.Errorf("streams closed at their lifetime = %v", got)
	}
	next := e.publish(noteFor("acme"))
	r := openStream(t, ts, "/v1/events", keySup, "Last-Event-ID", id)
	if m := r.next(t, 2*time.Second, false); m.id != next {
		t.Errorf("resumed: %+v, want %s", m, next)
	}
}

// TestStreamCaps: streams are capped per key and per tenant, not only per instance, so one
// tenant cannot starve the others; refusals are 429 (503 for the instance cap) with
// Retry-After, counted in metrics, and not logged as errors.
func TestStreamCaps(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, func(c *Config) {
		c.MaxStreamsPerKey, c.MaxStreamsPerTenant, c.MaxStreams = 2, 3, 5
		c.Logger = zerolog.New(&logs)
	})
	ts := e.httpServer()
	for range 2 {
		if s := openStream(t, ts, "/v1/events", keySup); s.status != 200 {
			t.Fatalf("stream: %d", s.status)
		}
	}
	check := func(key string, status int, limit string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status || !strings.Contains(string(body), codeTooManyStreams) || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s over the %s cap: %d %s (Retry-After %q)", key, limit, resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
	}
	check(keySup, http.StatusTooManyRequests, capKey)
	openStream(t, ts, "/v1/events", keyAdmin) // the tenant's third
	check(keyAdmin, http.StatusTooManyRequests, capTenant)
	// Another tenant is not starved.
	for range 2 {
		if s := openStream(t, ts, "/v1/events", keyGlobexSup); s.status != 200 {
			t.Fatalf("globex stream: %d", s.status)
		}
	}
	check(keyGlobexAdmin, http.StatusServiceUnavailable, capInstance)
	for cp, want := range map[string]float64{capKey: 1, capTenant: 1, capInstance: 1} {
		if got := testutil.ToFloat64(e.srv.met.streamsRefused.WithLabelValues(cp)); got != want {
			t.Errorf("refused at the %s cap: %v, want %v", cp, got, want)
		}
	}
	if got := testutil.ToFloat64(e.srv.met.streamsOpen); got != 5 {
		t.Errorf("open streams = %v, want 5", got)
	}
	if strings.Contains(logs.String(), `"level":"error"`) {
		t.Errorf("refusals logged as errors:\n%s", logs.String())
	}
}

// TestSlowReaderEvicted: a client that stops reading is dropped once its buffers are full and a
// write cannot complete within StreamWriteTimeout, instead of holding its stream for ever.
func TestSlowReaderEvicted(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.StreamWriteTimeout = 300 * time.Millisecond
		c.StreamSendBuffer = 4 << 10
	})
	addr := e.serve()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10) })
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", keySup)
	br := bufio.NewReader(conn)
	for { // the answer's head and the retry hint, then the client reads no more
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "HTTP/1.1 ") && !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("answer %q", line)
		}
		if strings.Contains(line, "retry:") {
			break
		}
	}
	big := strings.Repeat("x", 16<<10)
	for range 200 {
		if _, err := e.st.PublishEvent(t.Context(), "acme", "call.started", []byte(`{"pad":"`+big+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(e.srv.met.streamsClosed.WithLabelValues(closedSlowReader)) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("a client that does not read still holds its stream after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := testutil.ToFloat64(e.srv.met.streamsOpen); got != 0 {
		t.Errorf("open streams = %v after the eviction", got)
	}
}

// TestRateLimits: per client address and per key budgets answer 429 with Retry-After and a JSON
// body; failed authentications are counted, and past their budget an address gets 429 without
// its key being looked at, whatever key it sends.
func TestRateLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.RateLimits = config.RateLimits{
			PerAddress:           config.Rate{PerSecond: 0.01, Burst: 3},
			PerKey:               config.Rate{PerSecond: 0.01, Burst: 4},
			FailedAuthPerAddress: config.Rate{PerSecond: 0.01, Burst: 5},
		}
	})
	from := func(addr, key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v1/calls", nil)
		req.RemoteAddr = addr
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		return rec
	}
	limited := func(rec *httptest.ResponseRecorder) bool {
		t.Helper()
		if rec.Code != http.StatusTooManyRequests {
			return false
		}
		if d := apiErr(t, rec); d.Code != codeRateLimited {
			t.Errorf("429 code %q", d.Code)
		}
		if n, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("Retry-After %q", rec.Header().Get("Retry-After"))
		}
		return true
	}
	// Per address (IPv6: per /64).
	for i := range 3 {
		if rec := from("192.0.2.1:1000", keySup); rec.Code != 200 {
			t.Fatalf("request %d: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	if !limited(from("192.0.2.1:1001", keySup)) {
		t.Error("4th request from one address: not limited")
	}
	for i := range 3 {
		from(fmt.Sprintf("[2001:db8:1:2::%d]:1000", i+1), keyAdmin)
	}
	if !limited(from("[2001:db8:1:2::99]:1000", keyAdmin)) {
		t.Error("4th request from one IPv6 /64: not limited")
	}
	// Per key, across addresses: keyAdmin made 3, one more is in its budget.
	if rec := from("192.0.2.50:1", keyAdmin); rec.Code != 200 {
		t.Errorf("keyAdmin's 4th request: %d", rec.Code)
	}
	if !limited(from("192.0.2.51:1", keyAdmin)) {
		t.Error("5th request with one key: not limited")
	}
	// Failed authentications.
	for i := range 5 {
		if rec := from("198.51.100.7:1", fmt.Sprintf("wrong-key-%d", i)); rec.Code != http.StatusUnauthorized {
			t.Errorf("wrong key %d: %d", i, rec.Code)
		}
		e.srv.limits.perAddress.m = map[string]*bucket{} // only the failed-auth budget here
	}
	if !limited(from("198.51.100.7:1", "wrong-key-6")) {
		t.Error("6th wrong key: not limited")
	}
	e.srv.limits.perAddress.m = map[string]*bucket{}
	if !limited(from("198.51.100.7:1", keyGlobexSup)) {
		t.Error("a right key after the failed-auth budget is spent: not limited")
	}
	if got := testutil.ToFloat64(e.srv.met.authFailures.WithLabelValues(codeUnauthorized)); got != 5 {
		t.Errorf("failed authentications counted: %v, want 5", got)
	}
	for b, want := range map[string]float64{budgetAddress: 2, budgetKey: 1, budgetFailedAuth: 2} {
		if got := testutil.ToFloat64(e.srv.met.rateLimited.WithLabelValues(b)); got != want {
			t.Errorf("rate limited by %s: %v, want %v", b, got, want)
		}
	}
}

// TestBucketsAreBounded: a flood from very many addresses cannot grow the budget tables
// without bound.
func TestBucketsAreBounded(t *testing.T) {
	b := newBuckets(config.Rate{PerSecond: 1, Burst: 1})
	now := time.Now()
	for i := range maxBuckets + 500 {
		b.take(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), now)
	}
	if len(b.m) > maxBuckets {
		t.Errorf("%d buckets, want at most %d", len(b.m), maxBuckets)
	}
	// Idle long enough to be full again: dropped to make room.
	b.take("new-client", now.Add(2*time.Second))
	if _, ok := b.m["new-client"]; !ok {
		t.Error("a new client after the others went idle has no bucket of its own")
	}
}

// TestReadyzShowsNoCause: the unauthenticated readiness probe says ready or not, nothing more;
// which dependency failed and why is logged once per change.
func TestReadyzShowsNoCause(t *testing.T) {
	var logs syncBuffer
	down := true
	srv := New(Config{Logger: zerolog.New(&logs), Checks: []Check{{Name: "redis", Fn: func(context.Context) error {
		if down {
			return errors.New("redis ping: dial tcp 10.20.30.40:6379: connect: connection refused")
		}
		return nil
	}}}})
	get := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec
	}
	for range 3 {
		rec := get()
		if rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) != `{"status":"unavailable"}` {
			t.Errorf("/readyz = %d %s, want 503 {\"status\":\"unavailable\"} only", rec.Code, rec.Body)
		}
	}
	if n := strings.Count(logs.String(), "10.20.30.40:6379"); n != 1 {
		t.Errorf("the cause is logged %d times, want once:\n%s", n, logs.String())
	}
	down = false
	if rec := get(); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"ready"}` {
		t.Errorf("/readyz = %d %s", rec.Code, rec.Body)
	}
}

// TestHeadersTooLargeAreJSON: headers over the limit get a JSON 431 from the edge, not net/http's
// plain text (which remains beyond twice the limit, where net/http stops reading).
func TestHeadersTooLargeAreJSON(t *testing.T) {
	e := newEnv(t)
	addr := e.serve()
	do := func(size int) (int, string, string) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /v1/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nX-Pad: %s\r\n\r\n", keySup, strings.Repeat("p", size))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
	}
	if st, ct, body := do(80 << 10); st != http.StatusRequestHeaderFieldsTooLarge || !strings.HasPrefix(ct, "application/json") || !strings.Contains(body, codeHeadersTooLarge) {
		t.Errorf("80 KiB of headers: %d %s %s", st, ct, body)
	}
	if st, _, _ := do(1 << 10); st != 200 {
		t.Errorf("1 KiB of headers: %d", st)
	}
	if st, _, _ := do(200 << 10); st != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("200 KiB of headers: %d", st)
	}
}

// noteFor is a notification of tenant.
func noteFor(tenant string) app.Notification {
	return app.Notification{Type: app.NoteCallStarted, Tenant: tenant, Time: t0}
}
