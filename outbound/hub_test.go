package outbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/store"
)

// receiver is a webhook endpoint that checks each request's signature on its own (with the
// Standard Webhooks formula written out here, not the package's Sign) and answers
// from a script.
type receiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server

	mu       sync.Mutex
	attempts []attempt
	answer   func(n int) int // status for the n-th attempt (1-based)
	hang     chan struct{}   // when set, requests block until it is closed
	got      chan attempt
}

type attempt struct {
	id, ts   string
	sigOK    bool
	body     []byte
	received time.Time
}

func newReceiver(t *testing.T, secret string, answer func(n int) int) *receiver {
	r := &receiver{t: t, secret: []byte(secret), answer: answer, got: make(chan attempt, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, r.secret)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	a := attempt{id: id, ts: ts, body: body, received: time.Now(),
		sigOK: hmac.Equal([]byte(req.Header.Get("webhook-signature")), []byte(want)) &&
			req.Header.Get("Content-Type") == "application/json" && req.Method == http.MethodPost}
	r.mu.Lock()
	r.attempts = append(r.attempts, a)
	n := len(r.attempts)
	hang := r.hang
	r.mu.Unlock()
	r.got <- a
	if hang != nil {
		select {
		case <-hang:
		case <-req.Context().Done():
		}
		return
	}
	w.WriteHeader(r.answer(n))
}

func (r *receiver) next(t *testing.T, d time.Duration) attempt {
	t.Helper()
	select {
	case a := <-r.got:
		return a
	case <-time.After(d):
		t.Fatalf("no webhook within %v", d)
		return attempt{}
	}
}

func fast(c *Config) {
	c.RetrySchedule = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
	c.AttemptTimeout = 2 * time.Second
}

func TestWebhookRetriesAndSignatures(t *testing.T) {
	rcv := newReceiver(t, "acme-webhook-secret", func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	e := newEnv(t, fast, func(c *Config) {
		c.Endpoints = []Endpoint{{Tenant: "acme", URL: rcv.srv.URL + "/hook", Secret: "acme-webhook-secret", AllowLocal: true}}
	})
	hub := e.runHub()
	hub.Notify(app.Notification{Type: app.NoteCallStarted, Tenant: "acme", Time: t0, Data: map[string]string{"call_id": "c1"}})
	hub.Notify(app.Notification{Type: app.NoteCallStarted, Tenant: "globex", Time: t0}) // no endpoint

	var as []attempt
	for range 3 {
		as = append(as, rcv.next(t, 5*time.Second))
	}
	for i, a := range as {
		if !a.sigOK {
			t.Errorf("attempt %d: signature or headers do not verify", i+1)
		}
		if a.id != as[0].id || a.id == "" {
			t.Errorf("attempt %d: webhook-id %q, want %q on every attempt", i+1, a.id, as[0].id)
		}
		if sec, err := strconv.ParseInt(a.ts, 10, 64); err != nil || sec != t0.Unix() {
			t.Errorf("attempt %d: webhook-timestamp %q, want %d", i+1, a.ts, t0.Unix())
		}
		var n app.Notification
		if err := json.Unmarshal(a.body, &n); err != nil || n.Type != app.NoteCallStarted || n.Tenant != "acme" {
			t.Errorf("attempt %d body %s: %v", i+1, a.body, err)
		}
	}
	if gap := as[1].received.Sub(as[0].received); gap < 10*time.Millisecond {
		t.Errorf("retry after %v: no backoff", gap)
	}

	// The record.
	var got []store.Delivery
	waitFor(t, 5*time.Second, "the delivery record", func() bool {
		got, _ = e.st.Deliveries(t.Context(), "acme", 0)
		return len(got) == 1 && got[0].Status == store.DeliveryDelivered
	})
	d := got[0]
	if d.ID != as[0].id || d.Attempts != 3 || d.LastStatus != http.StatusNoContent || d.LastError != "" || d.URL != rcv.srv.URL+"/hook" || d.Type != app.NoteCallStarted {
		t.Errorf("delivery = %+v", d)
	}
	// globex has no endpoint: no record.
	if ds, err := e.st.Deliveries(t.Context(), "globex", 0); err != nil || len(ds) != 0 {
		t.Errorf("globex deliveries = %+v, %v", ds, err)
	}
	// The notification also reached the event stream.
	evs, err := e.st.ReadEvents(t.Context(), "acme", "0", 0, 10)
	if err != nil || len(evs) != 1 || evs[0].Type != app.NoteCallStarted {
		t.Errorf("acme stream = %+v, %v", evs, err)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	rcv := newReceiver(t, "s", func(int) int { return http.StatusBadGateway })
	e := newEnv(t, fast, func(c *Config) {
		c.Endpoints = []Endpoint{{Tenant: "acme", URL: rcv.srv.URL, Secret: "s", AllowLocal: true}}
	})
	e.runHub().Notify(app.Notification{Type: app.NoteCallEnded, Tenant: "acme"})
	for range 4 { // first attempt + 3 retries
		rcv.next(t, 5*time.Second)
	}
	waitFor(t, 5*time.Second, "a failed record", func() bool {
		ds, _ := e.st.Deliveries(t.Context(), "acme", 0)
		return len(ds) == 1 && ds[0].Status == store.DeliveryFailed && ds[0].Attempts == 4 &&
			ds[0].LastStatus == http.StatusBadGateway && ds[0].LastError == "HTTP 502"
	})
	select {
	case a := <-rcv.got:
		t.Errorf("attempt after giving up: %+v", a)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestHangingReceiverDelaysNobodyElse: globex's receiver never answers; acme's webhook, sent
// after globex's, still arrives at once.
func TestHangingReceiverDelaysNobodyElse(t *testing.T) {
	hang := make(chan struct{})
	slow := newReceiver(t, "g", func(int) int { return 200 })
	slow.hang = hang
	t.Cleanup(func() { close(hang) }) // runs before slow.srv.Close (LIFO)
	ok := newReceiver(t, "a", func(int) int { return 200 })
	e := newEnv(t, func(c *Config) {
		c.AttemptTimeout = 30 * time.Second
		c.Workers = 1
		c.Endpoints = []Endpoint{
			{Tenant: "globex", URL: slow.srv.URL, Secret: "g", AllowLocal: true},
			{Tenant: "acme", URL: ok.srv.URL, Secret: "a", AllowLocal: true},
		}
	})
	hub := e.runHub()
	for range 3 {
		hub.Notify(app.Notification{Type: app.NoteCallStarted, Tenant: "globex"})
	}
	slow.next(t, 5*time.Second) // globex's only worker is now stuck
	start := time.Now()
	hub.Notify(app.Notification{Type: app.NoteCallStarted, Tenant: "acme"})
	a := ok.next(t, 5*time.Second)
	if d := a.received.Sub(start); d > time.Second {
		t.Errorf("acme's webhook took %v behind a hanging receiver", d)
	}
	if !a.sigOK {
		t.Error("acme signature does not verify")
	}
}

func TestNotifyNeverBlocks(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *Config) { c.NotifyQueue = 4; c.Registerer = reg })
	hub, err := New(e.cfg) // not running: nothing drains the queue
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 1000 {
		hub.Notify(app.Notification{Type: app.NoteCallStarted, Tenant: "acme"})
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("1000 Notify calls took %v", d)
	}
	if n := hub.Dropped(); n != 996 {
		t.Errorf("Dropped = %d, want 996", n)
	}
	if v := droppedMetric(t, reg); v != 996 {
		t.Errorf("earpiece_notifications_dropped_total = %v", v)
	}
}

func TestEndpointValidation(t *testing.T) {
	e := newEnv(t)
	for _, ep := range []Endpoint{
		{URL: "https://x.example", Secret: "s"},
		{Tenant: "acme", URL: "", Secret: "s"},
		{Tenant: "acme", URL: "ftp://x.example", Secret: "s"},
		{Tenant: "acme", URL: "/relative", Secret: "s"},
		{Tenant: "acme", URL: "https://x.example"},
		{Tenant: "acme", URL: "https://x.example", Secret: "whsec_!!"},
		// Local targets (SSRF), unless allowed.
		{Tenant: "acme", URL: "http://169.254.169.254/latest/meta-data/", Secret: "s"},
		{Tenant: "acme", URL: "http://127.0.0.1:9000/hook", Secret: "s"},
		{Tenant: "acme", URL: "http://[::1]/hook", Secret: "s"},
		{Tenant: "acme", URL: "http://[fe80::1%25eth0]/hook", Secret: "s"},
		{Tenant: "acme", URL: "http://0.0.0.0/hook", Secret: "s"},
		{Tenant: "acme", URL: "http://localhost:9000/hook", Secret: "s"},
	} {
		cfg := e.cfg
		cfg.Endpoints = []Endpoint{ep}
		if _, err := New(cfg); err == nil {
			t.Errorf("New accepted %+v", ep)
		}
	}
}

// TestSignVector checks Sign against the example of the Standard Webhooks
// specification (whsec_ secrets are base64).
func TestSignVector(t *testing.T) {
	key, err := signingKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func droppedMetric(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "earpiece_notifications_dropped_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("earpiece_notifications_dropped_total not registered")
	return 0
}

// The directory changed while the hub runs: a new endpoint gets the next notification, a
// removed one gets nothing more, and an invalid set changes nothing.
func TestSetEndpointsWhileRunning(t *testing.T) {
	ok := func(int) int { return http.StatusNoContent }
	first, second := newReceiver(t, "first-secret", ok), newReceiver(t, "second-secret", ok)
	e := newEnv(t, fast, func(c *Config) {
		c.Endpoints = []Endpoint{{Tenant: "acme", URL: first.srv.URL, Secret: "first-secret", AllowLocal: true}}
	})
	hub := e.runHub()
	hub.Notify(app.Notification{Type: app.NoteCallStarted, Tenant: "acme", Time: t0})
	if a := first.next(t, 5*time.Second); !a.sigOK {
		t.Fatal("first endpoint: signature does not verify")
	}

	bad := []Endpoint{{Tenant: "acme", URL: "ftp://nowhere", Secret: "x"}}
	if err := hub.SetEndpoints(bad); err == nil {
		t.Fatal("SetEndpoints took an invalid endpoint")
	}
	if err := hub.SetEndpoints([]Endpoint{{Tenant: "acme", URL: second.srv.URL, Secret: "second-secret", AllowLocal: true}}); err != nil {
		t.Fatal(err)
	}
	hub.Notify(app.Notification{Type: app.NoteCallEnded, Tenant: "acme", Time: t0})
	a := second.next(t, 5*time.Second)
	var n app.Notification
	if err := json.Unmarshal(a.body, &n); err != nil || n.Type != app.NoteCallEnded || !a.sigOK {
		t.Fatalf("second endpoint got %s (signature ok %v): %v", a.body, a.sigOK, err)
	}
	select {
	case a := <-first.got:
		t.Fatalf("removed endpoint still delivered to: %s", a.body)
	case <-time.After(200 * time.Millisecond):
	}
}
