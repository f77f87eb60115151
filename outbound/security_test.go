package outbound

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/store"
)

// lockedBuffer is a log destination for the hub's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLocalTargetsRefusedAtConnection: a webhook whose name passed validation but resolves to a
// local address when the hub connects (DNS rebinding, or a name such as localhost) is refused at
// the connection, and recorded as failed; with allow_local it is delivered.
func TestLocalTargetsRefusedAtConnection(t *testing.T) {
	rcv := newReceiver(t, "s", func(int) int { return http.StatusNoContent })
	u, err := url.Parse(rcv.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	viaName := "http://localhost:" + u.Port() + "/hook"
	for _, allow := range []bool{false, true} {
		e := newEnv(t, func(c *Config) {
			c.RetrySchedule = []time.Duration{}
			// A public name passes validation; it "resolves" to loopback later.
			c.Endpoints = []Endpoint{{Tenant: "acme", URL: "https://crm.example.com/hook", Secret: "s", AllowLocal: allow}}
		})
		hub, err := New(e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		hub.byTen["acme"][0].ep.URL = viaName
		run(t, hub)
		hub.Notify(app.Notification{Type: app.NoteCallStarted, Tenant: "acme"})
		var got []store.Delivery
		waitFor(t, 5*time.Second, "a final delivery record", func() bool {
			got, _ = e.st.Deliveries(t.Context(), "acme", 0)
			return len(got) == 1 && (got[0].Status == store.DeliveryFailed || got[0].Status == store.DeliveryDelivered)
		})
		if allow {
			if got[0].Status != store.DeliveryDelivered {
				t.Errorf("allow_local: %+v", got[0])
			}
			rcv.next(t, time.Second)
			continue
		}
		if got[0].Status != store.DeliveryFailed || !strings.Contains(got[0].LastError, "allow_local permits it") {
			t.Errorf("a local target at connection time: %+v, want failed, refused", got[0])
		}
		select {
		case a := <-rcv.got:
			t.Errorf("the local receiver got %+v", a)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestWebhookURLPasswordNotShown: a webhook URL's password appears neither in the delivery
// records (GET /v1/webhook-deliveries) nor in the log.
func TestWebhookURLPasswordNotShown(t *testing.T) {
	const pw = "hunter2-of-the-crm"
	rcv := newReceiver(t, "s", func(int) int { return http.StatusBadGateway })
	var logs lockedBuffer
	hook := strings.Replace(rcv.srv.URL, "http://", "http://crm:"+pw+"@", 1) + "/hook"
	e := newEnv(t, fast, func(c *Config) {
		c.Logger = zerolog.New(&logs)
		c.Endpoints = []Endpoint{{Tenant: "acme", URL: hook, Secret: "s", AllowLocal: true}}
	})
	e.runHub().Notify(app.Notification{Type: app.NoteCallStarted, Tenant: "acme"})
	var got []store.Delivery
	waitFor(t, 5*time.Second, "a failed record", func() bool {
		got, _ = e.st.Deliveries(t.Context(), "acme", 0)
		return len(got) == 1 && got[0].Status == store.DeliveryFailed
	})
	if strings.Contains(got[0].URL, pw) || strings.Contains(got[0].LastError, pw) || !strings.Contains(got[0].URL, "crm:xxxxx@") {
		t.Errorf("delivery record %+v", got[0])
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("the log shows the password:\n%s", logs.String())
	}
	// Nor does a refused configuration.
	cfg := e.cfg
	cfg.Endpoints = []Endpoint{{Tenant: "acme", URL: "http://crm:" + pw + "@127.0.0.1/hook", Secret: "s"}}
	if _, err := New(cfg); err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("New = %v", err)
	}
}

func TestRefuseLocal(t *testing.T) {
	for addr, refused := range map[string]bool{
		"127.0.0.1:80": true, "[::1]:443": true, "169.254.169.254:80": true, "[fe80::1]:80": true,
		"0.0.0.0:80": true, "[::ffff:127.0.0.1]:80": true, "10.0.0.5:443": false, "203.0.113.9:443": false,
		"not-an-address": true,
	} {
		if err := refuseLocal("tcp", addr, nil); (err != nil) != refused {
			t.Errorf("refuseLocal(%s) = %v, want refused %v", addr, err, refused)
		}
	}
}

// run runs hub until the test ends.
func run(t *testing.T, hub *Hub) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hub.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Hub.Run did not return after cancel")
		}
	})
}
