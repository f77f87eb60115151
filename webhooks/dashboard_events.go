package webhooks

import (
	"bytes"
	"context"
	"fmt"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/store"
)

// eventViewer is implemented by *app.App: a stream's view of its tenant's events, which for an
// agent key turns the supervision events of its extension into agent.coaching, and never shows
// a supervisor who only listens (app/eventview.go).
type eventViewer interface {
	EventView(ctx context.Context, p app.Principal) (*app.EventView, error)
}

var _ eventViewer = (*app.App)(nil)

// eventView is p's view of the tenant's events: the app's, or (a Service without views) one that
// knows no session in progress.
func (s *Server) eventView(ctx context.Context, p app.Principal) (*app.EventView, error) {
	if ev, ok := s.cfg.Service.(eventViewer); ok {
		return ev.EventView(ctx, p)
	}
	return p.NewEventView(nil), nil
}

// shownEvent formats one SSE message as writeEvent does; with an empty id it has no id field,
// so the client's Last-Event-ID stays the last real event's (an "id:" line with no value would
// reset it).
func shownEvent(id string, ev app.ShownEvent) []byte {
	var buf bytes.Buffer
	if id != "" {
		writeEvent(&buf, store.Event{ID: id, Type: ev.Type, Data: ev.Data})
		return buf.Bytes()
	}
	fmt.Fprintf(&buf, "event: %s\n", ev.Type)
	for line := range bytes.SplitSeq(ev.Data, []byte("\n")) {
		fmt.Fprintf(&buf, "data: %s\n", bytes.TrimSuffix(line, []byte("\r")))
	}
	buf.WriteString("\n")
	return buf.Bytes()
}
