package webhooks

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/store"
)

// httpServer serves the env's handler on a loopback port until the test ends. It is closed
// after the streams opened later (cleanups run last-in first-out), which Close waits for.
func (e *env) httpServer() *httptest.Server {
	ts := httptest.NewServer(e.srv.Handler())
	e.t.Cleanup(ts.Close)
	return ts
}

// sseMsg is one parsed Server-Sent Events message, or a comment line.
type sseMsg struct {
	id, event, data string
	retry           bool
	comment         string
}

// sseStream is a client connection to GET /v1/events.
type sseStream struct {
	status int
	msgs   chan sseMsg
	done   chan struct{} // closed when the stream ended (EOF or error)
}

// openStream connects to path (GET /v1/events...) with key; hdr is name, value pairs. For a
// 200 it waits for the retry hint, which the server writes once the stream's start position
// is fixed: events published after it are the stream's. The connection is closed when the
// test ends.
func openStream(t *testing.T, ts *httptest.Server, path, key string, hdr ...string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &sseStream{status: resp.StatusCode, msgs: make(chan sseMsg, 100), done: make(chan struct{})}
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-s.done
	})
	if resp.StatusCode != http.StatusOK {
		close(s.done)
		return s
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(resp.Body)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m != (sseMsg{}) {
					s.msgs <- m
				}
				m = sseMsg{}
			case strings.HasPrefix(line, ":"):
				s.msgs <- sseMsg{comment: strings.TrimSpace(line[1:])}
			case strings.HasPrefix(line, "retry: "):
				m.retry = true
			case strings.HasPrefix(line, "id: "):
				m.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				m.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				m.data += line[6:]
			}
		}
	}()
	if m := s.next(t, 5*time.Second, true); !m.retry {
		t.Fatalf("first message = %+v, want the retry hint", m)
	}
	return s
}

// next returns the next message; comments are skipped unless withComments.
func (s *sseStream) next(t *testing.T, d time.Duration, withComments bool) sseMsg {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-s.msgs:
			if m.comment != "" && !withComments {
				continue
			}
			return m
		case <-s.done:
			t.Fatal("stream ended")
		case <-deadline:
			t.Fatalf("no event within %v", d)
		}
	}
}

// nothing asserts that no event (comments aside) arrives within d.
func (s *sseStream) nothing(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-s.msgs:
			if m.comment == "" {
				t.Fatalf("unexpected event %+v", m)
			}
		case <-deadline:
			return
		}
	}
}

func TestEventStream(t *testing.T) {
	e := newEnv(t)
	ts := e.httpServer()

	s := openStream(t, ts, "/v1/events", keySup)
	types := []string{app.NoteSupervisionRinging, app.NoteSupervisionStarted, app.NoteSupervisionMode}
	for i, typ := range types {
		e.publish(app.Notification{Type: typ, Tenant: "acme", Time: t0, Data: map[string]any{"n": i}})
	}
	var ids []string
	for i, typ := range types {
		m := s.next(t, 5*time.Second, false)
		if m.event != typ || m.id == "" {
			t.Fatalf("event %d = %+v, want type %s with an id", i, m, typ)
		}
		var n app.Notification
		if err := json.Unmarshal([]byte(m.data), &n); err != nil || n.Type != typ || n.Tenant != "acme" {
			t.Errorf("event %d data %q: %+v, %v", i, m.data, n, err)
		}
		ids = append(ids, m.id)
	}

	// Reconnect after the first: the other two, then nothing.
	r := openStream(t, ts, "/v1/events", keySup, "Last-Event-ID", ids[0])
	for _, want := range ids[1:] {
		if m := r.next(t, 5*time.Second, false); m.id != want {
			t.Fatalf("resumed stream: got %+v, want id %s", m, want)
		}
	}
	r.nothing(t, 300*time.Millisecond)

	// The query parameter does the same, for EventSource's first connection.
	q := openStream(t, ts, "/v1/events?last_event_id="+ids[1], keyAdmin)
	if m := q.next(t, 5*time.Second, false); m.id != ids[2] {
		t.Fatalf("?last_event_id: got %+v, want %s", m, ids[2])
	}
	// "0": everything kept.
	all := openStream(t, ts, "/v1/events", keyAdmin, "Last-Event-ID", "0")
	for _, want := range ids {
		if m := all.next(t, 5*time.Second, false); m.id != want {
			t.Fatalf("from 0: got %+v, want %s", m, want)
		}
	}

	if bad := openStream(t, ts, "/v1/events", keySup, "Last-Event-ID", "yesterday"); bad.status != http.StatusUnprocessableEntity {
		t.Errorf("bad Last-Event-ID: %d", bad.status)
	}
	// Issue 12: 20 digits above 2^64-1 were taken, and the stream closed at once (a browser
	// reconnects in a loop): refused like any other malformed id, in JSON.
	for _, id := range []string{"99999999999999999999", "18446744073709551616-0", "1-18446744073709551616"} {
		rec := e.do(http.MethodGet, "/v1/events", keySup, "", "Last-Event-ID", id)
		if d := apiErr(t, rec); rec.Code != http.StatusUnprocessableEntity || d.Field != "Last-Event-ID" {
			t.Errorf("Last-Event-ID %s: %d %s", id, rec.Code, rec.Body)
		}
	}
	if rec := e.do(http.MethodGet, "/v1/events?last_event_id=99999999999999999999", keySup, ""); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("?last_event_id above 2^64: %d %s", rec.Code, rec.Body)
	}
}

