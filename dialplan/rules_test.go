package dialplan_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/dialplan"
)

// legacy is a customer keeping its old PBX's codes.
var legacy = dialplan.Rules{
	SpyPrefix: "*21", WhisperPrefix: "*22", BargePrefix: "*23",
	SpyDTMF: "1", WhisperDTMF: "2", BargeDTMF: "3",
}

// hashes uses '#' in prefixes, which Asterisk patterns treat literally.
var hashes = dialplan.Rules{
	SpyPrefix: "#1", WhisperPrefix: "#2", BargePrefix: "*#3",
	SpyDTMF: "*", WhisperDTMF: "#", BargeDTMF: "D",
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name       string
		rules      dialplan.Rules
		dialed     string
		wantMode   dialplan.Mode
		wantTarget string
		wantErr    error
	}{
		{"default spy", dialplan.DefaultRules(), "*90744", dialplan.Spy, "744", nil},
		{"default whisper", dialplan.DefaultRules(), "*91888", dialplan.Whisper, "888", nil},
		{"default barge", dialplan.DefaultRules(), "*92700", dialplan.Barge, "700", nil},
		{"one-digit target", dialplan.DefaultRules(), "*907", dialplan.Spy, "7", nil},
		{"leading zero kept", dialplan.DefaultRules(), "*900744", dialplan.Spy, "0744", nil},
		{"32-digit target", dialplan.DefaultRules(), "*90" + strings.Repeat("9", 32), dialplan.Spy, strings.Repeat("9", 32), nil},
		{"legacy spy", legacy, "*21744", dialplan.Spy, "744", nil},
		{"legacy whisper", legacy, "*22744", dialplan.Whisper, "744", nil},
		{"legacy barge", legacy, "*23744", dialplan.Barge, "744", nil},
		{"hash spy", hashes, "#1744", dialplan.Spy, "744", nil},
		{"hash barge", hashes, "*#3744", dialplan.Barge, "744", nil},
		{"longest prefix wins", dialplan.Rules{SpyPrefix: "*9", WhisperPrefix: "*91", BargePrefix: "*8"}, "*91744", dialplan.Whisper, "744", nil},

		{"unknown code", dialplan.DefaultRules(), "*93744", dialplan.ModeUnknown, "", dialplan.ErrUnknownCode},
		{"plain extension", dialplan.DefaultRules(), "744", dialplan.ModeUnknown, "", dialplan.ErrUnknownCode},
		{"empty", dialplan.DefaultRules(), "", dialplan.ModeUnknown, "", dialplan.ErrUnknownCode},
		{"partial prefix", dialplan.DefaultRules(), "*9", dialplan.ModeUnknown, "", dialplan.ErrUnknownCode},
		{"default code on legacy rules", legacy, "*90744", dialplan.ModeUnknown, "", dialplan.ErrUnknownCode},
		{"zero rules", dialplan.Rules{}, "*90744", dialplan.ModeUnknown, "", dialplan.ErrUnknownCode},
		{"prefix only", dialplan.DefaultRules(), "*90", dialplan.ModeUnknown, "", dialplan.ErrInvalidTarget},
		{"legacy prefix only", legacy, "*23", dialplan.ModeUnknown, "", dialplan.ErrInvalidTarget},
		{"letters in target", dialplan.DefaultRules(), "*9074a", dialplan.ModeUnknown, "", dialplan.ErrInvalidTarget},
		{"star in target", dialplan.DefaultRules(), "*90*744", dialplan.ModeUnknown, "", dialplan.ErrInvalidTarget},
		{"hash terminator", dialplan.DefaultRules(), "*90744#", dialplan.ModeUnknown, "", dialplan.ErrInvalidTarget},
		{"space", dialplan.DefaultRules(), "*90 744", dialplan.ModeUnknown, "", dialplan.ErrInvalidTarget},
		{"non-ASCII digits", dialplan.DefaultRules(), "*90٧٤٤", dialplan.ModeUnknown, "", dialplan.ErrInvalidTarget},
		{"33-digit target", dialplan.DefaultRules(), "*90" + strings.Repeat("9", 33), dialplan.ModeUnknown, "", dialplan.ErrInvalidTarget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, target, err := tc.rules.Parse(tc.dialed)
			if m != tc.wantMode || target != tc.wantTarget || !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("Parse(%q) = %v, %q, %v; want %v, %q, %v", tc.dialed, m, target, err, tc.wantMode, tc.wantTarget, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "dialed "+strconv.Quote(tc.dialed)) {
				t.Errorf("error %q does not name the input", err)
			}
		})
	}
}

