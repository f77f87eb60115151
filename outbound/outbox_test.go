package outbound

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/store"
)

// The outbox tests: real Redis (internal/redistest, stopped, restarted and frozen for real),
// real HTTP receivers (httptest), real hubs started and stopped as main does.

// hit is one request a sink received.
type hit struct {
	id, hub, call string
	sigOK         bool
	status        int // what the sink answered; 0: the request was cut before an answer
	at            time.Time
}

// sink is a webhook receiver that verifies signatures, tells which hub sent each request (the
// X-Hub header tagHub adds) and answers what its handle says; handle may block (a hanging
// receiver) until the request is cut.
type sink struct {
	secret  string
	srv     *httptest.Server
	arrived chan hit // each request as it arrives, before it is answered
	got     chan hit // each request once answered (or cut)

	mu     sync.Mutex
	hits   []hit
	handle func(r *http.Request, h hit) int
}

func newSink(t *testing.T, secret string, handle func(r *http.Request, h hit) int) *sink {
	s := &sink{secret: secret, handle: handle, arrived: make(chan hit, 1000), got: make(chan hit, 1000)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func ok204(*http.Request, hit) int { return http.StatusNoContent }

func (s *sink) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id, ts := req.Header.Get(HeaderWebhookID), req.Header.Get(HeaderWebhookTimestamp)
	s.mu.Lock()
	secret, handle := s.secret, s.handle
	s.mu.Unlock()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	var n struct {
		Data struct {
			CallID string `json:"call_id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &n)
	h := hit{id: id, hub: req.Header.Get("X-Hub"), call: n.Data.CallID, at: time.Now(),
		sigOK: hmac.Equal([]byte(req.Header.Get(HeaderWebhookSignature)), []byte(want))}
	s.arrived <- h
	h.status = handle(req, h)
	if req.Context().Err() != nil {
		h.status = 0
	} else {
		w.WriteHeader(h.status)
	}
	s.mu.Lock()
	s.hits = append(s.hits, h)
	s.mu.Unlock()
	s.got <- h
}

func (s *sink) next(t *testing.T, d time.Duration) hit {
	t.Helper()
	select {
	case h := <-s.got:
		return h
	case <-time.After(d):
		t.Fatalf("no webhook within %v", d)
		return hit{}
	}
}

// snapshot is every request so far.
func (s *sink) snapshot() []hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hit(nil), s.hits...)
}

// delivered counts the 2xx answers per webhook-id.
func (s *sink) delivered() map[string]int {
	out := map[string]int{}
	for _, h := range s.snapshot() {
		if h.status >= 200 && h.status < 300 {
			out[h.id]++
		}
	}
	return out
}

// tagHub makes a hub's POSTs say which hub sent them (a real transport, one header more).
type tagHub struct {
	name string
	base http.RoundTripper
}

func (t tagHub) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Hub", t.name)
	return t.base.RoundTrip(r)
}

// runningHub is a hub started as main starts it, stopped as main stops it (or killed).
type runningHub struct {
	*Hub
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// start builds a hub from e's config changed by opts, named name (its POSTs carry X-Hub: name),
// and runs it until stop, kill or the end of the test.
func (e *env) start(name string, opts ...option) *runningHub {
	e.t.Helper()
	cfg := e.cfg
	cfg.Instance = name
	tr := http.DefaultTransport.(*http.Transport).Clone()
	cfg.Client = &http.Client{
		Transport:     tagHub{name: name, base: tr},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningHub{Hub: h, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = h.Run(ctx)
	}()
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

// stop ends Run as SIGTERM does in main and returns how long Run took to return.
func (r *runningHub) stop(t testing.TB) time.Duration {
	t.Helper()
	var took time.Duration
	r.once.Do(func() {
		start := time.Now()
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("Hub.Run did not return after cancel")
		}
		took = time.Since(start)
	})
	return took
}

// kill ends the hub as a crash would: nothing drained, written or released.
func (r *runningHub) kill(t testing.TB) {
	t.Helper()
	r.crash.Store(true)
	r.stop(t)
}

func note(typ, call string) app.Notification {
	return app.Notification{Type: typ, Tenant: "acme", Time: t0, Data: map[string]string{"call_id": call}}
}

func endpoint(s *sink) option {
	return func(c *Config) {
		c.Endpoints = []Endpoint{{Tenant: "acme", URL: s.srv.URL + "/hook", Secret: s.secret, AllowLocal: true}}
	}
}

func (e *env) records(t testing.TB) map[string]store.Delivery {
	t.Helper()
	ds, err := e.st.Deliveries(context.Background(), "acme", 0)
	if err != nil {
		return nil
	}
	out := map[string]store.Delivery{}
	for _, d := range ds {
		out[d.ID] = d
	}
	return out
}

func (e *env) depth(t testing.TB) int64 {
	t.Helper()
	st, err := e.st.OutboxStats(context.Background())
	if err != nil {
		t.Fatalf("OutboxStats: %v", err)
	}
	return st.Depth
}

// (1) A delivery retrying when its hub stops is delivered by the next hub on the same Redis
// once the receiver recovers: same webhook-id, its record goes from retrying to delivered.
func TestOutboxRestartDeliversRetry(t *testing.T) {
	var up atomic.Bool
	s := newSink(t, "acme-secret", func(*http.Request, hit) int {
		if up.Load() {
			return http.StatusNoContent
		}
		return http.StatusInternalServerError
	})
	e := newEnv(t, endpoint(s), func(c *Config) {
		c.RetrySchedule = []time.Duration{300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	})
	first := e.start("first")
	first.Notify(note(app.NoteSupervisionEnded, "c1"))
	h1 := s.next(t, 5*time.Second)
	if h1.status != 500 || !h1.sigOK || h1.hub != "first" {
		t.Fatalf("first attempt %+v", h1)
	}
	waitFor(t, 5*time.Second, "a retrying record", func() bool {
		return e.records(t)[h1.id].Status == store.DeliveryRetrying
	})
	first.stop(t)
	if d := e.depth(t); d != 1 {
		t.Fatalf("outbox depth after stop = %d, want 1", d)
	}
	before := e.records(t)[h1.id]
	if before.Status != store.DeliveryRetrying {
		t.Fatalf("record after stop: %+v", before)
	}

	up.Store(true)
	e.start("second")
	var h2 hit
	for h2.status != http.StatusNoContent {
		h2 = s.next(t, 5*time.Second)
	}
	if h2.id != h1.id || h2.hub != "second" || !h2.sigOK || h2.call != "c1" {
		t.Errorf("after the restart: %+v, want webhook-id %s from the second hub", h2, h1.id)
	}
	var rec store.Delivery
	waitFor(t, 5*time.Second, "a delivered record", func() bool {
		rec = e.records(t)[h1.id]
		return rec.Status == store.DeliveryDelivered
	})
	if rec.Attempts != before.Attempts+1 || rec.LastStatus != 204 || rec.LastError != "" || !rec.NextAttemptAt.IsZero() {
		t.Errorf("record %+v (before the restart %+v)", rec, before)
	}
	if d := e.depth(t); d != 0 {
		t.Errorf("outbox depth = %d, want 0", d)
	}
}

// (2) SIGTERM: notifications queued just before the hub stops (as the app's last teardown
// queues supervision.ended), and attempts in progress, some of which outlast the drain bound,
// are all delivered, by this hub within the bound or by the next one: none lost, each
// notification under one webhook-id.
func TestOutboxDrainOnStop(t *testing.T) {
	const n = 40
	var cutOnce atomic.Bool
	s := newSink(t, "acme-secret", func(r *http.Request, h hit) int {
		if h.call == "hangs" && cutOnce.CompareAndSwap(false, true) {
			<-r.Context().Done() // outlasts the drain bound: cut
			return 0
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
		}
		return http.StatusNoContent
	})
	e := newEnv(t, endpoint(s), func(c *Config) {
		c.Workers = 2
		c.DrainTimeout = time.Second
	})
	first := e.start("first")
	first.Notify(note(app.NoteCallStarted, "hangs"))
	arrival(t, s) // the hanging attempt is in progress
	for i := range n / 2 {
		first.Notify(note(app.NoteSupervisionEnded, fmt.Sprint(i)))
	}
	arrival(t, s) // another attempt in progress, and more in the outbox
	for i := n / 2; i < n; i++ {
		first.Notify(note(app.NoteSupervisionEnded, fmt.Sprint(i)))
	}
	took := first.stop(t)
	if took > e.cfg.DrainTimeout+time.Second {
		t.Errorf("stopping took %v; the drain bound is %v", took, e.cfg.DrainTimeout)
	}
	byFirst := len(s.delivered())
	if byFirst == 0 {
		t.Error("the attempt in progress at the stop was not let finish")
	}
	t.Logf("stopped in %v; %d of %d delivered before the stop, %d in the outbox", took, byFirst, n+1, e.depth(t))

	e.start("second")
	waitFor(t, 5*time.Second, "every notification delivered", func() bool { return len(s.delivered()) == n+1 })
	time.Sleep(100 * time.Millisecond) // nothing more comes
	ids := map[string]string{}         // call → webhook-id
	for _, h := range s.snapshot() {
		if !h.sigOK {
			t.Errorf("bad signature: %+v", h)
		}
		if prev, ok := ids[h.call]; ok && prev != h.id {
			t.Errorf("call %s came under two webhook-ids, %s and %s", h.call, prev, h.id)
		}
		ids[h.call] = h.id
	}
	if len(ids) != n+1 {
		t.Errorf("%d notifications reached the receiver, want %d", len(ids), n+1)
	}
	for id, c := range s.delivered() {
		if c != 1 {
			t.Errorf("%s delivered %d times", id, c)
		}
	}
	recs := e.records(t)
	for _, id := range ids {
		if recs[id].Status != store.DeliveryDelivered {
			t.Errorf("record %+v", recs[id])
		}
	}
	if d := e.depth(t); d != 0 {
		t.Errorf("outbox depth = %d", d)
	}
}

// (3) Two hubs on one Redis share the outbox: every delivery is attempted by one of them, once.
func TestOutboxTwoHubsDeliverOnce(t *testing.T) {
	const n = 60
	s := newSink(t, "acme-secret", ok204)
	e := newEnv(t, endpoint(s))
	a, b := e.start("a"), e.start("b")
	for i := range n {
		h := a
		if i%2 == 1 {
			h = b
		}
		h.Notify(note(app.NoteCallStarted, fmt.Sprint(i)))
	}
	waitFor(t, 5*time.Second, "every notification delivered", func() bool { return len(s.delivered()) == n })
	time.Sleep(300 * time.Millisecond) // several polls of both hubs: nothing more comes
	hits := s.snapshot()
	if len(hits) != n {
		t.Errorf("%d requests for %d deliveries", len(hits), n)
	}
	by := map[string]int{}
	for _, h := range hits {
		by[h.hub]++
	}
	t.Logf("requests by hub: %v", by)
	waitFor(t, 5*time.Second, "delivered records", func() bool {
		recs := e.records(t)
		for _, h := range hits {
			if r := recs[h.id]; r.Status != store.DeliveryDelivered || r.Attempts != 1 {
				return false
			}
		}
		return len(recs) == n
	})
}

// (3) A hub killed in the middle of an attempt: the other takes the delivery over once the
// claim has expired, with the same webhook-id.
func TestOutboxTakeoverAfterKill(t *testing.T) {
	var hung atomic.Bool
	s := newSink(t, "acme-secret", func(r *http.Request, h hit) int {
		if hung.CompareAndSwap(false, true) {
			<-r.Context().Done() // hangs until its hub dies
			return 0
		}
		return http.StatusNoContent
	})
	e := newEnv(t, endpoint(s), func(c *Config) {
		c.AttemptTimeout = 700 * time.Millisecond
		c.ClaimTimeout = time.Second
	})
	hubs := map[string]*runningHub{"a": e.start("a"), "b": e.start("b")}
	hubs["a"].Notify(note(app.NoteSupervisionEnded, "c1"))
	first := arrival(t, s)
	claimedAt := time.Now()
	holder := hubs[first.hub]
	other := map[string]string{"a": "b", "b": "a"}[first.hub]
	holder.kill(t)
	if c := <-s.got; c.id != first.id || c.status != 0 {
		t.Fatalf("the killed hub's attempt: %+v", c)
	}
	second := s.next(t, 5*time.Second)
	if second.id != first.id || second.hub != other || second.status != http.StatusNoContent {
		t.Fatalf("takeover: %+v, want %s from hub %s", second, first.id, other)
	}
	if d := second.at.Sub(claimedAt); d < 800*time.Millisecond {
		t.Errorf("taken over after %v, before the claim (1 s) expired", d)
	}
	waitFor(t, 5*time.Second, "a delivered record", func() bool {
		r := e.records(t)[first.id]
		return r.Status == store.DeliveryDelivered && r.Attempts == 1
	})
	if d := e.depth(t); d != 0 {
		t.Errorf("outbox depth = %d", d)
	}
}

// (4) Redis goes away while an attempt is out: the receiver gets the POST, and the delivery's
// record says delivered once Redis is back; nothing is left retrying, nothing is sent twice.
// Stopped: Redis comes back empty (no persistence), the record is written anyway. Paused:
// Redis comes back with its data, the claim is settled.
func TestOutboxRedisDownWhileRecording(t *testing.T) {
	for _, mode := range []string{"stopped", "paused"} {
		t.Run(mode, func(t *testing.T) {
			release, arrived := make(chan struct{}), make(chan string, 1)
			s := newSink(t, "acme-secret", func(r *http.Request, h hit) int {
				arrived <- h.id
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return http.StatusNoContent
			})
			e := newEnv(t, endpoint(s), func(c *Config) { c.StoreTimeout = 300 * time.Millisecond })
			e.start("a").Notify(note(app.NoteSupervisionEnded, "c1"))
			var id string
			select {
			case id = <-arrived: // the POST is in the receiver's hands
			case <-time.After(5 * time.Second):
				t.Fatal("no POST")
			}
			if mode == "stopped" {
				e.srv.Stop()
			} else {
				e.srv.Pause()
			}
			close(release)
			h := s.next(t, 5*time.Second)
			if h.id != id || h.status != http.StatusNoContent {
				t.Fatalf("the POST: %+v", h)
			}
			time.Sleep(500 * time.Millisecond) // the hub fails to record, and retries
			if mode == "stopped" {
				e.srv.Restart()
			} else {
				e.srv.Resume()
			}
			var rec store.Delivery
			waitFor(t, 5*time.Second, "the delivered record", func() bool {
				rec = e.records(t)[id]
				return rec.Status == store.DeliveryDelivered
			})
			if rec.Attempts != 1 || rec.LastStatus != 204 {
				t.Errorf("record %+v", rec)
			}
			if d := e.depth(t); d != 0 {
				t.Errorf("outbox depth = %d", d)
			}
			select {
			case h := <-s.got:
				t.Errorf("sent again: %+v", h)
			case <-time.After(300 * time.Millisecond):
			}
		})
	}
}

// (5) Notifications made while Redis is down wait in memory (Notify does not block) and are
// published and delivered once it is back.
func TestOutboxNotificationsWhileRedisDown(t *testing.T) {
	s := newSink(t, "acme-secret", ok204)
	reg := prometheus.NewRegistry()
	e := newEnv(t, endpoint(s), func(c *Config) {
		c.StoreTimeout = 300 * time.Millisecond
		c.Registerer = reg
	})
	h := e.start("a")
	e.srv.Stop()
	start := time.Now()
	for i := range 3 {
		h.Notify(note(app.NoteCallStarted, fmt.Sprint(i)))
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("Notify took %v with Redis down", d)
	}
	waitFor(t, 5*time.Second, "3 notifications waiting in memory", func() bool {
		return gauge(t, reg, "earpiece_notifications_buffered") == 3
	})
	select {
	case got := <-s.got:
		t.Fatalf("delivered without Redis: %+v", got)
	case <-time.After(200 * time.Millisecond):
	}
	e.srv.Restart()
	waitFor(t, 5*time.Second, "3 deliveries", func() bool { return len(s.delivered()) == 3 })
	waitFor(t, 5*time.Second, "3 delivered records", func() bool {
		n := 0
		for _, r := range e.records(t) {
			if r.Status == store.DeliveryDelivered {
				n++
			}
		}
		return n == 3
	})
	// The event stream got them too, in order.
	evs, err := e.st.ReadEvents(context.Background(), "acme", "0", 0, 10)
	if err != nil || len(evs) != 3 {
		t.Fatalf("events = %+v, %v", evs, err)
	}
	for i, ev := range evs {
		var n struct {
			Data struct {
				CallID string `json:"call_id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(ev.Data, &n); err != nil || n.Data.CallID != fmt.Sprint(i) {
			t.Errorf("event %d: %s", i, ev.Data)
		}
	}
	if g := gauge(t, reg, "earpiece_notifications_buffered"); g != 0 {
		t.Errorf("buffered = %v after Redis came back", g)
	}
}

// The outbox gauges follow the outbox.
func TestOutboxMetrics(t *testing.T) {
	var up atomic.Bool
	s := newSink(t, "acme-secret", func(*http.Request, hit) int {
		if up.Load() {
			return http.StatusNoContent
		}
		return http.StatusServiceUnavailable
	})
	reg := prometheus.NewRegistry()
	e := newEnv(t, endpoint(s), func(c *Config) {
		c.RetrySchedule = []time.Duration{400 * time.Millisecond, 400 * time.Millisecond}
		c.SweepInterval = 50 * time.Millisecond
		c.Registerer = reg
	})
	e.start("a").Notify(note(app.NoteCallStarted, "c1"))
	s.next(t, 5*time.Second)
	waitFor(t, 5*time.Second, "depth 1, aging", func() bool {
		return gauge(t, reg, "earpiece_webhook_outbox_depth") == 1 && gauge(t, reg, "earpiece_webhook_outbox_oldest_age_seconds") >= 0.1
	})
	up.Store(true)
	waitFor(t, 5*time.Second, "depth 0", func() bool {
		return gauge(t, reg, "earpiece_webhook_outbox_depth") == 0 && gauge(t, reg, "earpiece_webhook_outbox_oldest_age_seconds") == 0
	})
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "earpiece_webhook_attempts_total" {
			continue
		}
		got := map[string]float64{}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
		if got["retrying"] != 1 || got["delivered"] != 1 {
			t.Errorf("attempts = %v", got)
		}
	}
}

