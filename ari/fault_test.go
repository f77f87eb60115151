package ari_test

// Fault tests: the client against aritest, a fake ARI server scripted to do
// what a real Asterisk cannot be made to do on demand (5xx, hangs, slow
// answers, a cut or refused WebSocket, a deaf peer, malformed events).
//
// Each test checks for leaked goroutines when it ends, so these tests do not
// run in parallel. Nothing sleeps to synchronise: waits are on the event
// stream or aritest's Await helpers, bounded by faultWait.

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/ari/aritest"
)

// faultWait bounds every wait for something that should happen.
const faultWait = 5 * time.Second

const faultApp = "earpiece"

// faultSetup starts a leak check, a fake ARI server and a client for it with
// short timings; mod may change the Config.
func faultSetup(t *testing.T, mod func(*ari.Config)) (*aritest.Server, *ari.Client) {
	t.Helper()
	// Registered first, so it runs last: after the client and server stop.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })

	s := aritest.NewServer(t)
	cfg := ari.Config{
		BaseURL:         s.URL(),
		User:            s.User(),
		Password:        s.Password(),
		App:             faultApp,
		RequestTimeout:  faultWait,
		PingInterval:    time.Second,
		ReconnectMin:    10 * time.Millisecond,
		ReconnectMax:    40 * time.Millisecond,
		ReplacedBackoff: 300 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := ari.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// faultRun runs c.Run until the test ends, then checks it returns.
func faultRun(t *testing.T, c *ari.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		case <-time.After(faultWait):
			t.Error("Run did not return after its context ended")
		}
	})
}

func faultCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), faultWait)
	t.Cleanup(cancel)
	return ctx
}

// faultNext returns the next item of the event stream.
func faultNext(t *testing.T, c *ari.Client) ari.Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatal("Events closed")
		}
		return ev
	case <-time.After(faultWait):
		t.Fatalf("no event within %v", faultWait)
		return nil
	}
}

// faultState returns the next item, which must be a ConnectionEvent with
// state want.
func faultState(t *testing.T, c *ari.Client, want ari.ConnState) *ari.ConnectionEvent {
	t.Helper()
	ev := faultNext(t, c)
	ce, ok := ev.(*ari.ConnectionEvent)
	if !ok || ce.State != want {
		t.Fatalf("event %T %+v, want ConnectionEvent %v", ev, ev, want)
	}
	return ce
}

// faultStasisStart returns the next item, which must be a StasisStart for
// channel id.
func faultStasisStart(t *testing.T, c *ari.Client, id ari.ChannelID) {
	t.Helper()
	ev := faultNext(t, c)
	ss, ok := ev.(*ari.StasisStart)
	if !ok || ss.Channel.ID != id {
		t.Fatalf("event %T %+v, want StasisStart of %s", ev, ev, id)
	}
}

// faultCount counts recorded requests with method and exactly path.
func faultCount(s *aritest.Server, method, path string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

func TestFaultServerError(t *testing.T) {
	s, c := faultSetup(t, nil)
	// What Asterisk 22 answers for a duplicate snoopId (TestContract/parallel/SnoopErrors).
	s.Respond("POST", "/channels/{id}/snoop/{snoopId}", 500, aritest.Message("Snoop channel could not be created"))

	_, err := c.Snoop(faultCtx(t), "c1", ari.SnoopRequest{SnoopID: "s1", Spy: "both"})
	var ae *ari.Error
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want *ari.Error", err, err)
	}
	want := ari.Error{Method: "POST", Path: "/channels/c1/snoop/s1", Status: 500, Message: "Snoop channel could not be created"}
	if *ae != want {
		t.Errorf("error = %+v, want %+v", *ae, want)
	}
	if !errors.Is(err, ari.ErrServer) || errors.Is(err, ari.ErrConflict) {
		t.Errorf("errors.Is(ErrServer) = %v, errors.Is(ErrConflict) = %v", errors.Is(err, ari.ErrServer), errors.Is(err, ari.ErrConflict))
	}
	r, err := s.AwaitRequest(faultCtx(t), "POST", "/channels/c1/snoop/s1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Query.Get("spy") != "both" || r.Query.Get("app") != faultApp {
		t.Errorf("snoop query %v", r.Query)
	}

	// A 5xx whose body is not Asterisk's JSON (a proxy in front of it).
	s.Respond("GET", "/channels/{id}", 502, []byte("<html>Bad Gateway</html>"))
	_, err = c.GetChannel(faultCtx(t), "c1")
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Message != "<html>Bad Gateway</html>" || !errors.Is(err, ari.ErrServer) {
		t.Errorf("502 with HTML body: %v", err)
	}
}

