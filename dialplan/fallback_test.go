package dialplan_test

import (
	"strings"
	"testing"

	"github.com/earpiece/earpiece/dialplan"
)

// fallback is what follows every Stasis() line Render writes: with the app not registered
// (STASISSTATUS FAILED) the supervisor's channel is answered and hears congestion for 3 s, a
// tone rather than the bare SIP 503 that Congestion() gives an unanswered channel.
var fallback = []string{
	` same => n,GotoIf($["${STASISSTATUS}" != "FAILED"]?done)`,
	` same => n,Answer()`,
	` same => n,Playtones(congestion)`,
	` same => n,Wait(3)`,
	` same => n(done),Hangup()`,
}

// checkFallback fails t unless every Stasis() line of out is followed by the fallback, and
// nothing else in out sends a bare Congestion().
func checkFallback(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	n := 0
	for i, l := range lines {
		if strings.Contains(l, "Congestion(") {
			t.Fatalf("line %d: %q: a bare Congestion() is a SIP 503 on an unanswered channel", i+1, l)
		}
		if !strings.Contains(l, ",Stasis(") {
			continue
		}
		n++
		if i+len(fallback) >= len(lines) {
			t.Fatalf("line %d: Stasis() without the fallback after it:\n%s", i+1, out)
		}
		for j, want := range fallback {
			if got := lines[i+1+j]; got != want {
				t.Fatalf("line %d after Stasis() on line %d: %q, want %q:\n%s", i+2+j, i+1, got, want, out)
			}
		}
	}
	if n == 0 {
		t.Fatalf("no Stasis() line:\n%s", out)
	}
}

// TestRenderStasisFallback: every code (the three modes and the help-accept code) falls back to
// an audible congestion tone when earpiece is not registered.
func TestRenderStasisFallback(t *testing.T) {
	var b strings.Builder
	r := dialplan.DefaultRules()
	if err := dialplan.Render(&b, "acme", r, dialplan.RenderOptions{Hints: []dialplan.Hint{{Exten: "744", Device: "PJSIP/744"}}}); err != nil {
		t.Fatal(err)
	}
	checkFallback(t, b.String())
	if got, want := strings.Count(b.String(), ",Stasis("), len(dialplan.Modes())+1; got != want {
		t.Errorf("%d Stasis() lines, want %d (modes and the help-accept code)", got, want)
	}
}
