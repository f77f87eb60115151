package aritest

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"
)

// TimeFormat is how Asterisk writes times in ARI JSON ("%FT%T.%q%z"):
// 2026-11-21T22:33:19.123+0000.
const TimeFormat = "2006-01-02T15:04:05.000-0700"

// AsteriskID is the asterisk_id the event helpers put in events (on a real
// Asterisk it is the system's entity ID, a MAC address by default).
const AsteriskID = "02:42:ac:11:00:02"

// Timestamp formats t as Asterisk does, in UTC.
func Timestamp(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Event returns the JSON of an ARI event of type typ for app: the fields
// every event carries (type, application, timestamp now, asterisk_id) plus
// fields, which may override them.
func Event(typ, app string, fields map[string]any) json.RawMessage {
	m := map[string]any{
		"type":        typ,
		"application": app,
		"timestamp":   Timestamp(time.Now()),
		"asterisk_id": AsteriskID,
	}
	maps.Copy(m, fields)
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("aritest: encoding %s event: %v", typ, err))
	}
	return b
}

// Channel returns an ARI Channel object (channels.json) for an answered
// PJSIP channel with this id, in the Stasis application app with args. Tests
// may change its fields before putting it in an event.
func Channel(id, app string, args ...string) map[string]any {
	return map[string]any{
		"id":          id,
		"name":        "PJSIP/aritest-" + id,
		"state":       "Up",
		"protocol_id": "",
		"caller":      map[string]any{"name": "", "number": ""},
		"connected":   map[string]any{"name": "", "number": ""},
		"accountcode": "",
		"dialplan": map[string]any{
			"context":  "default",
			"exten":    "s",
			"priority": 1,
			"app_name": "Stasis",
			"app_data": strings.Join(append([]string{app}, args...), ","),
		},
		"creationtime": Timestamp(time.Now()),
		"language":     "en",
	}
}

// StasisStartJSON returns a StasisStart event for channelID entering app
// with args.
func StasisStartJSON(app, channelID string, args ...string) json.RawMessage {
	if args == nil {
		args = []string{} // Asterisk always sends the list, even empty
	}
	return Event("StasisStart", app, map[string]any{
		"args":    args,
		"channel": Channel(channelID, app, args...),
	})
}

// StasisEndJSON returns a StasisEnd event for channelID leaving app.
func StasisEndJSON(app, channelID string) json.RawMessage {
	return Event("StasisEnd", app, map[string]any{"channel": Channel(channelID, app)})
}

// ApplicationReplacedJSON returns the ApplicationReplaced event Asterisk sends
// to the older WebSocket when a newer one subscribes to app.
func ApplicationReplacedJSON(app string) json.RawMessage {
	return Event("ApplicationReplaced", app, nil)
}