// The client retries nothing by itself: a POST that got a 5xx may have taken
// effect in Asterisk (or not), so only the caller, who knows whether the id
// it chose makes a retry safe, may send it again. GETs are not retried
// either.
func TestFaultNoRetry(t *testing.T) {
	s, c := faultSetup(t, nil)
	s.RespondSeq("POST", "/bridges/{id}",
		aritest.Answer{Status: 500, Body: aritest.Message("Internal Server Error")},
		aritest.Answer{Status: 200, Body: map[string]any{"id": "br-1", "technology": "simple_bridge", "bridge_type": "mixing", "channels": []string{}}},
	)
	s.RespondSeq("GET", "/channels/{id}",
		aritest.Answer{Status: 503, Body: aritest.Message("Service Unavailable")},
		aritest.Answer{Status: 200, Body: aritest.Channel("c1", faultApp)},
	)

	req := ari.CreateBridgeRequest{BridgeID: "br-1", Types: []string{"mixing"}}
	if _, err := c.CreateBridge(faultCtx(t), req); !errors.Is(err, ari.ErrServer) {
		t.Fatalf("first CreateBridge: %v, want ErrServer", err)
	}
	if n := faultCount(s, "POST", "/bridges/br-1"); n != 1 {
		t.Fatalf("%d POST /bridges/br-1 after a 500, want exactly 1", n)
	}
	b, err := c.CreateBridge(faultCtx(t), req)
	if err != nil || b.ID != "br-1" {
		t.Fatalf("second CreateBridge = %+v, %v", b, err)
	}
	if n := faultCount(s, "POST", "/bridges/br-1"); n != 2 {
		t.Errorf("%d POST /bridges/br-1 after two calls, want 2", n)
	}

	if _, err := c.GetChannel(faultCtx(t), "c1"); !errors.Is(err, ari.ErrServer) {
		t.Fatalf("first GetChannel: %v, want ErrServer", err)
	}
	if n := faultCount(s, "GET", "/channels/c1"); n != 1 {
		t.Errorf("%d GET /channels/c1 after a 503, want 1", n)
	}
}

func TestFaultHangingAnswer(t *testing.T) {
	const requestTimeout = 200 * time.Millisecond
	s, c := faultSetup(t, func(cfg *ari.Config) { cfg.RequestTimeout = requestTimeout })
	s.RespondSeq("GET", "/channels/{id}", aritest.Answer{Hang: true})

	t.Run("caller deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.GetChannel(ctx, "c1")
		elapsed := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if elapsed >= requestTimeout {
			t.Errorf("returned after %v: the caller's 50ms deadline was not honoured", elapsed)
		}
		if !strings.Contains(err.Error(), "GET /channels/c1") {
			t.Errorf("error %q does not name the call", err)
		}
	})

	t.Run("RequestTimeout", func(t *testing.T) {
		start := time.Now()
		_, err := c.GetChannel(context.Background(), "c2")
		elapsed := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if elapsed < requestTimeout || elapsed > requestTimeout+2*time.Second {
			t.Errorf("returned after %v, want about RequestTimeout %v", elapsed, requestTimeout)
		}
	})

	// Both requests reached the server (and were given up by the client).
	for _, p := range []string{"/channels/c1", "/channels/c2"} {
		if _, err := s.AwaitRequest(faultCtx(t), "GET", p); err != nil {
			t.Error(err)
		}
	}
}