// Deliveries for an endpoint no instance has any more are given up by the sweep once they
// are OrphanAfter old, rather than waiting (and their records saying "retrying") forever.
func TestOutboxOrphansGivenUp(t *testing.T) {
	gone := newSink(t, "old-secret", func(*http.Request, hit) int { return http.StatusInternalServerError })
	kept := newSink(t, "new-secret", ok204)
	e := newEnv(t, endpoint(gone), func(c *Config) {
		c.RetrySchedule = []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
		c.SweepInterval = 50 * time.Millisecond
		c.OrphanAfter = 700 * time.Millisecond
	})
	first := e.start("first")
	notified := time.Now()
	first.Notify(note(app.NoteCallStarted, "c1"))
	h := gone.next(t, 5*time.Second)
	first.stop(t)

	// The directory changed meanwhile: the endpoint is gone.
	e.start("second", endpoint(kept))
	var rec store.Delivery
	waitFor(t, 5*time.Second, "the orphan given up", func() bool {
		rec = e.records(t)[h.id]
		return rec.Status == store.DeliveryFailed
	})
	if since := time.Since(notified); since < e.cfg.OrphanAfter {
		t.Errorf("given up after %v, before OrphanAfter", since)
	}
	if rec.LastError != errEndpointGone || !rec.NextAttemptAt.IsZero() {
		t.Errorf("record %+v", rec)
	}
	if d := e.depth(t); d != 0 {
		t.Errorf("outbox depth = %d", d)
	}
	select {
	case h := <-kept.got:
		t.Errorf("the orphan went to another endpoint: %+v", h)
	default:
	}
}

