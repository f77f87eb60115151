package ari

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsServer is a minimal events WebSocket for these tests: it records each
// upgrade request, hands accepted sockets to the test, and keeps reading
// them (so pings and close frames are answered) until they end.
type wsServer struct {
	*httptest.Server
	reject  atomic.Int32 // answer upgrades with this status while non-zero
	noPongs atomic.Bool  // accepted sockets do not answer pings
	dials   chan dialInfo
	conns   chan *wsConn
	wg      sync.WaitGroup
}

type dialInfo struct {
	at       time.Time
	path     string
	rawQuery string
	user     string
	pass     string
	hasAuth  bool
}

type wsConn struct {
	*websocket.Conn
	done     chan struct{} // closed when the server's read loop ends
	closeErr error         // why it ended; valid after done
}

func newWSServer(t *testing.T) *wsServer {
	t.Helper()
	s := &wsServer{dials: make(chan dialInfo, 100), conns: make(chan *wsConn, 100)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		s.dials <- dialInfo{time.Now(), r.URL.Path, r.URL.RawQuery, u, p, ok}
		if st := s.reject.Load(); st != 0 {
			w.WriteHeader(int(st))
			fmt.Fprintf(w, `{"message":"rejected with %d"}`, st)
			return
		}
		noPongs := s.noPongs.Load()
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			OnPingReceived: func(context.Context, []byte) bool { return !noPongs },
		})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		wc := &wsConn{Conn: c, done: make(chan struct{})}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					wc.closeErr = err
					close(wc.done)
					return
				}
			}
		}()
		s.conns <- wc
	}))
	t.Cleanup(func() {
		// Drop whatever the test left open, then stop the server.
		for {
			select {
			case c := <-s.conns:
				_ = c.CloseNow()
				continue
			default:
			}
			break
		}
		s.Close()
		s.wg.Wait()
	})
	return s
}

func (s *wsServer) accept(t *testing.T) *wsConn {
	t.Helper()
	select {
	case c := <-s.conns:
		t.Cleanup(func() { _ = c.CloseNow() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no websocket connection")
		return nil
	}
}

func (s *wsServer) dial(t *testing.T) dialInfo {
	t.Helper()
	select {
	case d := <-s.dials:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no upgrade request")
		return dialInfo{}
	}
}

func (c *wsConn) send(t *testing.T, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("server write: %v", err)
	}
}

func (c *wsConn) awaitClosed(t *testing.T) error {
	t.Helper()
	select {
	case <-c.done:
		return c.closeErr
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not close the socket")
		return nil
	}
}

// running starts Run and stops it (checking that it ends with ctx's error
// and closes Events) when the test ends.
func running(t *testing.T, cfg Config) *Client {
	t.Helper()
	c := newTestClient(t, cfg)
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
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return c
}

func wsConfig(s *wsServer) Config {
	cfg := testConfig(s.URL + "/ari")
	cfg.ReconnectMin = 10 * time.Millisecond
	cfg.ReconnectMax = 50 * time.Millisecond
	cfg.PingInterval = time.Second
	return cfg
}

func next(t *testing.T, c *Client) Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatal("Events closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
		return nil
	}
}

func nextState(t *testing.T, c *Client, want ConnState) *ConnectionEvent {
	t.Helper()
	ev := next(t, c)
	ce, ok := ev.(*ConnectionEvent)
	if !ok || ce.State != want {
		t.Fatalf("got %T %+v, want ConnectionEvent %v", ev, ev, want)
	}
	if ce.Type != ConnectionEventType || ce.Application != testApp || ce.Timestamp.IsZero() {
		t.Errorf("ConnectionEvent base %+v", ce.EventBase)
	}
	return ce
}

func dtmf(i int) string {
	return fmt.Sprintf(`{"type":"ChannelDtmfReceived","application":"earpiece","timestamp":"2026-11-21T22:33:19.123+0000","digit":"%d","duration_ms":%d,"channel":{"id":"ch-1"}}`, i%10, i)
}

