package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
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
// the tenant's Redis stream, so events of every app instance). Each message is
//
//	id: <stream id>
//	event: <notification type>
//	data: <notification JSON>
//
// A client that reconnects with Last-Event-ID (or ?last_event_id= for the first connection
// of an EventSource, which cannot set headers) gets the events after that id first; without
// it, only events published after it connected. An idle stream gets a ": heartbeat" comment
// every HeartbeatInterval. The stream ends when the client leaves, at Shutdown, or when Redis
// fails (the client reconnects and resumes).
func (s *Server) events(c *echo.Context) error {
	p := principal(c)
	req := c.Request()
	ctx := req.Context()
	last := req.Header.Get("Last-Event-ID")
	field := "Last-Event-ID"
	if last == "" {
		last, field = c.QueryParam("last_event_id"), "last_event_id"
	}
	if last != "" && !store.ValidEventID(last) {
		return fieldError(field, "want a stream id such as 1712345678901-0")
	}
	if n := s.streams.Add(1); n > int64(s.cfg.MaxStreams) {
		s.streams.Add(-1)
		return newError(http.StatusServiceUnavailable, codeTooManyStreams, "too many event streams on this instance; retry later")
	}
	defer s.streams.Add(-1)
	if last == "" {
		id, err := s.cfg.Store.LastEventID(ctx, p.Tenant)
		if err != nil {
			return unavailable("opening the event stream", err)
		}
		last = id
	}

	w := c.Response()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) error {
		// The server's WriteTimeout would cut a long stream; move the deadline per write.
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := write(fmt.Appendf(nil, "retry: %d\n\n", retryMillis)); err != nil {
		return nil // client gone
	}

	log := s.requestLog(c).With().Str("tenant", p.Tenant).Str("key_name", p.KeyName).Logger()
	hb := s.cfg.HeartbeatInterval
	nextBeat := time.Now().Add(hb)
	var buf bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		default:
		}
		if time.Until(nextBeat) <= 0 {
			if err := write([]byte(": heartbeat\n\n")); err != nil {
				return nil
			}
			nextBeat = time.Now().Add(hb)
		}
		block := min(time.Until(nextBeat), maxBlock)
		rctx, cancel := context.WithTimeout(ctx, block+2*time.Second)
		evs, err := s.cfg.Store.ReadEvents(rctx, p.Tenant, last, block, eventBatch)
		cancel()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				log.Warn().Err(err).Msg("event stream: reading events; closing the stream")
			}
			return nil
		}
		if len(evs) == 0 {
			continue
		}
		buf.Reset()
		for _, ev := range evs {
			writeEvent(&buf, ev)
			last = ev.ID
		}
		if err := write(buf.Bytes()); err != nil {
			return nil
		}
		nextBeat = time.Now().Add(hb)
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
