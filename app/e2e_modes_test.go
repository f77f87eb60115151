package app

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
	"github.com/earpiece/earpiece/store"
)

// TestE2EModesByEar: customer (440 Hz) calls agent 744 (1000 Hz) with a plain Dial(); supervisor
// 700 (2000 Hz) dials *90744 and switches through all six mode changes with DTMF. Each mode is
// judged by what each phone hears; at every switch the call's own tones must not break.
func TestE2EModesByEar(t *testing.T) {
	r := newRig(t)
	customer := r.Phone("800", hzCustomer, testphone.AutoAnswer)
	agent := r.Phone("744", hzAgent, testphone.AutoAnswer)
	supervisor := r.Phone("700", hzSupervisor, testphone.AutoAnswer)
	c := r.Connect(customer, agent, "744")

	sup, answered := r.Dial(supervisor, "*90744")
	tc := r.Hears(sup, hzCustomer, "supervisor")
	ta := r.Hears(sup, hzAgent, "supervisor")
	last := tc
	if ta.After(tc) {
		last = ta
	}
	join := last.Sub(answered)
	t.Logf("join latency (answered -> both call tones heard): %v", join)
	r.ExpectMode(e2etest.ModeChange{From: dialplan.Spy, To: dialplan.Spy, Asked: answered}, c, sup)
	// Silent monitoring is silent: no announcement beep by default.
	r.SilentOn(c.Agent, e2etest.ToneBeep, answered.Add(-time.Second), time.Now(), "agent when the supervisor joined")
	r.SilentOn(c.Customer, e2etest.ToneBeep, answered.Add(-time.Second), time.Now(), "customer when the supervisor joined")

	ctx, cancel := context.WithTimeout(r.Ctx, 30*time.Second)
	defer cancel()
	live, err := r.Store.ListSessions(ctx, "acme")
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
	if got := c.Agent.DTMFReceived(); len(got) > 0 {
		t.Errorf("agent received the supervisor's digits %v", got)
	}
	if got := c.Customer.DTMFReceived(); len(got) > 0 {
		t.Errorf("customer received the supervisor's digits %v", got)
	}

	// Supervisor hangs up: snoop and bridge go, the call goes on.
	if err := sup.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r.AssertClean("acme")
	r.HearsAfter(c.Customer, time.Now(), hzAgent, true, "customer after the supervisor left")
	r.HearsAfter(c.Agent, time.Now(), hzCustomer, true, "agent after the supervisor left")

	es := r.Audit("acme")
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
	if _, ok := e2etest.FindAudit(es, "join", "allowed", ""); !ok {
		t.Error("no join audit entry")
	}
	if e, ok := e2etest.FindAudit(es, "end", "ok", ReasonSupervisorHangup); !ok || e.Actor != "700" || e.Target != "744" {
		t.Errorf("end audit entry: %+v (found %v)", e, ok)
	}
	ended, err := r.Store.GetSession(ctx, s.ID)
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
func (r *rig) sixSwitches(ctx context.Context, c e2etest.Parties, sup *testphone.Call, sessionID string) []time.Duration {
	t := r.T
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
		e2etest.WaitFor(t, 2*time.Second, "mode recorded", func() bool {
			got, err := r.Store.GetSession(ctx, sessionID)
			return err == nil && got.Mode == m.String()
		})
		heard := r.ExpectMode(e2etest.ModeChange{From: prev, To: m, Asked: sent[len(sent)-1].Start, Quiet: end, Settled: time.Now()}, c, sup)
		switches = append(switches, heard.Sub(end))
		prev = m
		// No gap in the call's own audio at the switch, for either party or the supervisor.
		from, to := end.Add(-300*time.Millisecond), time.Now()
		r.NoGap("customer hears agent at the switch to "+m.String(), c.Customer, c.Agent, hzAgent, from, to)
		r.NoGap("agent hears customer at the switch to "+m.String(), c.Agent, c.Customer, hzCustomer, from, to)
		r.NoGap("supervisor hears customer at the switch to "+m.String(), sup, c.Customer, hzCustomer, from, to)
		r.NoGap("supervisor hears agent at the switch to "+m.String(), sup, c.Agent, hzAgent, from, to)
	}
	return switches
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