func TestFaultSlowAnswer(t *testing.T) {
	const delay = 150 * time.Millisecond
	s, c := faultSetup(t, func(cfg *ari.Config) { cfg.RequestTimeout = time.Second })
	s.RespondSeq("GET", "/channels/{id}", aritest.Answer{Status: 200, Body: aritest.Channel("c1", faultApp), Delay: delay})

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	ch, err := c.GetChannel(ctx, "c1")
	if err != nil {
		t.Fatalf("GetChannel with a %v answer inside a 500ms deadline: %v", delay, err)
	}
	if ch.ID != "c1" || ch.State != "Up" {
		t.Errorf("channel %+v", ch)
	}
	if elapsed := time.Since(start); elapsed < delay {
		t.Errorf("answered after %v, before the server's delay %v", elapsed, delay)
	}
}

func TestFaultUnauthorized(t *testing.T) {
	s, c := faultSetup(t, nil)
	s.SetCredentials("ari", "another-password")

	_, err := c.GetChannel(faultCtx(t), "c1")
	var ae *ari.Error
	if !errors.Is(err, ari.ErrUnauthorized) || !errors.As(err, &ae) || ae.Message != "Authentication required" {
		t.Errorf("GetChannel with a wrong password: %v", err)
	}

	faultRun(t, c)
	ce := faultState(t, c, ari.Disconnected)
	if !errors.Is(ce.Err, ari.ErrUnauthorized) {
		t.Errorf("Disconnected.Err = %v, want ErrUnauthorized", ce.Err)
	}
}

func TestFaultSocketCut(t *testing.T) {
	s, c := faultSetup(t, nil)
	faultRun(t, c)
	ctx := faultCtx(t)

	conn, err := s.AwaitConnection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if conn.App() != faultApp || conn.SubscribeAll() {
		t.Errorf("connected with app %q subscribeAll %v", conn.App(), conn.SubscribeAll())
	}
	faultState(t, c, ari.Connected)
	if err := s.Emit(ctx, aritest.StasisStartJSON(faultApp, "c1")); err != nil {
		t.Fatal(err)
	}
	faultStasisStart(t, c, "c1")

	s.CutSocket()
	if ce := faultState(t, c, ari.Disconnected); ce.Err == nil {
		t.Error("Disconnected without an error")
	}
	if _, err := s.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	faultState(t, c, ari.Connected)
	if err := s.Emit(ctx, aritest.StasisStartJSON(faultApp, "c2")); err != nil {
		t.Fatal(err)
	}
	faultStasisStart(t, c, "c2")

	st := c.Stats()
	if st.Reconnects != 1 || st.EventsReceived != 2 || !st.Connected {
		t.Errorf("stats %+v, want 1 reconnect, 2 events, connected", st)
	}
}

// While upgrades are refused the client backs off exponentially (with
// jitter down to half) up to ReconnectMax: never a busy loop, never longer
// than the cap.
func TestFaultUpgradeRejectedBackoff(t *testing.T) {
	const (
		minBackoff = 10 * time.Millisecond
		maxBackoff = 320 * time.Millisecond
		attempts   = 8
	)
	s, c := faultSetup(t, func(cfg *ari.Config) {
		cfg.ReconnectMin = minBackoff
		cfg.ReconnectMax = maxBackoff
	})
	s.RejectConnections(http.StatusServiceUnavailable)
	faultRun(t, c)
	ctx := faultCtx(t)

	var at []time.Time
	for range attempts {
		r, err := s.AwaitRequest(ctx, "GET", "/events")
		if err != nil {
			t.Fatalf("after %d attempts: %v", len(at), err)
		}
		at = append(at, r.At)
	}
	// The client waits backoff(k) after failed attempt k: min(Min<<k, Max),
	// jittered to [half, full].
	for k := range attempts - 1 {
		gap := at[k+1].Sub(at[k])
		full := min(minBackoff<<k, maxBackoff)
		if gap < full/2 {
			t.Errorf("attempt %d came %v after the previous one, want at least %v", k+1, gap, full/2)
		}
		if gap > maxBackoff+time.Second {
			t.Errorf("attempt %d came %v after the previous one, above the cap %v", k+1, gap, maxBackoff)
		}
	}
	if first, last := at[1].Sub(at[0]), at[attempts-1].Sub(at[attempts-2]); last < maxBackoff/2 || first >= maxBackoff/2 {
		t.Errorf("backoff did not grow: first gap %v, last gap %v", first, last)
	}

	// Consecutive failures are reported once, with Asterisk's answer.
	ce := faultState(t, c, ari.Disconnected)
	var ae *ari.Error
	if !errors.As(ce.Err, &ae) || ae.Status != 503 || !errors.Is(ce.Err, ari.ErrServer) {
		t.Errorf("Disconnected.Err = %v, want a 503 *ari.Error", ce.Err)
	}
	if s.Connections() != 0 {
		t.Errorf("%d connections accepted while rejecting", s.Connections())
	}

	s.RejectConnections(0)
	faultState(t, c, ari.Connected)
	// Every upgrade but the one accepted failed (the last awaited one may
	// have been accepted: it was recorded before RejectConnections(0)).
	failed := uint64(faultCount(s, "GET", "/events") - s.Connections())
	if st := c.Stats(); st.DialErrors != failed || failed < attempts-1 || st.Reconnects != 0 {
		t.Errorf("stats %+v, want %d dial errors (at least %d) and no reconnect", st, failed, attempts-1)
	}
}

