package app

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// eventViewDirectory: acme with agent 744, agent 745 and supervisor 700 in one hunt group.
func eventViewDirectory(t *testing.T) *config.Directory {
	t.Helper()
	cfg, err := config.Decode(strings.NewReader(`
tenants:
  - id: acme
    supervision_enabled: true
    extensions:
      - {number: "700", endpoint: PJSIP/700, role: supervisor}
      - {number: "744", endpoint: PJSIP/744, role: agent}
      - {number: "745", endpoint: PJSIP/745, role: agent}
    hunt_groups:
      - name: support
        members: [{extension: "744"}, {extension: "745"}, {extension: "700", supervision_allowed: true}]
`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var viewT0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// note is a notification as package outbound publishes it.
func note(t *testing.T, typ, tenant string, data any) []byte {
	t.Helper()
	b, err := json.Marshal(Notification{Type: typ, Tenant: tenant, Time: viewT0, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// started, switched and ended are the supervision notifications the app publishes (actions.go).
func started(t *testing.T, id, agent, mode string) []byte {
	return note(t, NoteSupervisionStarted, "acme", map[string]string{
		"session_id": id, "supervisor": "700", "agent": agent, "call_id": "chan-" + agent, "mode": mode, "origin": "api"})
}

func switched(t *testing.T, id, agent, from, mode string) []byte {
	return note(t, NoteSupervisionMode, "acme", map[string]string{
		"session_id": id, "supervisor": "700", "agent": agent, "from": from, "mode": mode})
}

func ended(t *testing.T, id, agent, mode string) []byte {
	return note(t, NoteSupervisionEnded, "acme", ViewSession(store.Session{ID: id, Tenant: "acme", Agent: agent,
		Supervisor: "700", Mode: mode, State: store.StateEnded}, viewT0))
}

// TestEventViewAgentCoaching: an agent's stream shows agent.coaching exactly when what the
// agent hears changes, and nothing at all for a supervisor who only listens: joining in spy,
// ringing, another agent's sessions, another tenant's. Coaching that ends reads "none" whether
// the supervisor left or went back to spy.
func TestEventViewAgentCoaching(t *testing.T) {
	dir := eventViewDirectory(t)
	agent := Principal{Tenant: "acme", Role: config.RoleAgent, Extension: "744", KeyName: "john"}
	v := agent.NewEventView(nil)
	if _, ok := v.Initial(viewT0); ok {
		t.Fatal("a new stream with nobody talking sends something")
	}
	steps := []struct {
		name string
		typ  string
		data []byte
		want string // the coaching shown, "" for nothing
	}{
		{"ringing in whisper", NoteSupervisionRinging, note(t, NoteSupervisionRinging, "acme", ViewSession(store.Session{
			ID: "s1", Tenant: "acme", Agent: "744", Supervisor: "700", Mode: "whisper", State: store.StateRinging}, viewT0)), ""},
		{"spy joins", NoteSupervisionStarted, started(t, "s1", "744", "spy"), ""},
		{"another agent coached", NoteSupervisionStarted, started(t, "s9", "745", "whisper"), ""},
		{"another tenant's 744 coached", NoteSupervisionStarted, note(t, NoteSupervisionStarted, "globex",
			map[string]string{"session_id": "g1", "agent": "744", "mode": "whisper"}), ""},
		{"spy to whisper", NoteSupervisionMode, switched(t, "s1", "744", "spy", "whisper"), CoachingWhisper},
		{"a second supervisor listens", NoteSupervisionStarted, started(t, "s2", "744", "spy"), ""},
		{"whisper to barge", NoteSupervisionMode, switched(t, "s1", "744", "whisper", "barge"), CoachingBarge},
		{"barge to spy", NoteSupervisionMode, switched(t, "s1", "744", "barge", "spy"), CoachingNone},
		{"the listener leaves", NoteSupervisionEnded, ended(t, "s2", "744", "spy"), ""},
		{"spy to whisper again", NoteSupervisionMode, switched(t, "s1", "744", "spy", "whisper"), CoachingWhisper},
		{"the coach leaves", NoteSupervisionEnded, ended(t, "s1", "744", "whisper"), CoachingNone},
		{"call events", NoteCallStarted, note(t, NoteCallStarted, "acme", Call{ID: "chan-744", Agent: "744"}), ""},
		{"garbage", NoteSupervisionMode, []byte("not json"), ""},
	}
	for _, s := range steps {
		got, ok := v.Show(dir, s.typ, s.data)
		switch {
		case s.want == "" && ok:
			t.Errorf("%s: shown %s %s", s.name, got.Type, got.Data)
		case s.want != "" && !ok:
			t.Errorf("%s: nothing shown, want coaching %s", s.name, s.want)
		case ok:
			var n struct {
				Type   string
				Tenant string
				Data   AgentCoaching
			}
			if err := json.Unmarshal(got.Data, &n); err != nil || got.Type != NoteAgentCoaching || n.Type != NoteAgentCoaching ||
				n.Tenant != "acme" || n.Data.Agent != "744" || n.Data.Coaching != s.want {
				t.Errorf("%s: shown %s %s, want coaching %s", s.name, got.Type, got.Data, s.want)
			}
			if strings.Contains(string(got.Data), "700") || strings.Contains(string(got.Data), "session") {
				t.Errorf("%s: the coaching event says more than the state: %s", s.name, got.Data)
			}
		}
	}
}

// TestEventViewAgentStartsCoached: a stream that starts while a supervisor talks says so
// first; one that starts while a supervisor only listens says nothing.
func TestEventViewAgentStartsCoached(t *testing.T) {
	agent := Principal{Tenant: "acme", Role: config.RoleAgent, Extension: "744"}
	live := []store.Session{
		{ID: "a", Tenant: "acme", Agent: "744", Mode: "spy", State: store.StateActive},
		{ID: "b", Tenant: "acme", Agent: "744", Mode: "whisper", State: store.StateRinging},
		{ID: "c", Tenant: "acme", Agent: "745", Mode: "barge", State: store.StateActive},
		{ID: "d", Tenant: "globex", Agent: "744", Mode: "barge", State: store.StateActive},
	}
	if ev, ok := agent.NewEventView(live).Initial(viewT0); ok {
		t.Errorf("only listened to: initial %s", ev.Data)
	}
	live = append(live, store.Session{ID: "e", Tenant: "acme", Agent: "744", Mode: "whisper", State: store.StateActive})
	v := agent.NewEventView(live)
	ev, ok := v.Initial(viewT0)
	if !ok || !strings.Contains(string(ev.Data), `"coaching":"whisper"`) {
		t.Fatalf("coached: initial %v %s", ok, ev.Data)
	}
	// The coach goes back to spy: none.
	if ev, ok := v.Show(eventViewDirectory(t), NoteSupervisionMode, switched(t, "e", "744", "whisper", "spy")); !ok ||
		!strings.Contains(string(ev.Data), `"coaching":"none"`) {
		t.Errorf("back to spy: %v %s", ok, ev.Data)
	}
}

// TestEventViewOthers: supervisor and admin keys see what SeesEvent lets them see, unchanged;
// an agent's help events lose session_id and nothing else.
func TestEventViewOthers(t *testing.T) {
	dir := eventViewDirectory(t)
	sup := Principal{Tenant: "acme", Role: config.RoleSupervisor, Extension: "700"}
	admin := Principal{Tenant: "acme", Role: config.RoleAdmin}
	spy := started(t, "s1", "744", "spy")
	for _, p := range []Principal{sup, admin} {
		v := p.NewEventView(nil)
		if ev, ok := v.Show(dir, NoteSupervisionStarted, spy); !ok || string(ev.Data) != string(spy) || ev.Type != NoteSupervisionStarted {
			t.Errorf("%s: %v %s", p.Role, ok, ev.Data)
		}
		if _, ok := v.Initial(viewT0); ok {
			t.Errorf("%s: an initial event", p.Role)
		}
	}
	help := note(t, NoteHelpAccepted, "acme", store.HelpRequest{ID: "help-1", Tenant: "acme", Agent: "744",
		State: store.HelpInProgress, HelpProvidedBy: "700", SessionID: "s1", Reason: "refund"})
	agent := Principal{Tenant: "acme", Role: config.RoleAgent, Extension: "744"}
	ev, ok := agent.NewEventView(nil).Show(dir, NoteHelpAccepted, help)
	if !ok || ev.Type != NoteHelpAccepted {
		t.Fatalf("agent's own help event: %v", ok)
	}
	var got, want map[string]any
	_ = json.Unmarshal(ev.Data, &got)
	_ = json.Unmarshal(help, &want)
	delete(want["data"].(map[string]any), "session_id")
	if g, w := mustMarshal(t, got), mustMarshal(t, want); g != w {
		t.Errorf("agent's help event\n got %s\nwant %s", g, w)
	}
	if _, ok := agent.NewEventView(nil).Show(dir, NoteHelpAccepted, note(t, NoteHelpAccepted, "acme",
		store.HelpRequest{ID: "help-2", Tenant: "acme", Agent: "745"})); ok {
		t.Error("an agent sees another agent's help event")
	}
	if h := agent.HelpFor(store.HelpRequest{SessionID: "s1", HelpProvidedBy: "700"}); h.SessionID != "" || h.HelpProvidedBy != "700" {
		t.Errorf("HelpFor(agent) = %+v", h)
	}
	if h := sup.HelpFor(store.HelpRequest{SessionID: "s1"}); h.SessionID != "s1" {
		t.Errorf("HelpFor(supervisor) = %+v", h)
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
