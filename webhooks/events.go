package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/store"
)

// Event stream tuning.
const (
	// maxBlock bounds one wait for new events in Redis (XREAD BLOCK): a stream notices a
	// client that left, or Shutdown, within about this long. go-redis does not abort a
	// blocked read when its ctx is cancelled, only at a deadline.
	maxBlock = time.Second
	// eventBatch is how many events one read returns at most.
	eventBatch = 100
	// retryMillis is the reconnection delay suggested to EventSource clients.
	retryMillis = 2000
)

// GET /v1/events: Server-Sent Events of the principal's tenant (outbound.Hub's notifications, from
// the tenant's Redis stream, so events of every app instance), those the principal may act on
// (app.Principal.SeesEvent: help events only of the agents it may supervise, or its own). Each
// message is
//
//	id: <stream id>
//	event: <notification type>
//	data: <notification JSON>
//
// A client that reconnects with Last-Event-ID (or ?last_event_id= for the first connection
// of an EventSource, which cannot set headers) gets the events after that id first; without
// it, only events published after it connected. An idle stream gets a ": heartbeat" comment
// every HeartbeatInterval.
//
// A stream is bounded: per instance, per tenant and per key (MaxStreams, MaxStreamsPerTenant,
// MaxStreamsPerKey), in time (MaxStreamLifetime), and in what it may leave unread
// (StreamWriteTimeout, StreamSendBuffer). It ends when the client leaves, at Shutdown, when
// Redis fails, at its lifetime (the client reconnects and resumes), when a write cannot
// complete (a client that does not read), or when its key is revoked (the reconnection gets
// 401). How each ended, and each refusal, is counted in metrics.
func (s *Server) events(c *echo.Context) error {
	p := principal(c)
	auth := authOf(c)
	sess := webSessionOf(c)                  // a dashboard session (session.go), or nil
	checked := auth.fromStore || sess != nil // what authenticated the stream can end under it
	req := c.Request()
	last := req.Header.Get("Last-Event-ID")
	field := "Last-Event-ID"
	if last == "" {
		last, field = c.QueryParam("last_event_id"), "last_event_id"
	}
	if last != "" && !store.ValidEventID(last) {
		return fieldError(field, "want a stream id such as 1712345678901-0 (two numbers below 2^64)")
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	defer cancel(nil)
	st := &liveStream{key: keyID(p), tenant: p.Tenant, cancel: cancel}
	if refused := s.streams.open(st, s.cfg); refused != "" {
		s.met.streamsRefused.WithLabelValues(refused).Inc()
		e := newError(http.StatusTooManyRequests, codeTooManyStreams, "too many event streams for this %s; close one or retry later", refused)
		if refused == capInstance {
			e = newError(http.StatusServiceUnavailable, codeTooManyStreams, "too many event streams on this instance; retry later")
		}
		e.retryAfter = 10 * time.Second
		return e
	}
	s.met.streamsOpen.Inc()
	defer func() {
		s.streams.close(st)
		s.met.streamsOpen.Dec()
	}()
	if last == "" {
		id, err := s.cfg.Store.LastEventID(ctx, p.Tenant)
		if err != nil {
			return unavailable("opening the event stream", err)
		}
		last = id
	}
	view, err := s.eventView(ctx, p) // dashboard_events.go: what this principal is shown
	if err != nil {
		return err
	}

	w := c.Response()
	rc := http.NewResponseController(w)
	if conn, ok := req.Context().Value(connKey{}).(*net.TCPConn); ok {
		// A small send buffer makes a client that stops reading block a write soon, and be
		// dropped at StreamWriteTimeout, instead of parking megabytes in the kernel.
		_ = conn.SetWriteBuffer(s.cfg.StreamSendBuffer)
	}
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) error {
		// The server's WriteTimeout would cut a long stream; move the deadline per write.
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	log := s.requestLog(c).With().Str("tenant", p.Tenant).Str("key_name", p.KeyName).Logger()
	reason := closedClient
	defer func() { s.met.streamsClosed.WithLabelValues(reason).Inc() }()
	wrote := func(err error) bool {
		if err == nil {
			return true
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			reason = closedSlowReader
			log.Debug().Msg("event stream: the client does not read; closed")
		}
		return false
	}
	if !wrote(write(fmt.Appendf(nil, "retry: %d\n\n", retryMillis))) {
		return nil
	}
	if ev, ok := view.Initial(s.now()); ok && !wrote(write(shownEvent("", ev))) {
		return nil
	}

	hb := s.cfg.HeartbeatInterval
	nextBeat := time.Now().Add(hb)
	end := time.Now().Add(s.cfg.MaxStreamLifetime)
	nextKeyCheck := time.Now().Add(s.cfg.KeyCheckInterval)
	var buf bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errKeyRevoked) {
				reason = closedRevoked
				_ = write([]byte(": closed: the API key was revoked\n\n"))
			} else if errors.Is(context.Cause(ctx), errStreamSessionEnded) {
				reason = closedRevoked
				_ = write([]byte(": closed: the dashboard session ended\n\n"))
			}
			return nil
		case <-s.closing:
			reason = closedShutdown
			return nil
		default:
		}
		now := time.Now()
		if !now.Before(end) {
			reason = closedLifetime
			_ = write([]byte(": closed: maximum stream lifetime; reconnect with Last-Event-ID\n\n"))
			return nil
		}
		if checked && !now.Before(nextKeyCheck) {
			nextKeyCheck = now.Add(s.cfg.KeyCheckInterval)
			// A key revoked through another instance (its record is gone from Redis), or a
			// dashboard session that ended (session.go).
			if err := s.streamAuthValid(ctx, p, auth, sess); err != nil {
				cancel(err)
				continue
			}
		}
		if !now.Before(nextBeat) {
			if !wrote(write([]byte(": heartbeat\n\n"))) {
				return nil
			}
			nextBeat = time.Now().Add(hb)
		}
		block := min(time.Until(nextBeat), time.Until(end), maxBlock)
		if checked {
			block = min(block, time.Until(nextKeyCheck))
		}
		block = max(block, time.Millisecond)
		rctx, rcancel := context.WithTimeout(ctx, block+2*time.Second)
		evs, err := s.cfg.Store.ReadEvents(rctx, p.Tenant, last, block, eventBatch)
		rcancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				continue // the client left, or the key was revoked: the select above says which
			}
			reason = closedRedis
			log.Warn().Err(err).Msg("event stream: reading events; closing the stream")
			return nil
		}
		if len(evs) == 0 {
			continue
		}
		buf.Reset()
		for _, ev := range evs {
			// Each principal gets only the events it may act on, as it may see them (app's
			// rules: eventauthz.go, eventview.go).
			if shown, ok := view.Show(s.cfg.Directory.Current(), ev.Type, ev.Data); ok {
				writeEvent(&buf, store.Event{ID: ev.ID, Type: shown.Type, Data: shown.Data})
			}
			last = ev.ID
		}
		if buf.Len() == 0 {
			continue
		}
		if !wrote(write(buf.Bytes())) {
			return nil
		}
		nextBeat = time.Now().Add(hb)
	}
}