// An endpoint whose secret changed keeps its pending deliveries (they follow the URL), signed
// with the new secret.
func TestOutboxSecretRotationKeepsDeliveries(t *testing.T) {
	var up atomic.Bool
	s := newSink(t, "old-secret", func(*http.Request, hit) int {
		if up.Load() {
			return http.StatusNoContent
		}
		return http.StatusInternalServerError
	})
	e := newEnv(t, endpoint(s), func(c *Config) {
		c.RetrySchedule = []time.Duration{200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}
	})
	h := e.start("a")
	h.Notify(note(app.NoteCallStarted, "c1"))
	first := s.next(t, 5*time.Second)
	s.mu.Lock()
	s.secret = "new-secret"
	s.mu.Unlock()
	up.Store(true)
	if err := h.SetEndpoints([]Endpoint{{Tenant: "acme", URL: s.srv.URL + "/hook", Secret: "new-secret", AllowLocal: true}}); err != nil {
		t.Fatal(err)
	}
	var got hit
	for got.status != http.StatusNoContent {
		got = s.next(t, 5*time.Second)
	}
	if got.id != first.id || !got.sigOK {
		t.Errorf("after the rotation: %+v (first %s)", got, first.id)
	}
}

// arrival is the next request to arrive at s, answered or not.
func arrival(t *testing.T, s *sink) hit {
	t.Helper()
	select {
	case h := <-s.arrived:
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("no request within 5s")
		return hit{}
	}
}

func gauge(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not registered", name)
	return 0
}

// Stopping is bounded even when Redis is down: what cannot be written or recorded in time is
// given up (the attempt stays in the outbox, claimed until its claim expires).
func TestOutboxStopBoundedWhileRedisDown(t *testing.T) {
	release := make(chan struct{})
	s := newSink(t, "acme-secret", func(r *http.Request, h hit) int {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return http.StatusNoContent
	})
	e := newEnv(t, endpoint(s), func(c *Config) { c.StoreTimeout = 300 * time.Millisecond })
	h := e.start("a")
	h.Notify(note(app.NoteCallStarted, "c1"))
	arrival(t, s)
	e.srv.Stop()
	close(release)                          // the attempt succeeds and cannot be recorded
	h.Notify(note(app.NoteCallEnded, "c1")) // cannot be written
	if took := h.stop(t); took > e.cfg.DrainTimeout+1500*time.Millisecond {
		t.Errorf("stopping took %v with Redis down; the drain bound is %v", took, e.cfg.DrainTimeout)
	}
}
