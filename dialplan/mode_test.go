package dialplan_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/earpiece/earpiece/dialplan"
)

func TestModeString(t *testing.T) {
	for _, tc := range []struct {
		m    dialplan.Mode
		want string
	}{
		{dialplan.Spy, "spy"},
		{dialplan.Whisper, "whisper"},
		{dialplan.Barge, "barge"},
		{dialplan.ModeUnknown, "unknown"},
		{dialplan.Mode(42), "Mode(42)"},
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("Mode(%d).String() = %q, want %q", int(tc.m), got, tc.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    dialplan.Mode
		wantErr bool
	}{
		{"spy", dialplan.Spy, false},
		{"whisper", dialplan.Whisper, false},
		{"barge", dialplan.Barge, false},
		{"Barge", dialplan.Barge, false},
		{"unknown", dialplan.ModeUnknown, true},
		{"", dialplan.ModeUnknown, true},
		{"monitor", dialplan.ModeUnknown, true},
		{" spy", dialplan.ModeUnknown, true},
	} {
		got, err := dialplan.ParseMode(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseMode(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !errors.Is(err, dialplan.ErrUnknownMode) {
			t.Errorf("ParseMode(%q) error %v does not wrap ErrUnknownMode", tc.in, err)
		}
	}
}

func TestModeJSON(t *testing.T) {
	type doc struct {
		Mode dialplan.Mode `json:"mode"`
	}
	for _, m := range dialplan.Modes() {
		b, err := json.Marshal(doc{m})
		if err != nil {
			t.Fatalf("marshal %v: %v", m, err)
		}
		if want := `{"mode":"` + m.String() + `"}`; string(b) != want {
			t.Errorf("marshal %v = %s, want %s", m, b, want)
		}
		var back doc
		if err := json.Unmarshal(b, &back); err != nil || back.Mode != m {
			t.Errorf("round trip %v = %v, %v", m, back.Mode, err)
		}
	}
	if _, err := json.Marshal(doc{dialplan.ModeUnknown}); !errors.Is(err, dialplan.ErrUnknownMode) {
		t.Errorf("marshal ModeUnknown: err = %v, want ErrUnknownMode", err)
	}
	var d doc
	if err := json.Unmarshal([]byte(`{"mode":"coach"}`), &d); !errors.Is(err, dialplan.ErrUnknownMode) {
		t.Errorf("unmarshal coach: err = %v, want ErrUnknownMode", err)
	}
}

func TestModesValid(t *testing.T) {
	ms := dialplan.Modes()
	if len(ms) != 3 || ms[0] != dialplan.Spy || ms[1] != dialplan.Whisper || ms[2] != dialplan.Barge {
		t.Fatalf("Modes() = %v", ms)
	}
	for _, m := range ms {
		if !m.Valid() {
			t.Errorf("%v.Valid() = false", m)
		}
	}
	if dialplan.ModeUnknown.Valid() || dialplan.Mode(-1).Valid() || dialplan.Mode(4).Valid() {
		t.Error("invalid mode reported valid")
	}
}