func TestEventStreamTenantIsolation(t *testing.T) {
	e := newEnv(t)
	ts := e.httpServer()
	g := openStream(t, ts, "/v1/events", keyGlobexSup)
	a := openStream(t, ts, "/v1/events", keyAdmin)
	ctx := t.Context()
	if _, err := e.st.PublishEvent(ctx, "acme", "call.started", []byte(`{"tenant":"acme"}`)); err != nil {
		t.Fatal(err)
	}
	gid, err := e.st.PublishEvent(ctx, "globex", "call.started", []byte(`{"tenant":"globex"}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := g.next(t, 5*time.Second, false); m.id != gid || !strings.Contains(m.data, "globex") {
		t.Errorf("globex stream got %+v first, want its own event %s", m, gid)
	}
	if m := a.next(t, 5*time.Second, false); !strings.Contains(m.data, `"acme"`) {
		t.Errorf("acme stream got %+v", m)
	}
	a.nothing(t, 200*time.Millisecond)
	// Even naming another tenant's event id only reads one's own stream.
	x := openStream(t, ts, "/v1/events", keySup, "Last-Event-ID", "0")
	if m := x.next(t, 5*time.Second, false); !strings.Contains(m.data, `"acme"`) {
		t.Errorf("acme from 0 got %+v", m)
	}
	x.nothing(t, 200*time.Millisecond)
}

func TestEventStreamHeartbeatAndShutdown(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HeartbeatInterval = 50 * time.Millisecond })
	ts := e.httpServer()
	s := openStream(t, ts, "/v1/events", keySup)
	for range 3 {
		if m := s.next(t, 2*time.Second, true); m.comment != "heartbeat" {
			t.Fatalf("got %+v, want a heartbeat", m)
		}
	}
	// Shutdown ends the stream.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open after Shutdown")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stream took %v to end", d)
	}
}

func TestEventStreamLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxStreams = 1 })
	ts := e.httpServer()
	openStream(t, ts, "/v1/events", keySup)
	if s := openStream(t, ts, "/v1/events", keySup); s.status != http.StatusServiceUnavailable {
		t.Errorf("second stream with MaxStreams 1: %d", s.status)
	}
}

func TestWriteEventSplitsLines(t *testing.T) {
	var b strings.Builder
	writeEvent(&b, store.Event{ID: "1-0", Type: "x", Data: []byte("a\nb")})
	if got, want := b.String(), "id: 1-0\nevent: x\ndata: a\ndata: b\n\n"; got != want {
		t.Errorf("writeEvent = %q, want %q", got, want)
	}
}

// TestEventStreamOutlivesWriteTimeout: the server's WriteTimeout bounds ordinary answers, but
// a stream moves its write deadline forward with each write.
func TestEventStreamOutlivesWriteTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.HeartbeatInterval = 50 * time.Millisecond
		c.WriteTimeout = 300 * time.Millisecond
	})
	ts := httptest.NewUnstartedServer(e.srv.Handler())
	ts.Config.WriteTimeout = 300 * time.Millisecond
	ts.Start()
	e.t.Cleanup(ts.Close)
	s := openStream(t, ts, "/v1/events", keySup)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		s.next(t, time.Second, true)
	}
	id, err := e.st.PublishEvent(t.Context(), "acme", "call.started", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := s.next(t, 2*time.Second, false); m.id != id {
		t.Errorf("after 1 s (WriteTimeout 300 ms): got %+v, want %s", m, id)
	}
}
