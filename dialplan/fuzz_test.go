package dialplan_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/dialplan"
)

// FuzzParse checks Parse's invariants for arbitrary input and arbitrary
// prefixes (default DTMF). The committed corpus is testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	d := dialplan.DefaultRules()
	f.Add("*90744", d.SpyPrefix, d.WhisperPrefix, d.BargePrefix)
	f.Add("*21744", "*21", "*22", "*23")
	f.Add("#1", "#1", "#2", "#3")
	f.Add("*91", "*9", "*91", "*92")
	f.Add("*90\xff", d.SpyPrefix, d.WhisperPrefix, d.BargePrefix)
	f.Fuzz(func(t *testing.T, dialed, spy, whisper, barge string) {
		r := dialplan.DefaultRules()
		r.SpyPrefix, r.WhisperPrefix, r.BargePrefix = spy, whisper, barge
		valid := r.Validate() == nil

		m, target, err := r.Parse(dialed)
		if err != nil {
			if m != dialplan.ModeUnknown || target != "" {
				t.Fatalf("Parse(%q) = %v, %q with error %v", dialed, m, target, err)
			}
			if !errors.Is(err, dialplan.ErrUnknownCode) && !errors.Is(err, dialplan.ErrInvalidTarget) {
				t.Fatalf("Parse(%q) error %v wraps no sentinel", dialed, err)
			}
		} else {
			if !m.Valid() {
				t.Fatalf("Parse(%q) succeeded with mode %v", dialed, m)
			}
			if r.Prefix(m)+target != dialed {
				t.Fatalf("Parse(%q) = %v, %q: prefix %q + target != dialed", dialed, m, target, r.Prefix(m))
			}
			if !dialplan.ValidTarget(target) {
				t.Fatalf("Parse(%q) returned target %q that is not 1-32 digits", dialed, target)
			}
		}
		if !valid {
			return
		}
		// With validated rules a dialed string can start with at most one
		// prefix, and a prefix followed by digits always parses.
		var matching []dialplan.Mode
		for _, mm := range dialplan.Modes() {
			if strings.HasPrefix(dialed, r.Prefix(mm)) {
				matching = append(matching, mm)
			}
		}
		switch {
		case len(matching) > 1:
			t.Fatalf("valid rules %+v: %q starts with several prefixes %v", r, dialed, matching)
		case len(matching) == 0 && !errors.Is(err, dialplan.ErrUnknownCode):
			t.Fatalf("Parse(%q) = %v, want ErrUnknownCode", dialed, err)
		case len(matching) == 1 && err == nil && m != matching[0]:
			t.Fatalf("Parse(%q) = %v, want %v", dialed, m, matching[0])
		case len(matching) == 1 && dialplan.ValidTarget(dialed[len(r.Prefix(matching[0])):]) && err != nil:
			t.Fatalf("Parse(%q) = %v, want success", dialed, err)
		}
	})
}

// FuzzValidate checks that rules Validate accepts behave: every prefix
// followed by an extension parses back to its mode, every DTMF key maps back
// to its mode, and Render succeeds.
func FuzzValidate(f *testing.F) {
	f.Add("*90", "*91", "*92", "0", "1", "2")
	f.Add("*21", "*22", "*23", "1", "2", "3")
	f.Add("#1", "#2", "*#3", "*", "#", "D")
	f.Add("*9", "*91", "", "1", "1", "12")
	f.Fuzz(func(t *testing.T, spy, whisper, barge, spyD, whisperD, bargeD string) {
		r := dialplan.Rules{
			SpyPrefix: spy, WhisperPrefix: whisper, BargePrefix: barge,
			SpyDTMF: spyD, WhisperDTMF: whisperD, BargeDTMF: bargeD,
		}
		err := r.Validate()
		if err != nil {
			if !errors.Is(err, dialplan.ErrInvalidRule) {
				t.Fatalf("Validate() = %v, not an ErrInvalidRule", err)
			}
			if dialplan.Render(io.Discard, "t", r, dialplan.RenderOptions{}) == nil {
				t.Fatal("Render accepted rules Validate refused")
			}
			return
		}
		for _, m := range dialplan.Modes() {
			got, target, err := r.Parse(r.Prefix(m) + "744")
			if err != nil || got != m || target != "744" {
				t.Fatalf("rules %+v: Parse(%q) = %v, %q, %v", r, r.Prefix(m)+"744", got, target, err)
			}
			if got, ok := r.ModeForDigit(r.DigitFor(m)); !ok || got != m {
				t.Fatalf("rules %+v: ModeForDigit(%q) = %v, %v", r, r.DigitFor(m), got, ok)
			}
		}
		var out strings.Builder
		if err := dialplan.Render(&out, "t", r, dialplan.RenderOptions{}); err != nil {
			t.Fatalf("Render(valid rules) = %v", err)
		}
		checkFallback(t, out.String())
	})
}

// FuzzRenderHint checks that a hint cannot break out of its line: Render accepts a hint only when
// its extension is 1-32 digits and its device TECH/resource of safe characters, and then the
// output is the hint-less output with exactly the hint block added; otherwise it refuses with
// ErrInvalidHint and writes nothing.
func FuzzRenderHint(f *testing.F) {
	f.Add("744", "PJSIP/744")
	f.Add("744", "PJSIP/744,1,Dial(PJSIP/999)")
	f.Add("744\nexten => s,1,Dial(x)", "PJSIP/744")
	f.Add("744", "PJSIP/744\n[evil]")
	f.Add("744", "PJSIP/${SHELL(id)}")
	f.Add("744", "PJSIP/744&Custom:DND744")
	f.Add("_7XX", "PJSIP/744")
	f.Add("0", "a/b")
	f.Fuzz(func(t *testing.T, exten, device string) {
		var without, with strings.Builder
		if err := dialplan.Render(&without, "acme", dialplan.DefaultRules(), dialplan.RenderOptions{}); err != nil {
			t.Fatal(err)
		}
		w := &countingWriter{}
		opts := dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: exten, Device: device}}}
		err := dialplan.Render(w, "acme", dialplan.DefaultRules(), opts)
		valid := dialplan.ValidTarget(exten) && dialplan.ValidDevice(device)
		if err != nil {
			if valid || !errors.Is(err, dialplan.ErrInvalidHint) || w.calls != 0 {
				t.Fatalf("Render(hint %q %q) = %v after %d writes (valid %v)", exten, device, err, w.calls, valid)
			}
			return
		}
		if !valid {
			t.Fatalf("Render accepted hint %q %q", exten, device)
		}
		if strings.ContainsAny(exten+device, ",;&()$[]{}\"'\\ \t\r\n\x00") {
			t.Fatalf("accepted hint %q %q carries a character special on a dialplan line", exten, device)
		}
		if err := dialplan.Render(&with, "acme", dialplan.DefaultRules(), opts); err != nil {
			t.Fatal(err)
		}
		block := "; BLF hints: a lamp key subscribes to <extension>@earpiece-acme\n" +
			"exten => " + exten + ",hint," + device + "\n\n"
		if got := strings.Replace(with.String(), block, "", 1); got != without.String() || !strings.Contains(with.String(), "[earpiece-acme]\n"+block) {
			t.Fatalf("hint %q %q: the output is not the hint-less one plus the hint block:\n%s", exten, device, with.String())
		}
	})
}