func TestParseErrorMessages(t *testing.T) {
	r := dialplan.DefaultRules()
	for dialed, want := range map[string]string{
		"*93744": `dialed "*93744": not a supervision code`,
		"*90":    `dialed "*90": spy target "": invalid target extension (want 1-32 digits)`,
		"*91x":   `dialed "*91x": whisper target "x": invalid target extension (want 1-32 digits)`,
	} {
		if _, _, err := r.Parse(dialed); err == nil || err.Error() != want {
			t.Errorf("Parse(%q) error = %v, want %s", dialed, err, want)
		}
	}
}

func TestModeForDigitAndDigitFor(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rules  dialplan.Rules
		digit  string
		want   dialplan.Mode
		wantOK bool
	}{
		{"default 0", dialplan.DefaultRules(), "0", dialplan.Spy, true},
		{"default 1", dialplan.DefaultRules(), "1", dialplan.Whisper, true},
		{"default 2", dialplan.DefaultRules(), "2", dialplan.Barge, true},
		{"default 3 unused", dialplan.DefaultRules(), "3", dialplan.ModeUnknown, false},
		{"default star unused", dialplan.DefaultRules(), "*", dialplan.ModeUnknown, false},
		{"empty", dialplan.DefaultRules(), "", dialplan.ModeUnknown, false},
		{"two keys", dialplan.DefaultRules(), "01", dialplan.ModeUnknown, false},
		{"legacy 1", legacy, "1", dialplan.Spy, true},
		{"legacy 3", legacy, "3", dialplan.Barge, true},
		{"legacy 0 unused", legacy, "0", dialplan.ModeUnknown, false},
		{"hash rules star", hashes, "*", dialplan.Spy, true},
		{"hash rules hash", hashes, "#", dialplan.Whisper, true},
		{"hash rules D", hashes, "D", dialplan.Barge, true},
		{"exact case", hashes, "d", dialplan.ModeUnknown, false},
		{"zero rules never match", dialplan.Rules{}, "", dialplan.ModeUnknown, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := tc.rules.ModeForDigit(tc.digit)
			if m != tc.want || ok != tc.wantOK {
				t.Fatalf("ModeForDigit(%q) = %v, %v; want %v, %v", tc.digit, m, ok, tc.want, tc.wantOK)
			}
			if ok && tc.rules.DigitFor(m) != tc.digit {
				t.Errorf("DigitFor(%v) = %q, want %q", m, tc.rules.DigitFor(m), tc.digit)
			}
		})
	}
	if d := dialplan.DefaultRules().DigitFor(dialplan.ModeUnknown); d != "" {
		t.Errorf("DigitFor(ModeUnknown) = %q, want empty", d)
	}
	if p := dialplan.DefaultRules().Prefix(dialplan.Mode(9)); p != "" {
		t.Errorf("Prefix(Mode(9)) = %q, want empty", p)
	}
}

