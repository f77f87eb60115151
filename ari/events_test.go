package ari

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// readSamples returns testdata/events/<Type>.json: one realistic sample of
// every event type, with every property of its model set.
func readSamples(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/events/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = b
	}
	return out
}

func TestEveryEventTypeHasASample(t *testing.T) {
	samples := readSamples(t)
	for _, typ := range EventTypes() {
		if _, ok := samples[typ]; !ok {
			t.Errorf("no testdata/events/%s.json", typ)
		}
	}
	if got := len(EventTypes()); got != 46 {
		t.Errorf("EventTypes() has %d types; events.json has 46 Message/Event subtypes", got)
	}
}

// TestDecodeEventSamples decodes every sample into its typed struct and
// checks that nothing is lost: re-encoding gives the same JSON, so every
// property has a field with the exact json name.
func TestDecodeEventSamples(t *testing.T) {
	wantTS := time.Date(2026, 11, 21, 22, 33, 19, 123e6, time.UTC)
	for typ, data := range readSamples(t) {
		t.Run(typ, func(t *testing.T) {
			ev, err := DecodeEvent(data)
			if err != nil {
				t.Fatal(err)
			}
			if _, unknown := ev.(*UnknownEvent); unknown {
				t.Fatalf("decoded as UnknownEvent")
			}
			if got := reflect.TypeOf(ev).Elem().Name(); got != typ {
				t.Errorf("Go type %s, want %s", got, typ)
			}
			b := ev.Base()
			if b.Type != typ || b.AsteriskID != "52:54:00:12:34:56" {
				t.Errorf("base %+v", b)
			}
			if typ != "MissingParams" && (b.Application != "earpiece" || !b.Timestamp.Equal(wantTS)) {
				t.Errorf("base %+v", b)
			}
			again, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			var want, got any
			_ = json.Unmarshal(data, &want)
			_ = json.Unmarshal(again, &got)
			if !reflect.DeepEqual(want, got) {
				t.Errorf("round trip differs:\nin:  %s\nout: %s", compact(data), again)
			}
		})
	}
}

func compact(b []byte) string {
	var v any
	_ = json.Unmarshal(b, &v)
	out, _ := json.Marshal(v)
	return string(out)
}

