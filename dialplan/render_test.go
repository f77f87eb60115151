package dialplan_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/earpiece/earpiece/dialplan"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		file   string
		tenant string
		rules  dialplan.Rules
		opts   dialplan.RenderOptions
	}{
		{"render_default.golden", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{}},
		{"render_custom.golden", "globex", legacy, dialplan.RenderOptions{}},
		{"render_options.golden", "Initech_2", hashes, dialplan.RenderOptions{Context: "from-internal-supervision", App: "earpiece-staging"}},
		{"render_hints.golden", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{
			{Exten: "744", Device: "PJSIP/744"}, {Exten: "700", Device: "pjsip/acme-700"}, {Exten: "0012", Device: "SIP/trunk.b+c@x_y"},
		}}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := dialplan.Render(&b, tc.tenant, tc.rules, tc.opts); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, b.Bytes())
		})
	}
}

// countingWriter records how many times Write is called.
type countingWriter struct {
	calls int
	err   error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

func TestRenderRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tenant  string
		rules   dialplan.Rules
		opts    dialplan.RenderOptions
		wantIs  error
		wantMsg string
	}{
		{"empty tenant", "", dialplan.DefaultRules(), dialplan.RenderOptions{}, dialplan.ErrInvalidName,
			`render dialplan for tenant "": tenant "": invalid name (want 1-64 ASCII letters, digits, '-' or '_')`},
		{"tenant with comma", "acme,evil", dialplan.DefaultRules(), dialplan.RenderOptions{}, dialplan.ErrInvalidName, ""},
		{"tenant with bracket", "acme]", dialplan.DefaultRules(), dialplan.RenderOptions{}, dialplan.ErrInvalidName, ""},
		{"tenant with newline", "acme\nexten => s,1,Dial(x)", dialplan.DefaultRules(), dialplan.RenderOptions{}, dialplan.ErrInvalidName, ""},
		{"tenant with dot", "acme.com", dialplan.DefaultRules(), dialplan.RenderOptions{}, dialplan.ErrInvalidName, ""},
		{"tenant too long", strings.Repeat("a", 65), dialplan.DefaultRules(), dialplan.RenderOptions{}, dialplan.ErrInvalidName, ""},
		{"bad context", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Context: "a b"}, dialplan.ErrInvalidName, ""},
		{"bad app", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{App: "earpiece)"}, dialplan.ErrInvalidName, ""},
		{"invalid rules", "acme", dialplan.Rules{}, dialplan.RenderOptions{}, dialplan.ErrInvalidRule, ""},
		{"hint with letters", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: "74a", Device: "PJSIP/744"}}}, dialplan.ErrInvalidHint,
			`render dialplan for tenant "acme": hint "74a": extension: want 1-32 digits: invalid hint`},
		{"hint empty exten", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Device: "PJSIP/744"}}}, dialplan.ErrInvalidHint, ""},
		{"hint pattern exten", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: "_7XX", Device: "PJSIP/744"}}}, dialplan.ErrInvalidHint, ""},
		{"hint exten too long", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: strings.Repeat("1", 33), Device: "PJSIP/744"}}}, dialplan.ErrInvalidHint, ""},
		{"hint device with comma", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: "744", Device: "PJSIP/744,1,Dial(x)"}}}, dialplan.ErrInvalidHint,
			`render dialplan for tenant "acme": hint 744: device "PJSIP/744,1,Dial(x)": want TECH/resource (letters, digits and . _ - + @): invalid hint`},
		{"hint device with newline", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: "744", Device: "PJSIP/744\nexten => s,1,Dial(x)"}}}, dialplan.ErrInvalidHint, ""},
		{"hint device with ampersand", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: "744", Device: "PJSIP/744&Custom:x"}}}, dialplan.ErrInvalidHint, ""},
		{"hint device with semicolon", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: "744", Device: "PJSIP/744;x"}}}, dialplan.ErrInvalidHint, ""},
		{"hint device with variable", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: "744", Device: "PJSIP/${X}"}}}, dialplan.ErrInvalidHint, ""},
		{"hint device without tech", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: "744", Device: "744"}}}, dialplan.ErrInvalidHint, ""},
		{"hint device with two slashes", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: "744", Device: "PJSIP/a/b"}}}, dialplan.ErrInvalidHint, ""},
		{"hint device too long", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: "744", Device: "PJSIP/" + strings.Repeat("a", 123)}}}, dialplan.ErrInvalidHint, ""},
		{"hint twice", "acme", dialplan.DefaultRules(), dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: "744", Device: "PJSIP/744"}, {Exten: "744", Device: "PJSIP/745"}}}, dialplan.ErrInvalidHint,
			`render dialplan for tenant "acme": hint 744: listed twice: invalid hint`},
		{"conflicting rules", "acme", dialplan.Rules{SpyPrefix: "*9", WhisperPrefix: "*91", BargePrefix: "*92", SpyDTMF: "0", WhisperDTMF: "1", BargeDTMF: "2"}, dialplan.RenderOptions{}, dialplan.ErrConflict, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w countingWriter
			err := dialplan.Render(&w, tc.tenant, tc.rules, tc.opts)
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("Render() = %v, want %v", err, tc.wantIs)
			}
			if tc.wantMsg != "" && err.Error() != tc.wantMsg {
				t.Errorf("Render() = %q, want %q", err, tc.wantMsg)
			}
			if w.calls != 0 {
				t.Errorf("Render wrote %d times despite the error", w.calls)
			}
		})
	}
}

func TestRenderWriteError(t *testing.T) {
	boom := errors.New("disk full")
	w := countingWriter{err: boom}
	if err := dialplan.Render(&w, "acme", dialplan.DefaultRules(), dialplan.RenderOptions{}); !errors.Is(err, boom) {
		t.Fatalf("Render() = %v, want %v", err, boom)
	}
	if w.calls != 1 {
		t.Errorf("Render wrote %d times, want 1", w.calls)
	}
}