func TestFaultMalformedEvent(t *testing.T) {
	s, c := faultSetup(t, nil)
	faultRun(t, c)
	ctx := faultCtx(t)
	faultState(t, c, ari.Connected)

	for _, raw := range []string{
		`{"type":"StasisStart","channel":`, // cut short
		`not json`,
		`{"type":"StasisStart","channel":{"id":42}}`, // wrong field type
		`{"application":"earpiece"}`,                 // no type
	} {
		if err := s.EmitRaw(ctx, []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Emit(ctx, aritest.StasisStartJSON(faultApp, "c1")); err != nil {
		t.Fatal(err)
	}

	// The losses are reported in the stream, in place, before the next good
	// event: one Desynced notice, or several if the test read the first
	// before the next loss (unread consecutive losses share one notice).
	for {
		ev := faultNext(t, c)
		if ce, ok := ev.(*ari.ConnectionEvent); ok && ce.State == ari.Desynced {
			if !errors.Is(ce.Err, ari.ErrEventsLost) {
				t.Errorf("Desynced.Err = %v, want ErrEventsLost", ce.Err)
			}
			continue
		}
		if ss, ok := ev.(*ari.StasisStart); !ok || ss.Channel.ID != "c1" {
			t.Fatalf("event %T %+v, want Desynced or StasisStart of c1", ev, ev)
		}
		break
	}
	if st := c.Stats(); st.DecodeErrors != 4 || st.EventsReceived != 1 {
		t.Errorf("stats %+v, want 4 decode errors, 1 event", st)
	}

	// A type this package does not know is delivered raw, not dropped.
	unknown := aritest.Event("ChannelFutureThing", faultApp, map[string]any{"x": 1})
	if err := s.Emit(ctx, unknown); err != nil {
		t.Fatal(err)
	}
	ev := faultNext(t, c)
	u, ok := ev.(*ari.UnknownEvent)
	if !ok || u.Type != "ChannelFutureThing" || string(u.Raw) != string(unknown) {
		t.Errorf("event %T %+v, want UnknownEvent ChannelFutureThing", ev, ev)
	}
}

func TestFaultApplicationReplaced(t *testing.T) {
	const replacedBackoff = 300 * time.Millisecond
	s, c := faultSetup(t, func(cfg *ari.Config) { cfg.ReplacedBackoff = replacedBackoff })
	faultRun(t, c)
	ctx := faultCtx(t)

	conn, err := s.AwaitConnection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AwaitRequest(ctx, "GET", "/events"); err != nil { // the first upgrade
		t.Fatal(err)
	}
	faultState(t, c, ari.Connected)

	sent := time.Now()
	if err := s.Emit(ctx, aritest.ApplicationReplacedJSON(faultApp)); err != nil {
		t.Fatal(err)
	}
	if ev := faultNext(t, c); ev.Base().Type != "ApplicationReplaced" {
		t.Fatalf("event %T %+v, want ApplicationReplaced", ev, ev)
	}
	faultState(t, c, ari.Replaced)

	// The client leaves the socket with a close frame...
	select {
	case <-conn.Done():
	case <-ctx.Done():
		t.Fatal("replaced socket still open")
	}
	if websocket.CloseStatus(conn.Err()) != websocket.StatusNormalClosure {
		t.Errorf("replaced socket ended with %v, want a normal close (1000)", conn.Err())
	}
	// ...and does not try again before ReplacedBackoff.
	r, err := s.AwaitRequest(ctx, "GET", "/events")
	if err != nil {
		t.Fatal(err)
	}
	if gap := r.At.Sub(sent); gap < replacedBackoff {
		t.Errorf("reconnected %v after ApplicationReplaced, want at least %v", gap, replacedBackoff)
	}
	faultState(t, c, ari.Connected)
	if s.Connections() != 2 {
		t.Errorf("%d connections, want 2", s.Connections())
	}
}

// A peer that keeps the TCP connection but stops answering pings is noticed
// within 2*PingInterval.
func TestFaultDeadPeer(t *testing.T) {
	const ping = 150 * time.Millisecond
	s, c := faultSetup(t, func(cfg *ari.Config) { cfg.PingInterval = ping })
	faultRun(t, c)
	ctx := faultCtx(t)

	conn, err := s.AwaitConnection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	faultState(t, c, ari.Connected)

	s.StopPongs(true)
	stopped := time.Now()
	ce := faultState(t, c, ari.Disconnected)
	// Scheduling slack on top of the documented bound, for -race on 2 cores.
	if elapsed := time.Since(stopped); elapsed > 2*ping+250*time.Millisecond {
		t.Errorf("dead peer noticed after %v, want within 2*PingInterval = %v", elapsed, 2*ping)
	}
	if ce.Err == nil || !strings.Contains(ce.Err.Error(), "pong") {
		t.Errorf("Disconnected.Err = %v, want a keepalive error", ce.Err)
	}

	// A deaf server does not see the client's close either; once it reads
	// again it finds the socket closed by the client.
	s.StopPongs(false)
	select {
	case <-conn.Done():
	case <-ctx.Done():
		t.Fatal("the client did not drop the dead socket")
	}
	if _, err := s.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	faultState(t, c, ari.Connected)
}

// The ARI password travels only in the Authorization header: never as
// api_key (which Asterisk, and aritest, would accept) or anywhere in a URL.
func TestFaultCredentialsNotInURL(t *testing.T) {
	const user, password = "earpiece-user", "pw-7f3e9c1d"
	s, c := faultSetup(t, func(cfg *ari.Config) { cfg.User, cfg.Password = user, password })
	s.SetCredentials(user, password)
	s.Respond("GET", "/channels/{id}", 200, aritest.Channel("c1", faultApp))
	s.Respond("POST", "/channels/{id}/snoop/{snoopId}", 500, aritest.Message("Snoop channel could not be created"))

	faultRun(t, c)
	faultState(t, c, ari.Connected)
	if _, err := c.GetChannel(faultCtx(t), "c1"); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Snoop(faultCtx(t), "c1", ari.SnoopRequest{SnoopID: "s1", Spy: "both"})

	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	reqs := s.Requests()
	if len(reqs) < 3 {
		t.Fatalf("%d requests recorded, want the upgrade and two REST calls", len(reqs))
	}
	for _, r := range reqs {
		where := r.Method + " " + r.Path
		if r.Query.Has("api_key") {
			t.Errorf("%s: api_key in the query", where)
		}
		if strings.Contains(r.Path, password) || strings.Contains(r.Query.Encode(), url.QueryEscape(password)) {
			t.Errorf("%s: password in the URL (query %v)", where, r.Query)
		}
		if got := r.Header.Get("Authorization"); got != wantAuth {
			t.Errorf("%s: Authorization %q, want Basic with the configured user", where, got)
		}
	}
}
