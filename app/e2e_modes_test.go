package app

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/testphone"
	"github.com/earpiece/earpiece/store"
)

const (
	hzCustomer   = testphone.ToneCustomer
	hzAgent      = testphone.ToneAgent
	hzSupervisor = testphone.ToneSupervisor
)

// expectMode checks by ear that mode m is in force after prev: the supervisor hears both
// parties; the agent hears the supervisor in whisper and barge; the customer only in barge. since
// is when the mode was asked for. It returns when the change was first heard by a party whose
// hearing changed (the supervisor's tone appearing or disappearing).
func (r *rig) expectMode(prev, m dialplan.Mode, c call, sup *testphone.Call, since time.Time) time.Time {
	r.t.Helper()
	hears := func(m dialplan.Mode) (agent, customer bool) {
		return m == dialplan.Whisper || m == dialplan.Barge, m == dialplan.Barge
	}
	agentHears, customerHears := hears(m)
	agentHeard, customerHeard := hears(prev)
	ta := r.hearsAfter(c.agent, since, hzSupervisor, agentHears, "agent ("+m.String()+")")
	tc := r.hearsAfter(c.customer, since, hzSupervisor, customerHears, "customer ("+m.String()+")")
	// The supervisor's phone sends no tone while it sends DTMF (RFC 4733 replaces the audio), so
	// a tone that stops is timed by the last frame still carrying it after the digit ended.
	var heard time.Time
	switch {
	case customerHears != customerHeard && customerHears:
		heard = tc
	case agentHears != agentHeard && agentHears:
		heard = ta
	case customerHears != customerHeard:
		heard = lastHeard(c.customer, hzSupervisor, r.dtmfEnd)
	case agentHears != agentHeard:
		heard = lastHeard(c.agent, hzSupervisor, r.dtmfEnd)
	}
	r.hearsAfter(sup, since, hzCustomer, true, "supervisor hears customer")
	r.hearsAfter(sup, since, hzAgent, true, "supervisor hears agent")
	// Hold the mode for a while and check nobody hears what they must not.
	from := time.Now()
	time.Sleep(300 * time.Millisecond)
	to := time.Now()
	if !agentHears {
		r.silentOn(c.agent, hzSupervisor, from, to, "agent in "+m.String())
	}
	if !customerHears {
		r.silentOn(c.customer, hzSupervisor, from, to, "customer in "+m.String())
	}
	// The supervisor never hears their own voice back.
	r.silentOn(sup, hzSupervisor, from, to, "supervisor in "+m.String())
	return heard
}

// lastHeard is the arrival time of the frame after the last one carrying hz since since (since
// itself when none did).
func lastHeard(c *testphone.Call, hz float64, since time.Time) time.Time {
	last := since
	fs := c.Frames()
	for i, f := range fs {
		if f.At.Before(since) || !slices.Contains(f.Present, hz) {
			continue
		}
		last = f.At
		if i+1 < len(fs) {
			last = fs[i+1].At
		}
	}
	return last
}

