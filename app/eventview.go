package app

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// What one live-event stream (GET /v1/events) shows its principal. SeesEvent (eventauthz.go)
// chooses the events; an agent key's stream also gets two changes of its own, because an agent
// must learn when a supervisor talks to it and must never learn that one only listens:
//
//   - no call or supervision event reaches an agent. Instead its stream gets agent.coaching
//     whenever what it can hear changes: a supervisor starts or stops talking in its calls, to it
//     alone (whisper) or to both parties (barge). The stream works it out from the supervision
//     events of the agent's extension, which it reads and never shows: a spy session changes
//     nothing the agent hears, so it changes nothing the stream sends, neither an event nor the
//     moment of one. Coaching that ends reads "none", whether the supervisor left or went back to
//     listening: the two sound the same to the agent, and read the same.
//   - its own help events come without session_id: a request accepted with a mode starts a
//     supervision, and a silent one must not show through the request. HelpFor does the same
//     for the requests the API answers an agent.
//
// Outbound webhooks are the tenant's CRM and get every notification as it is.

// NoteAgentCoaching is the event an agent key's stream gets when a supervisor starts or stops
// talking to it. Its data is a Notification whose data is an AgentCoaching.
const NoteAgentCoaching = "agent.coaching"

// What an agent hears of supervision (AgentCoaching.Coaching).
const (
	CoachingNone    = "none"    // no supervisor talks (none present, or they only listen)
	CoachingWhisper = "whisper" // a supervisor talks to the agent alone
	CoachingBarge   = "barge"   // a supervisor talks to agent and customer
)

// AgentCoaching is the data of an agent.coaching event.
type AgentCoaching struct {
	Agent    string `json:"agent"`
	Coaching string `json:"coaching"`
}

// ShownEvent is an event as a stream shows it: its type and its data.
type ShownEvent struct {
	Type string
	Data []byte
}

// EventView is one stream's view of the tenant's events (see above). It is not safe for
// concurrent use: a stream owns its view.
type EventView struct {
	p Principal
	// For an agent key: the supervisions of its extension in which a supervisor talks
	// (session id → whisper or barge), and the coaching state the stream last showed.
	talking map[string]string
	shown   string
}

// NewEventView returns p's view, knowing live: the tenant's sessions in progress as the stream
// starts (only an agent key's view uses them; nil is fine for the others).
func (p Principal) NewEventView(live []store.Session) *EventView {
	v := &EventView{p: p, shown: CoachingNone}
	if p.Role != config.RoleAgent {
		return v
	}
	v.talking = map[string]string{}
	for _, s := range live {
		if s.Tenant == p.Tenant && s.Agent == p.Extension && s.State == store.StateActive && audible(s.Mode) {
			v.talking[s.ID] = s.Mode
		}
	}
	return v
}

// EventView is p's view of its tenant's events, from the sessions in progress now.
func (a *App) EventView(ctx context.Context, p Principal) (*EventView, error) {
	if p.Role != config.RoleAgent {
		return p.NewEventView(nil), nil
	}
	live, err := a.store.ListSessions(ctx, p.Tenant)
	if err != nil {
		return nil, storeFailure(err)
	}
	return p.NewEventView(live), nil
}

// Initial is the event a stream sends first, before any of the tenant's: for an agent key
// being coached as the stream starts, agent.coaching saying so (nothing when nobody talks,
// which is what a client assumes of a new stream).
func (v *EventView) Initial(now time.Time) (ShownEvent, bool) {
	if v.talking == nil {
		return ShownEvent{}, false
	}
	v.shown = v.coaching()
	if v.shown == CoachingNone {
		return ShownEvent{}, false
	}
	return v.coachingEvent(now), true
}

// Show returns what the stream shows of the tenant's event of type typ whose data is a
// Notification as JSON, if anything.
func (v *EventView) Show(dir *config.Directory, typ string, data []byte) (ShownEvent, bool) {
	if v.talking == nil {
		if !v.p.SeesEvent(dir, typ, data) {
			return ShownEvent{}, false
		}
		return ShownEvent{Type: typ, Data: data}, true
	}
	if strings.HasPrefix(typ, helpNotePrefix) {
		if !v.p.SeesEvent(dir, typ, data) {
			return ShownEvent{}, false
		}
		return ShownEvent{Type: typ, Data: withoutSessionID(data)}, true
	}
	if !v.observe(typ, data) {
		return ShownEvent{}, false
	}
	var n struct {
		Time time.Time `json:"time"`
	}
	_ = json.Unmarshal(data, &n) // observe decoded it already
	return v.coachingEvent(n.Time), true
}

// observe follows a supervision event of the agent's extension and reports whether the
// coaching state changed.
func (v *EventView) observe(typ string, data []byte) bool {
	var n struct {
		Tenant string `json:"tenant"`
		Data   struct {
			SessionID string `json:"session_id"` // supervision.started, supervision.mode_changed
			ID        string `json:"id"`         // supervision.ended (a SessionView)
			Agent     string `json:"agent"`
			Mode      string `json:"mode"`
		} `json:"data"`
	}
	if json.Unmarshal(data, &n) != nil || n.Tenant != v.p.Tenant || n.Data.Agent != v.p.Extension {
		return false
	}
	id := n.Data.SessionID
	if id == "" {
		id = n.Data.ID
	}
	if id == "" {
		return false
	}
	switch typ {
	case NoteSupervisionStarted, NoteSupervisionMode:
		if audible(n.Data.Mode) {
			v.talking[id] = n.Data.Mode
		} else {
			delete(v.talking, id)
		}
	case NoteSupervisionEnded:
		delete(v.talking, id)
	default: // supervision.ringing: the supervisor's phone rings; the agent hears nothing yet
		return false
	}
	now := v.coaching()
	if now == v.shown {
		return false
	}
	v.shown = now
	return true
}

// coaching is the state the talking sessions make: barge outranks whisper.
func (v *EventView) coaching() string {
	state := CoachingNone
	for _, m := range v.talking {
		switch {
		case m == CoachingBarge:
			return CoachingBarge
		case m == CoachingWhisper:
			state = CoachingWhisper
		}
	}
	return state
}

func (v *EventView) coachingEvent(at time.Time) ShownEvent {
	data, _ := json.Marshal(Notification{Type: NoteAgentCoaching, Tenant: v.p.Tenant, Time: at.UTC(),
		Data: AgentCoaching{Agent: v.p.Extension, Coaching: v.shown}}) // plain data: always encodes
	return ShownEvent{Type: NoteAgentCoaching, Data: data}
}

// audible reports whether the agent hears a supervisor in mode.
func audible(mode string) bool { return mode == CoachingWhisper || mode == CoachingBarge }

// withoutSessionID is a help notification's JSON without data.session_id (unchanged when it has
// none, or is not the JSON of a notification).
func withoutSessionID(data []byte) []byte {
	var n map[string]json.RawMessage
	if json.Unmarshal(data, &n) != nil {
		return data
	}
	var d map[string]json.RawMessage
	if json.Unmarshal(n["data"], &d) != nil {
		return data
	}
	if _, ok := d["session_id"]; !ok {
		return data
	}
	delete(d, "session_id")
	raw, err := json.Marshal(d)
	if err != nil {
		return data
	}
	n["data"] = raw
	out, err := json.Marshal(n)
	if err != nil {
		return data
	}
	return out
}

// HelpFor is h as p may see it: an agent key sees its requests without the supervision an
// accept started (see above).
func (p Principal) HelpFor(h store.HelpRequest) store.HelpRequest {
	if p.Role == config.RoleAgent {
		h.SessionID = ""
	}
	return h
}
