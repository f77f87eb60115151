package webhooks

import (
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/store"
)

// TestAgentStreamHidesSpy: what an agent key's event stream carries while its calls are
// supervised. A supervisor who joins in spy, or goes back to it, sends the agent nothing: no
// event, no timing. Talking (whisper, barge) is agent.coaching, its end "none"; the agent's
// help events come without the session an accept started. The supervisor's stream, published
// to the same tenant, gets every event meanwhile.
func TestAgentStreamHidesSpy(t *testing.T) {
	e := newEnv(t)
	ts := e.httpServer()
	agent := openStream(t, ts, "/v1/events", keyAgent) // acme agent 100
	sup := openStream(t, ts, "/v1/events", keySup)
	sv := func(typ string, data map[string]string) app.Notification {
		return app.Notification{Type: typ, Tenant: "acme", Time: t0, Data: data}
	}
	spy := e.publish(sv(app.NoteSupervisionStarted, map[string]string{"session_id": "s1", "agent": "100", "supervisor": "200", "mode": "spy"}))
	if m := sup.next(t, 5*time.Second, false); m.id != spy {
		t.Fatalf("supervisor got %+v", m)
	}
	agent.nothing(t, 300*time.Millisecond)

	coach := e.publish(sv(app.NoteSupervisionMode, map[string]string{"session_id": "s1", "agent": "100", "from": "spy", "mode": "whisper"}))
	m := agent.next(t, 5*time.Second, false)
	if m.id != coach || m.event != app.NoteAgentCoaching || !strings.Contains(m.data, `"coaching":"whisper"`) {
		t.Fatalf("agent got %+v, want agent.coaching whisper", m)
	}
	back := e.publish(sv(app.NoteSupervisionMode, map[string]string{"session_id": "s1", "agent": "100", "from": "whisper", "mode": "spy"}))
	if m := agent.next(t, 5*time.Second, false); m.id != back || !strings.Contains(m.data, `"coaching":"none"`) {
		t.Fatalf("agent got %+v, want coaching none", m)
	}
	e.publish(app.Notification{Type: app.NoteSupervisionEnded, Tenant: "acme", Time: t0,
		Data: app.ViewSession(store.Session{ID: "s1", Tenant: "acme", Agent: "100", Supervisor: "200", Mode: "spy", State: store.StateEnded}, t0)})
	help := e.publish(app.Notification{Type: app.NoteHelpAccepted, Tenant: "acme", Time: t0,
		Data: store.HelpRequest{ID: "help-1", Tenant: "acme", Agent: "100", State: store.HelpInProgress, HelpProvidedBy: "200", SessionID: "s2"}})
	m = agent.next(t, 5*time.Second, false)
	if m.id != help || m.event != app.NoteHelpAccepted || strings.Contains(m.data, "session_id") || !strings.Contains(m.data, `"help_provided_by":"200"`) {
		t.Fatalf("agent got %+v, want its help event without session_id", m)
	}
	agent.nothing(t, 200*time.Millisecond)
	for range 4 { // 2 mode changes, ended, help (the start was read above)
		if m := sup.next(t, 5*time.Second, false); m.event == app.NoteAgentCoaching {
			t.Errorf("the supervisor got %+v", m)
		}
	}
}
