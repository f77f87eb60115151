package testphone

import (
	"testing"
	"time"

	"github.com/earpiece/earpiece/internal/asterisktest"
)

// TestThroughAsterisk: a customer phone (800) and an agent phone (744) register with the test
// Asterisk; the customer dials 744 (from-customers: _7XX -> Dial(PJSIP/744)) and each hears the
// other's tone, the agent sees the customer's caller ID, and the agent's hangup ends both legs.
func TestThroughAsterisk(t *testing.T) {
	ast := asterisktest.Shared(t)
	if ast.SIPPort == 0 {
		t.Skipf("asterisktest: no SIP address for the Asterisk (set %s)", asterisktest.EnvSIPAddr)
	}
	ctx := timeout(t, 20*time.Second)
	customer := newPhone(t, Config{User: "800", Server: ast.SIPAddr(), ToneHz: ToneCustomer})
	agent := newPhone(t, Config{User: "744", Server: ast.SIPAddr(), ToneHz: ToneAgent})
	for _, p := range []*Phone{customer, agent} {
		if err := p.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	cc, err := customer.Call(ctx, "744")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("INVITE to answer through Asterisk: %v", time.Since(start).Round(time.Millisecond))
	ac, err := agent.AwaitIncoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ac.CallerID() != "Customer 800" || ac.CallerIDNum() != "5550800" {
		t.Errorf("agent sees caller ID %q <%s>", ac.CallerIDName(), ac.CallerIDNum())
	}

	aFirst, err := cc.AwaitToneSince(ctx, time.Time{}, ToneAgent, true, 5)
	if err != nil {
		t.Fatal(err)
	}
	bFirst, err := ac.AwaitToneSince(ctx, time.Time{}, ToneCustomer, true, 5)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first tone frame after the INVITE: customer %.1f frames, agent %.1f frames",
		frames(aFirst.Sub(start)), frames(bFirst.Sub(start)))

	t0 := time.Now()
	if _, err := cc.AwaitToneSince(ctx, t0, ToneAgent, true, 50); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.AwaitToneSince(ctx, t0, ToneCustomer, true, 50); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	for _, c := range []struct {
		name        string
		call, peer  *Call
		hears, self float64
	}{{"customer", cc, ac, ToneAgent, ToneCustomer}, {"agent", ac, cc, ToneCustomer, ToneAgent}} {
		heard, self := c.call.Heard(c.hears, t0, t1), c.call.Heard(c.self, t0, t1)
		absent := c.call.LongestAbsence(c.hears, t0, t1)
		t.Logf("%s: other side in %d/%d frames, own tone in %d, longest absence %v (sender stall %v, late arrival %v)",
			c.name, heard.Present, heard.Frames, self.Present, absent, c.peer.SenderStall(t0, t1), c.call.LateArrival(t0, t1))
		if heard.Present < heard.Frames || heard.Frames < 50 {
			t.Errorf("%s hears the other side in %d of %d frames", c.name, heard.Present, heard.Frames)
		}
		if self.Present != 0 {
			t.Errorf("%s hears itself in %d frames", c.name, self.Present)
		}
		if limit := maxGapVia(c.call, c.peer, t0, t1); absent > limit {
			t.Errorf("%s: longest absence %v (limit %v)", c.name, absent, limit)
		}
	}
	fr := cc.Frames()
	t.Logf("customer's last frame: levels %v", fr[len(fr)-1].Levels)

	// A tone change crosses Asterisk within a few frames.
	ts := time.Now()
	ac.SetTone(ToneSupervisor)
	setting := time.Since(ts)
	on, err := cc.AwaitToneSince(ctx, ts, ToneSupervisor, true, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SetTone on the agent -> customer hears it: %.1f frames", frames(on.Sub(ts)))
	held := max(ac.SenderStall(ts, on), cc.LateArrival(ts.Add(-10*frameDuration), on))
	if lat, limit := on.Sub(ts), 5*frameDuration+setting+held; lat > limit {
		t.Errorf("tone change took %v through Asterisk (limit %v)", lat, limit)
	}

	// DTMF passes through Asterisk (dtmf_mode=rfc4733).
	if err := cc.SendDTMF(ctx, "59#"); err != nil {
		t.Fatal(err)
	}
	if got, err := ac.AwaitDTMF(ctx, 3); err != nil || got != "59#" {
		t.Errorf("agent got DTMF %q, %v", got, err)
	}

	if err := ac.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cc.Done():
	case <-ctx.Done():
		t.Fatal("customer's call survived the agent's hangup")
	}
}