// seq returns the sequence number dtmf(i) carries, or -1.
func seq(ev Event) int {
	if d, ok := ev.(*ChannelDtmfReceived); ok {
		return d.DurationMs
	}
	return -1
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func TestRunDeliversInOrder(t *testing.T) {
	s := newWSServer(t)
	c := running(t, wsConfig(s))

	d := s.dial(t)
	if d.path != "/ari/events" || d.rawQuery != "app=earpiece&subscribeAll=false" {
		t.Errorf("upgrade %s?%s", d.path, d.rawQuery)
	}
	if !d.hasAuth || d.user != testUser || d.pass != testPassword {
		t.Errorf("upgrade auth %v %q %q", d.hasAuth, d.user, d.pass)
	}
	if strings.Contains(d.rawQuery, "api_key") {
		t.Error("api_key in the upgrade URL")
	}

	conn := s.accept(t)
	nextState(t, c, Connected)
	const n = 300
	go func() {
		for i := range n {
			if i == n/2 {
				conn.send(t, `{"type":"ChannelFutureThing","application":"earpiece","timestamp":"2026-11-21T22:33:19.123+0000"}`)
			}
			conn.send(t, dtmf(i))
		}
	}()
	for i := range n {
		if i == n/2 {
			if u, ok := next(t, c).(*UnknownEvent); !ok || u.Type != "ChannelFutureThing" {
				t.Fatalf("want the unknown event in its place, got %T", u)
			}
		}
		ev := next(t, c)
		if seq(ev) != i {
			t.Fatalf("item %d: got %T seq %d", i, ev, seq(ev))
		}
	}
	st := c.Stats()
	if st.EventsReceived != n+1 || !st.Connected || st.EventsDropped != 0 || st.Reconnects != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestRunReconnectsAfterServerCloses(t *testing.T) {
	s := newWSServer(t)
	c := running(t, wsConfig(s))

	conn := s.accept(t)
	nextState(t, c, Connected)
	conn.send(t, dtmf(1))
	if seq(next(t, c)) != 1 {
		t.Fatal("first event")
	}
	_ = conn.CloseNow() // as when Asterisk stops or the network fails
	ce := nextState(t, c, Disconnected)
	if ce.Err == nil {
		t.Error("Disconnected without Err")
	}
	conn2 := s.accept(t)
	nextState(t, c, Connected)
	conn2.send(t, dtmf(2))
	if seq(next(t, c)) != 2 {
		t.Fatal("event after reconnect")
	}
	if st := c.Stats(); st.Reconnects != 1 || st.EventsReceived != 2 || !st.Connected {
		t.Errorf("stats %+v", st)
	}

	// A clean close by the server is handled the same way.
	_ = conn2.Close(websocket.StatusGoingAway, "restart")
	nextState(t, c, Disconnected)
	s.accept(t)
	nextState(t, c, Connected)
}

// Failed attempts back off exponentially but never beyond ReconnectMax, and
// the app hears Disconnected once, not once per attempt.
func TestRunBackoffCapped(t *testing.T) {
	s := newWSServer(t)
	s.reject.Store(http.StatusServiceUnavailable)
	cfg := wsConfig(s)
	cfg.ReconnectMin = 10 * time.Millisecond
	cfg.ReconnectMax = 50 * time.Millisecond
	c := running(t, cfg)

	ce := nextState(t, c, Disconnected)
	if !errors.Is(ce.Err, ErrServer) || !strings.Contains(ce.Err.Error(), "rejected with 503") {
		t.Errorf("Disconnected.Err = %v", ce.Err)
	}
	const attempts = 10
	var times []time.Time
	for range attempts {
		times = append(times, s.dial(t).at)
	}
	// Uncapped, the 10th wait would be 10ms<<9 = 5 s (2.5 s after jitter).
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap > 400*time.Millisecond {
			t.Errorf("wait before attempt %d: %v, want at most ReconnectMax (50ms) plus slack", i+1, gap)
		}
	}
	waitFor(t, "dial errors counted", func() bool { return c.Stats().DialErrors >= attempts })
	if c.Stats().Connected {
		t.Error("Connected while rejected")
	}

	s.reject.Store(0)
	s.accept(t)
	nextState(t, c, Connected) // no second Disconnected in between
	if st := c.Stats(); st.Reconnects != 0 {
		t.Errorf("first connection counted as a reconnect: %+v", st)
	}
}

func TestBackoff(t *testing.T) {
	c := newTestClient(t, Config{BaseURL: "http://x/ari", User: "u", Password: "p", App: "a",
		ReconnectMin: 100 * time.Millisecond, ReconnectMax: 10 * time.Second})
	want := 100 * time.Millisecond
	for attempt := range 100 {
		if attempt > 0 {
			want = min(2*want, 10*time.Second)
		}
		for range 20 {
			d := c.backoff(attempt)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

func TestRunUnauthorized(t *testing.T) {
	s := newWSServer(t)
	s.reject.Store(http.StatusUnauthorized)
	c := running(t, wsConfig(s))
	ce := nextState(t, c, Disconnected)
	var e *Error
	if !errors.Is(ce.Err, ErrUnauthorized) || !errors.As(ce.Err, &e) || e.Path != "/events" || e.Method != "GET" {
		t.Errorf("Err = %v", ce.Err)
	}
	if strings.Contains(ce.Err.Error(), testPassword) {
		t.Errorf("password in %v", ce.Err)
	}
}

func TestRunApplicationReplaced(t *testing.T) {
	s := newWSServer(t)
	cfg := wsConfig(s)
	cfg.ReplacedBackoff = 300 * time.Millisecond
	c := running(t, cfg)

	conn := s.accept(t)
	s.dial(t)
	nextState(t, c, Connected)
	conn.send(t, `{"type":"ApplicationReplaced","application":"earpiece","timestamp":"2026-11-21T22:33:19.123+0000"}`)
	if _, ok := next(t, c).(*ApplicationReplaced); !ok {
		t.Fatal("ApplicationReplaced not delivered")
	}
	nextState(t, c, Replaced)
	replacedAt := time.Now()

	// The client lets go of the app cleanly...
	if err := conn.awaitClosed(t); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("socket ended with %v, want a normal close", err)
	}
	// ...and does not take it back before ReplacedBackoff.
	d := s.dial(t)
	if gap := d.at.Sub(replacedAt); gap < 250*time.Millisecond {
		t.Errorf("reconnected %v after ApplicationReplaced, want >= ReplacedBackoff (300ms)", gap)
	}
	s.accept(t)
	nextState(t, c, Connected)
}

func TestRunPingTimeout(t *testing.T) {
	s := newWSServer(t)
	s.noPongs.Store(true)
	cfg := wsConfig(s)
	cfg.PingInterval = 100 * time.Millisecond
	c := running(t, cfg)

	conn := s.accept(t)
	nextState(t, c, Connected)
	connected := time.Now()
	s.noPongs.Store(false) // the next socket answers

	ce := nextState(t, c, Disconnected)
	if elapsed := time.Since(connected); elapsed > 2*cfg.PingInterval+300*time.Millisecond {
		t.Errorf("dead peer noticed after %v, want within 2*PingInterval", elapsed)
	}
	if ce.Err == nil || !strings.Contains(ce.Err.Error(), "pong") {
		t.Errorf("Err = %v, want a keepalive error", ce.Err)
	}
	conn.awaitClosed(t) // the client dropped the dead socket

	s.accept(t)
	nextState(t, c, Connected)
	// The healthy socket survives several ping rounds.
	select {
	case ev := <-c.Events():
		t.Fatalf("unexpected %T %+v", ev, ev)
	case <-time.After(5 * cfg.PingInterval):
	}
}

// TestRunOverflow fills the queue while the app is not reading: the reader
// keeps going, drops are counted, and every gap in the stream is preceded by
// a Desynced notice.
func TestRunOverflow(t *testing.T) {
	s := newWSServer(t)
	cfg := wsConfig(s)
	cfg.EventBuffer = 4
	cfg.OverflowWait = 20 * time.Millisecond
	c := running(t, cfg)

	conn := s.accept(t)
	const n = 50
	for i := range n {
		conn.send(t, dtmf(i))
	}
	waitFor(t, "all events read", func() bool { return c.Stats().EventsReceived == n })
	st := c.Stats()
	if st.EventsDropped == 0 {
		t.Fatalf("nothing dropped: %+v", st)
	}

	nextState(t, c, Connected)
	// Read everything; after the first notice the server sends a last event
	// (seq 1000) so the stream has an end.
	const last = 1000
	var got []Event
	for sent := false; len(got) == 0 || seq(got[len(got)-1]) != last; {
		got = append(got, next(t, c))
		if desynced(got[len(got)-1]) && !sent {
			conn.send(t, dtmf(last))
			sent = true
		}
	}
	notices, delivered, want := 0, 0, 0
	for i, ev := range got {
		if desynced(ev) {
			notices++
			if ce := ev.(*ConnectionEvent); !errors.Is(ce.Err, ErrEventsLost) {
				t.Errorf("notice Err = %v", ce.Err)
			}
			continue
		}
		if s := seq(ev); s != want {
			if s < want || i == 0 || !desynced(got[i-1]) {
				t.Fatalf("item %d: seq %d, want %d or a Desynced notice before the gap", i, s, want)
			}
		}
		if seq(ev) != last {
			delivered++
		}
		want = seq(ev) + 1
	}
	if notices == 0 {
		t.Error("no Desynced notice")
	}
	// Each event was either delivered or dropped.
	if dropped := c.Stats().EventsDropped; uint64(delivered)+dropped != n {
		t.Errorf("delivered %d + dropped %d != %d", delivered, dropped, n)
	}
}

func desynced(ev Event) bool {
	ce, ok := ev.(*ConnectionEvent)
	return ok && ce.State == Desynced
}

// An undecodable message is counted, logged and reported as Desynced right
// where it was, not silently skipped.
func TestRunDecodeError(t *testing.T) {
	s := newWSServer(t)
	c := running(t, wsConfig(s))
	conn := s.accept(t)
	nextState(t, c, Connected)
	conn.send(t, dtmf(1))
	conn.send(t, `{"type":"StasisStart","channel":`)
	conn.send(t, dtmf(2))
	if seq(next(t, c)) != 1 {
		t.Fatal("event before")
	}
	ce := nextState(t, c, Desynced)
	if !errors.Is(ce.Err, ErrEventsLost) || !strings.Contains(ce.Err.Error(), "decoding") {
		t.Errorf("Err = %v", ce.Err)
	}
	if seq(next(t, c)) != 2 {
		t.Fatal("event after")
	}
	if st := c.Stats(); st.DecodeErrors != 1 || st.EventsReceived != 2 || st.EventsDropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestRunShutdown(t *testing.T) {
	s := newWSServer(t)
	c := newTestClient(t, wsConfig(s))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	conn := s.accept(t)
	nextState(t, c, Connected)

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := conn.awaitClosed(t); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("socket ended with %v, want a normal close", err)
	}
	if _, ok := <-c.Events(); ok {
		t.Error("Events not closed")
	}
	if c.Stats().Connected {
		t.Error("still Connected")
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrAlreadyRun) {
		t.Errorf("second Run = %v", err)
	}
}

// Shutdown while the app is not reading and the queue is full must not hang.
func TestRunShutdownWithFullQueue(t *testing.T) {
	s := newWSServer(t)
	cfg := wsConfig(s)
	cfg.EventBuffer = 1
	cfg.OverflowWait = time.Minute
	c := newTestClient(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	conn := s.accept(t)
	for i := range 5 {
		conn.send(t, dtmf(i))
	}
	waitFor(t, "reader blocked on the full queue", func() bool { return c.Stats().EventsReceived >= 2 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestConnectionEventJSON(t *testing.T) {
	ce := &ConnectionEvent{EventBase: EventBase{Type: ConnectionEventType, Application: "a"}, State: Replaced, Err: errors.New("x")}
	b, err := json.Marshal(ce)
	if err != nil || !strings.Contains(string(b), `"state":3`) {
		t.Errorf("%s %v", b, err)
	}
}

// An event that matches two of the app's subscriptions arrives twice, byte for byte: the copy is
// dropped and counted; events that differ, even only by their timestamp, all get through.
func TestRunDropsDuplicateCopies(t *testing.T) {
	s := newWSServer(t)
	c := running(t, wsConfig(s))
	conn := s.accept(t)
	nextState(t, c, Connected)
	conn.send(t, dtmf(1))
	conn.send(t, dtmf(1)) // the endpoint subscription's copy
	conn.send(t, dtmf(2))
	conn.send(t, dtmf(1)) // still a copy, a few messages later
	conn.send(t, dtmf(3))
	for _, want := range []int{1, 2, 3} {
		if got := seq(next(t, c)); got != want {
			t.Fatalf("got event %d, want %d", got, want)
		}
	}
	if st := c.Stats(); st.Duplicates != 2 || st.EventsReceived != 3 {
		t.Errorf("stats %+v", st)
	}
}
