package ari

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Event is one item of the event stream: an Asterisk event (a Message
// subtype in events.json, decoded into its typed struct, or *UnknownEvent)
// or a *ConnectionEvent the client synthesises.
type Event interface {
	Base() *EventBase
}

// EventBase holds the fields every ARI event has (Message and Event in
// events.json). MissingParams, a Message but not an Event, has no
// application or timestamp.
type EventBase struct {
	Type        string `json:"type"`
	Application string `json:"application,omitempty"`
	AsteriskID  string `json:"asterisk_id,omitempty"`
	Timestamp   Time   `json:"timestamp,omitzero"`
}

// Base returns b; embedding EventBase makes a struct an Event.
func (b *EventBase) Base() *EventBase { return b }

// UnknownEvent is an event whose type this package does not know (one added
// to Asterisk after events_gen.go was generated). It is delivered, not
// dropped; Raw holds the whole message.
type UnknownEvent struct {
	EventBase
	Raw json.RawMessage `json:"-"`
}

// MarshalJSON writes the message as received.
func (u *UnknownEvent) MarshalJSON() ([]byte, error) {
	if len(u.Raw) == 0 {
		return json.Marshal(u.EventBase)
	}
	return u.Raw, nil
}

// ConnectionEventType is EventBase.Type of a *ConnectionEvent. No Asterisk
// event has this name.
const ConnectionEventType = "ariConnection"

// ConnState is the state of the events WebSocket as seen by the app.
type ConnState int

// Connection states delivered as *ConnectionEvent in the event stream.
const (
	// Connected: the WebSocket for Config.App is up. Events missed while it
	// was down are lost for good (Asterisk does not replay them), so after a
	// reconnect the app resynchronises from ARI and its own store.
	Connected ConnState = iota + 1
	// Disconnected: the WebSocket is down (Err says why); the client is
	// reconnecting with backoff.
	Disconnected
	// Replaced: another WebSocket took over Config.App (ApplicationReplaced,
	// delivered just before). The client closed its socket and waits
	// Config.ReplacedBackoff before connecting again.
	Replaced
	// Desynced: events were lost on this side (the app did not keep up with
	// the queue, or a message could not be decoded). The app's view may be
	// stale: resynchronise. Err says how many and why.
	Desynced
)

// String returns the state's name.
func (s ConnState) String() string {
	switch s {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Replaced:
		return "replaced"
	case Desynced:
		return "desynced"
	}
	return fmt.Sprintf("ConnState(%d)", int(s))
}

// ConnectionEvent reports a change of the event connection. It is delivered
// in order with Asterisk's events: everything after a Connected came over the
// new socket.
type ConnectionEvent struct {
	EventBase
	State ConnState `json:"state"`
	Err   error     `json:"-"`
}

// ErrEventsLost is wrapped by the Err of a Desynced ConnectionEvent.
var ErrEventsLost = errors.New("ari: events lost")

// DecodeEvent decodes one message of the events WebSocket by its "type".
// Types this package does not know become *UnknownEvent. Anything that is not
// a JSON object with a string "type", or whose fields do not match the type's
// model in events.json, is an error.
func DecodeEvent(data []byte) (Event, error) {
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("ari: decoding event: %w", err)
	}
	if head.Type == nil || *head.Type == "" {
		return nil, errors.New("ari: decoding event: no type")
	}
	newEvent, ok := eventTypes[*head.Type]
	if !ok {
		u := &UnknownEvent{Raw: json.RawMessage(slices.Clone(data))}
		if err := json.Unmarshal(data, &u.EventBase); err != nil {
			return nil, fmt.Errorf("ari: decoding event %.64q: %w", *head.Type, err)
		}
		return u, nil
	}
	ev := newEvent()
	if err := json.Unmarshal(data, ev); err != nil {
		return nil, fmt.Errorf("ari: decoding event %s: %w", *head.Type, err)
	}
	return ev, nil
}

// EventTypes lists the event types DecodeEvent decodes into typed structs,
// sorted.
func EventTypes() []string {
	names := make([]string, 0, len(eventTypes))
	for name := range eventTypes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
