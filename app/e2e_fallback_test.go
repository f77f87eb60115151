package app

import (
	"testing"
	"time"

	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
)

// TestE2EFallbackWhenDown: with earpiece not running (no Stasis app registered on Asterisk), a
// supervisor dialing a code is still answered by the rendered dialplan and hears congestion for
// 3 s, then is hung up: a tone, as from earpiece's own refusals, never a bare SIP 503 (what
// Congestion() on the unanswered channel used to give). Every code of the tenant falls back the
// same way; one is dialed here.
func TestE2EFallbackWhenDown(t *testing.T) {
	r := e2etest.New(t, owned)
	// No app: the rig's ARI client never connects its events socket, so nothing is registered
	// as Stasis application "earpiece" and Stasis(earpiece,...) fails at once.
	sup := r.Phone("700", hzSupervisor, testphone.AutoAnswer)
	c, answered := r.Dial(sup, "*90744")
	r.Hears(c, e2etest.ToneRefusalLow, "supervisor dialing while earpiece is down")
	r.Hears(c, e2etest.ToneRefusalHigh, "supervisor dialing while earpiece is down")
	r.AwaitEnded(c, 6*time.Second, "supervisor dialing while earpiece is down")
	if d := time.Since(answered); d < 2500*time.Millisecond {
		t.Errorf("hung up %v after the answer, want the 3 s of congestion first", d)
	}
	r.SilentOn(c, testphone.ToneAgent, time.Time{}, time.Now(), "supervisor dialing while earpiece is down")
}