func TestDecodeEventFields(t *testing.T) {
	samples := readSamples(t)
	decode := func(typ string) Event {
		t.Helper()
		ev, err := DecodeEvent(samples[typ])
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	ss := decode("StasisStart").(*StasisStart)
	if ss.Channel.ID != "1763764399.42" || !reflect.DeepEqual(ss.Args, []string{"spy", "agent=1001"}) ||
		ss.Channel.Dialplan.Priority != 2 || ss.Channel.ChannelVars["TENANT"] != "acme" ||
		ss.Channel.Caller.Number != "1001" || ss.ReplaceChannel == nil {
		t.Errorf("StasisStart: %+v", ss)
	}
	dtmf := decode("ChannelDtmfReceived").(*ChannelDtmfReceived)
	if dtmf.Digit != "5" || dtmf.DurationMs != 120 || dtmf.Channel.ID == "" {
		t.Errorf("ChannelDtmfReceived: %+v", dtmf)
	}
	eb := decode("ChannelEnteredBridge").(*ChannelEnteredBridge)
	if eb.Bridge.ID != "br-4f1c" || eb.Channel == nil || eb.Bridge.Channels[1] != "snoop-77" {
		t.Errorf("ChannelEnteredBridge: %+v", eb)
	}
	cd := decode("ChannelDestroyed").(*ChannelDestroyed)
	if cd.Cause != 16 || cd.CauseTxt != "Normal Clearing" {
		t.Errorf("ChannelDestroyed: %+v", cd)
	}
	ue := decode("ChannelUserevent").(*ChannelUserevent)
	if ue.EventName != "Escalate" || !strings.Contains(string(ue.UserEvent), `"level"`) {
		t.Errorf("ChannelUserevent: %+v", ue)
	}
	rf := decode("RecordingFailed").(*RecordingFailed)
	if rf.Recording.Name != "rec-s-7" {
		t.Errorf("RecordingFailed: %+v", rf)
	}

	// Optional model properties are pointers: absent means nil.
	ev, err := DecodeEvent([]byte(`{"type":"ChannelVarset","application":"earpiece","timestamp":"2026-11-21T22:33:19.123+0000","variable":"G","value":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if vs := ev.(*ChannelVarset); vs.Channel != nil || vs.Variable != "G" {
		t.Errorf("global ChannelVarset: %+v", vs)
	}
}

func TestDecodeEventUnknown(t *testing.T) {
	raw := []byte(`{"type":"ChannelFutureThing","application":"earpiece","timestamp":"2026-11-21T22:33:19.123+0000","asterisk_id":"x","thing":{"a":[1,2]}}`)
	ev, err := DecodeEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := ev.(*UnknownEvent)
	if !ok {
		t.Fatalf("got %T", ev)
	}
	if u.Type != "ChannelFutureThing" || u.Application != "earpiece" || u.AsteriskID != "x" || u.Timestamp.IsZero() {
		t.Errorf("base %+v", u.EventBase)
	}
	raw[0] = ' ' // the event must not alias the caller's buffer
	if string(u.Raw[:1]) != "{" {
		t.Errorf("Raw aliases the input")
	}
	b, _ := json.Marshal(u)
	if !strings.Contains(string(b), `"thing":{"a":[1,2]}`) {
		t.Errorf("MarshalJSON = %s", b)
	}
}

func TestDecodeEventErrors(t *testing.T) {
	for _, in := range []string{
		``,
		`{`,
		`[]`,
		`null`,
		`"StasisStart"`,
		`{}`,
		`{"type":""}`,
		`{"type":5}`,
		`{"type":"StasisStart"} trailing`,
		`{"type":"StasisStart","application":"a","timestamp":"yesterday"}`,
		`{"type":"StasisStart","application":"a","timestamp":"2026-11-21T22:33:19.123+9900"}`,
		`{"type":"StasisStart","channel":"not an object"}`,
		`{"type":"ChannelDtmfReceived","duration_ms":"120"}`,
		`{"type":"ChannelFutureThing","timestamp":12}`,
	} {
		ev, err := DecodeEvent([]byte(in))
		if err == nil {
			t.Errorf("DecodeEvent(%s) = %T, want error", in, ev)
		}
	}
}

func TestTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{`"2026-11-21T22:33:19.123+0000"`, time.Date(2026, 11, 21, 22, 33, 19, 123e6, time.UTC)},
		{`"2026-11-21T23:33:19.123+0100"`, time.Date(2026, 11, 21, 22, 33, 19, 123e6, time.UTC)},
		{`"2026-11-21T22:33:19+0000"`, time.Date(2026, 11, 21, 22, 33, 19, 0, time.UTC)},
		{`"2026-11-21T22:33:19.123456Z"`, time.Date(2026, 11, 21, 22, 33, 19, 123456e3, time.UTC)},
		{`"2026-11-21T17:33:19-05:00"`, time.Date(2026, 11, 21, 22, 33, 19, 0, time.UTC)},
		{`""`, time.Time{}},
		{`null`, time.Time{}},
	} {
		var tm Time
		if err := json.Unmarshal([]byte(tc.in), &tm); err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !tm.Equal(tc.want) {
			t.Errorf("%s = %v, want %v", tc.in, tm.Time, tc.want)
		}
	}
	for _, bad := range []string{`"22:33"`, `12`, `"2026-11-21 22:33:19"`, `"2026-11-21T22:33:19.123+2400"`} {
		var tm Time
		if err := json.Unmarshal([]byte(bad), &tm); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	in := Time{time.Date(2026, 11, 21, 22, 33, 19, 123456789, time.FixedZone("", 3600))}
	b, _ := json.Marshal(in)
	if string(b) != `"2026-11-21T22:33:19.123+0100"` {
		t.Errorf("Marshal = %s", b)
	}
}

func TestConnStateString(t *testing.T) {
	for s, want := range map[ConnState]string{
		Connected: "connected", Disconnected: "disconnected", Replaced: "replaced", Desynced: "desynced", 0: "ConnState(0)",
	} {
		if s.String() != want {
			t.Errorf("%d.String() = %q", int(s), s.String())
		}
	}
}

func TestDirectionValid(t *testing.T) {
	for _, d := range []Direction{DirNone, DirIn, DirOut, DirBoth} {
		if !d.Valid() {
			t.Errorf("%q not valid", d)
		}
	}
	for _, d := range []Direction{"", "IN", "inout"} {
		if d.Valid() {
			t.Errorf("%q valid", d)
		}
	}
}

func TestEventsLostIs(t *testing.T) {
	err := lossError(3, errQueueFull)
	if !errors.Is(err, ErrEventsLost) || !errors.Is(err, errQueueFull) {
		t.Errorf("%v", err)
	}
}