// TestE2EModesByEar: customer (440 Hz) calls agent 744 (1000 Hz) with a plain Dial(); supervisor
// 700 (2000 Hz) dials *90744 and switches through all six mode changes with DTMF. Each mode is
// judged by what each phone hears; at every switch the call's own tones must not break.
func TestE2EModesByEar(t *testing.T) {
	r := newRig(t)
	customer := r.phone("800", hzCustomer, testphone.AutoAnswer)
	agent := r.phone("744", hzAgent, testphone.AutoAnswer)
	supervisor := r.phone("700", hzSupervisor, testphone.AutoAnswer)
	c := r.connect(customer, agent, "744")

	sup, answered := r.dial(supervisor, "*90744")
	tc := r.hears(sup, hzCustomer, "supervisor")
	ta := r.hears(sup, hzAgent, "supervisor")
	last := tc
	if ta.After(tc) {
		last = ta
	}
	join := last.Sub(answered)
	t.Logf("join latency (answered -> both call tones heard): %v", join)
	r.expectMode(dialplan.Spy, dialplan.Spy, c, sup, answered)
	// Silent monitoring is silent: no announcement beep by default.
	r.silentOn(c.agent, toneBeep, answered.Add(-time.Second), time.Now(), "agent when the supervisor joined")
	r.silentOn(c.customer, toneBeep, answered.Add(-time.Second), time.Now(), "customer when the supervisor joined")

	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	live, err := r.store.ListSessions(ctx, "acme")
	if err != nil || len(live) != 1 {
		t.Fatalf("live sessions: %v %+v", err, live)
	}
	s := live[0]
	if s.Supervisor != "700" || s.Agent != "744" || s.Mode != "spy" || s.State != store.StateActive || s.Origin != "feature_code" {
		t.Fatalf("session record: %+v", s)
	}

	switches := r.sixSwitches(ctx, c, sup, s.ID)
	t.Logf("switch latency (DTMF end -> change heard), spy->whisper->barge->spy->barge->whisper->spy: %v", switches)

	// The current mode's digit does nothing; other digits are ignored and never reach the call.
	if err := sup.SendDTMF(ctx, "0"); err != nil {
		t.Fatal(err)
	}
	if err := sup.SendDTMF(ctx, "7"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := c.agent.DTMFReceived(); len(got) > 0 {
		t.Errorf("agent received the supervisor's digits %v", got)
	}
	if got := c.customer.DTMFReceived(); len(got) > 0 {
		t.Errorf("customer received the supervisor's digits %v", got)
	}

	// Supervisor hangs up: snoop and bridge go, the call goes on.
	if err := sup.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r.assertClean("acme")
	r.hearsAfter(c.customer, time.Now(), hzAgent, true, "customer after the supervisor left")
	r.hearsAfter(c.agent, time.Now(), hzCustomer, true, "agent after the supervisor left")

	es := r.audit("acme")
	var changes []string
	for _, e := range es {
		if e.Action == "mode_change" && e.Outcome == "allowed" {
			changes = append(changes, e.Extra["to"])
		}
	}
	want := []string{"whisper", "barge", "spy", "barge", "whisper", "spy"}
	if !slices.Equal(changes, want) {
		t.Errorf("audited mode changes %v, want %v", changes, want)
	}
	if _, ok := findAudit(es, "join", "allowed", ""); !ok {
		t.Error("no join audit entry")
	}
	if e, ok := findAudit(es, "end", "ok", ReasonSupervisorHangup); !ok || e.Actor != "700" || e.Target != "744" {
		t.Errorf("end audit entry: %+v (found %v)", e, ok)
	}
	ended, err := r.store.GetSession(ctx, s.ID)
	if err != nil || ended.State != store.StateEnded || ended.EndReason != ReasonSupervisorHangup {
		t.Fatalf("ended session: %v %+v", err, ended)
	}
	for _, m := range []string{"spy", "whisper", "barge"} {
		if ended.ModeTime[m] <= 0 {
			t.Errorf("no time recorded in %s: %v", m, ended.ModeTime)
		}
	}
	fmt.Fprintf(testWriter{t}, "figures: join=%v switches=%v\n", join, switches)
}

// sixSwitches makes all six mode changes with DTMF (0 spy, 1 whisper, 2 barge), each judged by
// ear with no gap in the call's own audio, and returns the switch latencies (DTMF end -> the
// change heard).
func (r *rig) sixSwitches(ctx context.Context, c call, sup *testphone.Call, sessionID string) []time.Duration {
	t := r.t
	t.Helper()
	digits := map[dialplan.Mode]string{dialplan.Spy: "0", dialplan.Whisper: "1", dialplan.Barge: "2"}
	seq := []dialplan.Mode{dialplan.Whisper, dialplan.Barge, dialplan.Spy, dialplan.Barge, dialplan.Whisper, dialplan.Spy}
	var switches []time.Duration
	prev := dialplan.Spy
	for _, m := range seq {
		if err := sup.SendDTMF(ctx, digits[m]); err != nil {
			t.Fatal(err)
		}
		sent := sup.DTMFSent()
		end := sent[len(sent)-1].End
		r.dtmfEnd = end
		heard := r.expectMode(prev, m, c, sup, sent[len(sent)-1].Start)
		switches = append(switches, heard.Sub(end))
		prev = m
		// No gap in the call's own audio at the switch, for either party or the supervisor.
		from, to := end.Add(-300*time.Millisecond), time.Now()
		r.noGap("customer hears agent at the switch to "+m.String(), c.customer, c.agent, hzAgent, from, to)
		r.noGap("agent hears customer at the switch to "+m.String(), c.agent, c.customer, hzCustomer, from, to)
		r.noGap("supervisor hears customer at the switch to "+m.String(), sup, c.customer, hzCustomer, from, to)
		r.noGap("supervisor hears agent at the switch to "+m.String(), sup, c.agent, hzAgent, from, to)
		waitFor(t, 2*time.Second, "mode recorded", func() bool {
			got, err := r.store.GetSession(ctx, sessionID)
			return err == nil && got.Mode == m.String()
		})
	}
	return switches
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