// errKeyRevoked is the cause of a stream cut because its key was revoked.
var errKeyRevoked = errors.New("api key revoked")

// liveStream is one open event stream, as the streamSet knows it.
type liveStream struct {
	key, tenant string // keyID and tenant of its principal
	cancel      context.CancelCauseFunc
}

// streamSet counts the open streams per instance, tenant and key, and cuts a key's streams
// when the key is revoked here.
type streamSet struct {
	mu       sync.Mutex
	total    int
	byTenant map[string]int
	byKey    map[string]map[*liveStream]struct{}
}

func newStreamSet() *streamSet {
	return &streamSet{byTenant: map[string]int{}, byKey: map[string]map[*liveStream]struct{}{}}
}

// open adds st unless a cap is reached; it returns the cap reached (capKey, capTenant,
// capInstance), or "".
func (ss *streamSet) open(st *liveStream, cfg Config) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch {
	case len(ss.byKey[st.key]) >= cfg.MaxStreamsPerKey:
		return capKey
	case ss.byTenant[st.tenant] >= cfg.MaxStreamsPerTenant:
		return capTenant
	case ss.total >= cfg.MaxStreams:
		return capInstance
	}
	ss.total++
	ss.byTenant[st.tenant]++
	if ss.byKey[st.key] == nil {
		ss.byKey[st.key] = map[*liveStream]struct{}{}
	}
	ss.byKey[st.key][st] = struct{}{}
	return ""
}

func (ss *streamSet) close(st *liveStream) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, ok := ss.byKey[st.key][st]; !ok {
		return
	}
	delete(ss.byKey[st.key], st)
	if len(ss.byKey[st.key]) == 0 {
		delete(ss.byKey, st.key)
	}
	ss.total--
	if ss.byTenant[st.tenant]--; ss.byTenant[st.tenant] == 0 {
		delete(ss.byTenant, st.tenant)
	}
}

// revoke cuts the streams of key (a keyID).
func (ss *streamSet) revoke(key string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for st := range ss.byKey[key] {
		st.cancel(errKeyRevoked)
	}
}

// writeEvent formats one SSE message. Data lines are split on newlines, as the format
// requires (outbound.Hub publishes compact JSON, which has none).
func writeEvent(w io.Writer, ev store.Event) {
	fmt.Fprintf(w, "id: %s\nevent: %s\n", ev.ID, ev.Type)
	for line := range bytes.SplitSeq(ev.Data, []byte("\n")) {
		fmt.Fprintf(w, "data: %s\n", bytes.TrimSuffix(line, []byte("\r")))
	}
	io.WriteString(w, "\n")
}