func TestValidate(t *testing.T) {
	with := func(edit func(*dialplan.Rules)) dialplan.Rules {
		r := dialplan.DefaultRules()
		edit(&r)
		return r
	}
	for _, tc := range []struct {
		name    string
		rules   dialplan.Rules
		wantIs  error  // nil: valid
		wantMsg string // the whole message, when a single problem
	}{
		{"defaults", dialplan.DefaultRules(), nil, ""},
		{"legacy", legacy, nil, ""},
		{"hash prefixes and A-D", hashes, nil, ""},
		{"8-character prefix", with(func(r *dialplan.Rules) { r.SpyPrefix = "*1234567" }), nil, ""},
		{"digits-only prefix", with(func(r *dialplan.Rules) { r.SpyPrefix = "80" }), nil, ""},

		{"empty prefix", with(func(r *dialplan.Rules) { r.WhisperPrefix = "" }),
			dialplan.ErrInvalidRule, `whisper_prefix: empty prefix: invalid dialing rule`},
		{"letter in prefix", with(func(r *dialplan.Rules) { r.SpyPrefix = "*9a" }),
			dialplan.ErrInvalidRule, `spy_prefix "*9a": character 'a' cannot be dialed (want 0-9, * or #): invalid dialing rule`},
		{"plus in prefix", with(func(r *dialplan.Rules) { r.BargePrefix = "+92" }),
			dialplan.ErrInvalidRule, `barge_prefix "+92": character '+' cannot be dialed (want 0-9, * or #): invalid dialing rule`},
		{"space in prefix", with(func(r *dialplan.Rules) { r.BargePrefix = "*9 2" }),
			dialplan.ErrInvalidRule, `barge_prefix "*9 2": character ' ' cannot be dialed (want 0-9, * or #): invalid dialing rule`},
		{"too long prefix", with(func(r *dialplan.Rules) { r.SpyPrefix = "*12345678" }),
			dialplan.ErrInvalidRule, `spy_prefix "*12345678": longer than 8 characters: invalid dialing rule`},
		{"duplicate prefixes", with(func(r *dialplan.Rules) { r.BargePrefix = "*90" }),
			dialplan.ErrConflict, `spy_prefix and barge_prefix are both "*90": conflicting codes`},
		{"prefix of another", with(func(r *dialplan.Rules) { r.SpyPrefix = "*9" }),
			dialplan.ErrConflict, "spy_prefix \"*9\" is a prefix of whisper_prefix \"*91\": conflicting codes\n" +
				"spy_prefix \"*9\" is a prefix of barge_prefix \"*92\": conflicting codes\n" +
				`spy_prefix "*9" is a prefix of help_accept_code "*93": conflicting codes`},
		{"later prefix starts earlier", with(func(r *dialplan.Rules) { r.BargePrefix = "*901" }),
			dialplan.ErrConflict, `spy_prefix "*90" is a prefix of barge_prefix "*901": conflicting codes`},
		{"two-key DTMF", with(func(r *dialplan.Rules) { r.SpyDTMF = "10" }),
			dialplan.ErrNotDTMFCode, `spy_dtmf "10": not a DTMF key (want one of 0-9, *, #, A-D)`},
		{"empty DTMF", with(func(r *dialplan.Rules) { r.BargeDTMF = "" }),
			dialplan.ErrNotDTMFCode, `barge_dtmf "": not a DTMF key (want one of 0-9, *, #, A-D)`},
		{"lower-case DTMF", with(func(r *dialplan.Rules) { r.BargeDTMF = "a" }),
			dialplan.ErrNotDTMFCode, `barge_dtmf "a": not a DTMF key (want one of 0-9, *, #, A-D)`},
		{"DTMF E", with(func(r *dialplan.Rules) { r.BargeDTMF = "E" }),
			dialplan.ErrNotDTMFCode, `barge_dtmf "E": not a DTMF key (want one of 0-9, *, #, A-D)`},
		{"duplicate DTMF", with(func(r *dialplan.Rules) { r.WhisperDTMF = "2" }),
			dialplan.ErrConflict, `whisper_dtmf and barge_dtmf are both "2": conflicting codes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rules.Validate()
			if tc.wantIs == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("Validate() = %v, want errors.Is %v", err, tc.wantIs)
			}
			if !errors.Is(err, dialplan.ErrInvalidRule) {
				t.Errorf("Validate() = %v, does not wrap ErrInvalidRule", err)
			}
			if err.Error() != tc.wantMsg {
				t.Errorf("Validate() =\n%v\nwant\n%s", err, tc.wantMsg)
			}
		})
	}
}

func TestValidateSentinelsAreDistinct(t *testing.T) {
	r := dialplan.DefaultRules()
	r.SpyPrefix = "*9a"
	err := r.Validate()
	if errors.Is(err, dialplan.ErrConflict) || errors.Is(err, dialplan.ErrNotDTMFCode) {
		t.Errorf("a malformed prefix matched a finer sentinel: %v", err)
	}
	r = dialplan.DefaultRules()
	r.SpyDTMF = "x"
	if err := r.Validate(); errors.Is(err, dialplan.ErrConflict) {
		t.Errorf("a bad DTMF code matched ErrConflict: %v", err)
	}
}

// TestValidateReportsEveryProblem checks that one call reports all problems,
// in a stable order: prefixes, prefix conflicts, DTMF codes, DTMF conflicts.
func TestValidateReportsEveryProblem(t *testing.T) {
	r := dialplan.Rules{
		SpyPrefix:     "*9",
		WhisperPrefix: "",
		BargePrefix:   "*9x",
		SpyDTMF:       "1",
		WhisperDTMF:   "1",
		BargeDTMF:     "12",
	}
	want := []string{
		`whisper_prefix: empty prefix: invalid dialing rule`,
		`barge_prefix "*9x": character 'x' cannot be dialed (want 0-9, * or #): invalid dialing rule`,
		`spy_prefix "*9" is a prefix of barge_prefix "*9x": conflicting codes`,
		`barge_dtmf "12": not a DTMF key (want one of 0-9, *, #, A-D)`,
		`spy_dtmf and whisper_dtmf are both "1": conflicting codes`,
	}
	err := r.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Validate() reported\n%s\nwant\n%s", err, strings.Join(want, "\n"))
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) != len(want) {
		t.Errorf("Validate() is not a join of %d errors: %#v", len(want), err)
	}
	for _, sentinel := range []error{dialplan.ErrInvalidRule, dialplan.ErrConflict, dialplan.ErrNotDTMFCode} {
		if !errors.Is(err, sentinel) {
			t.Errorf("Validate() does not wrap %v", sentinel)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	got := dialplan.Rules{SpyPrefix: "*21", BargeDTMF: "9"}.WithDefaults()
	want := dialplan.Rules{
		SpyPrefix: "*21", WhisperPrefix: "*91", BargePrefix: "*92",
		SpyDTMF: "0", WhisperDTMF: "1", BargeDTMF: "9", HelpAcceptCode: "*93", HelpRaiseDTMF: "*0",
	}
	if got != want {
		t.Errorf("WithDefaults() = %+v, want %+v", got, want)
	}
	if got := (dialplan.Rules{}).WithDefaults(); got != dialplan.DefaultRules() {
		t.Errorf("zero WithDefaults() = %+v, want defaults", got)
	}
}

func TestValidTarget(t *testing.T) {
	for s, want := range map[string]bool{
		"744": true, "0": true, strings.Repeat("1", 32): true,
		"": false, strings.Repeat("1", 33): false, "74a": false, "-1": false, "*1": false,
	} {
		if got := dialplan.ValidTarget(s); got != want {
			t.Errorf("ValidTarget(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestHelpAcceptCode(t *testing.T) {
	r := dialplan.DefaultRules()
	if !r.IsHelpAccept("*93") || r.IsHelpAccept("*93744") || r.IsHelpAccept("*90744") {
		t.Error("IsHelpAccept: want exactly *93")
	}
	if (dialplan.Rules{}).IsHelpAccept("") {
		t.Error("an empty code matches nothing")
	}
	for _, code := range []string{"*90", "*9", "*9012", "*9x", "*123456789"} {
		r := dialplan.DefaultRules()
		r.HelpAcceptCode = code
		if err := r.Validate(); !errors.Is(err, dialplan.ErrInvalidRule) {
			t.Errorf("help_accept_code %q: Validate() = %v, want an invalid rule", code, err)
		}
	}
	r.HelpAcceptCode = "#5"
	if err := r.Validate(); err != nil {
		t.Errorf("help_accept_code #5: %v", err)
	}
}
