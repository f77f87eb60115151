package app

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
	"github.com/earpiece/earpiece/store"
)

// endedSession waits until the tenant's only session of supervisor is ended and returns it.
func (r *rig) endedSession(tenant, supervisor string) store.Session {
	r.T.Helper()
	var found store.Session
	e2etest.WaitFor(r.T, 5*time.Second, "session ended", func() bool {
		for _, e := range r.Audit(tenant) {
			if e.Action != "end" || e.Actor != supervisor {
				continue
			}
			s, err := r.Store.GetSession(r.Ctx, e.Session)
			if err == nil && s.State == store.StateEnded {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// onceBeforeSnoop has the first session that is about to snoop the agent's channel run f first,
// with 2 s to do it.
func (r *rig) onceBeforeSnoop(f func(ctx context.Context, s *session)) {
	var once sync.Once
	r.app.hooks.beforeSnoop = func(s *session, _ ari.ChannelID) {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			f(ctx, s)
		})
	}
	// Publish the hook to the session goroutines: the dispatcher takes a.mu on every StasisStart
	// before it starts a session, so this unlock happens before any read of the hook (the race
	// detector cannot see the order through Asterisk).
	r.app.mu.Lock()
	//lint:ignore SA2001 the empty critical section is the point: a happens-before edge
	r.app.mu.Unlock()
}

// TestE2ECallEndsUnderSupervision: the customer hangs up while a supervisor barges in; the
// supervisor hears the end tone and is hung up, and everything earpiece made is gone.
func TestE2ECallEndsUnderSupervision(t *testing.T) {
	r := newRig(t)
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	sup, _ := r.Dial(r.Phone("700", hzSupervisor, testphone.AutoAnswer), "*92744")
	r.Hears(c.Customer, hzSupervisor, "customer (barge)")
	r.Hears(c.Agent, hzSupervisor, "agent (barge)")

	ctx, cancel := context.WithTimeout(r.Ctx, 10*time.Second)
	defer cancel()
	hungUp := time.Now()
	if err := c.Customer.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r.HearsAfter(sup, hungUp, e2etest.ToneRefusalLow, true, "supervisor hears the end tone")
	r.AwaitEnded(sup, 5*time.Second, "supervisor after the call ended")
	r.AssertClean("acme")
	s := r.endedSession("acme", "700")
	if s.EndReason != ReasonCallEnded {
		t.Errorf("end reason %q, want %q", s.EndReason, ReasonCallEnded)
	}
}

// TestE2ESupervisorLeavesMidSetup: the supervisor's channel hangs up after the join was accepted
// but before the snoop's StasisStart: the snoop and the bridge are removed, nothing is left.
func TestE2ESupervisorLeavesMidSetup(t *testing.T) {
	r := newRig(t)
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	r.onceBeforeSnoop(func(ctx context.Context, s *session) {
		if err := r.Client.Hangup(ctx, s.supChan, "normal"); err != nil {
			t.Errorf("hangup supervisor: %v", err)
		}
		// Hold the session until the dispatcher has routed the supervisor's StasisEnd.
		for ctx.Err() == nil {
			s.mbox.mu.Lock()
			gone := false
			for _, v := range s.mbox.q {
				switch e := s.classify(v).(type) {
				case evChannelEnd:
					gone = gone || e.id == s.supChan
				case evHangupRequest:
					gone = gone || e.id == s.supChan
				}
			}
			s.mbox.mu.Unlock()
			if gone {
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	ctx, cancel := context.WithTimeout(r.Ctx, 10*time.Second)
	defer cancel()
	supPhone := r.Phone("700", hzSupervisor, testphone.AutoAnswer)
	call, err := supPhone.Call(ctx, "*90744")
	if err == nil {
		r.AwaitEnded(call, 5*time.Second, "supervisor")
	}
	r.AssertClean("acme")
	if s := r.endedSession("acme", "700"); s.EndReason != ReasonSupervisorHangup {
		t.Errorf("end reason %q, want %q", s.EndReason, ReasonSupervisorHangup)
	}
	r.HearsAfter(c.Customer, time.Now(), hzAgent, true, "customer after the aborted join")
}

// TestE2EAgentHangsUpDuringJoin: the agent's call ends between the lookup and the snoop: the
// supervisor is told by ear and hung up, and nothing is left.
func TestE2EAgentHangsUpDuringJoin(t *testing.T) {
	r := newRig(t)
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	r.onceBeforeSnoop(func(ctx context.Context, s *session) {
		if err := r.Client.Hangup(ctx, s.m.agentChan, "normal"); err != nil {
			t.Errorf("hangup agent: %v", err)
		}
	})
	sup, _ := r.Dial(r.Phone("700", hzSupervisor, testphone.AutoAnswer), "*90744")
	r.Hears(sup, e2etest.ToneRefusalLow, "supervisor of a call that ended during the join")
	r.AwaitEnded(sup, 5*time.Second, "supervisor")
	r.AwaitEnded(c.Customer, 5*time.Second, "customer of the ended call")
	r.AssertClean("acme")
	if s := r.endedSession("acme", "700"); s.EndReason != ReasonCallEnded && s.EndReason != ReasonError {
		t.Errorf("end reason %q, want call_ended or error", s.EndReason)
	}
}

// TestE2EQueueCall: the agent takes the call through a queue, behind a Local channel. earpiece
// snoops the agent's own PJSIP channel, and all six switches work as on a plain call.
func TestE2EQueueCall(t *testing.T) {
	r := newRig(t)
	c := r.Connect(r.Phone("801", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "600")
	sup, answered := r.Dial(r.Phone("700", hzSupervisor, testphone.AutoAnswer), "*90744")
	r.ExpectMode(e2etest.ModeChange{From: dialplan.Spy, To: dialplan.Spy, Asked: answered}, c, sup)

	ctx, cancel := context.WithTimeout(r.Ctx, 30*time.Second)
	defer cancel()
	live, err := r.Store.ListSessions(ctx, "acme")
	if err != nil || len(live) != 1 {
		t.Fatalf("live sessions: %v %+v", err, live)
	}
	ch, err := r.Client.GetChannel(ctx, ari.ChannelID(live[0].AgentChannel))
	if err != nil || !strings.HasPrefix(ch.Name, "PJSIP/744-") {
		t.Fatalf("snooped channel %q (%v), want the agent's PJSIP channel", ch.Name, err)
	}
	switches := r.sixSwitches(ctx, c, sup, live[0].ID)
	t.Logf("queue call: switch latencies %v", switches)
	if err := sup.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r.AssertClean("acme")
	r.HearsAfter(c.Customer, time.Now(), hzAgent, true, "customer after supervision")
}

// TestE2ETwoSupervisors: two supervisors listen to one call; only one may talk at a time. The
// second one's whisper is refused (short congestion, audited) until the first goes back to spy.
func TestE2ETwoSupervisors(t *testing.T) {
	r := newRig(t)
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	adam, _ := r.Dial(r.Phone("700", hzSupervisor, testphone.AutoAnswer), "*90744")
	beth, _ := r.Dial(r.Phone("701", e2etest.ToneSupervisor2, testphone.AutoAnswer), "*90744")
	for _, s := range []*testphone.Call{adam, beth} {
		r.Hears(s, hzCustomer, "supervisor")
		r.Hears(s, hzAgent, "supervisor")
	}
	ctx, cancel := context.WithTimeout(r.Ctx, 20*time.Second)
	defer cancel()
	press := func(s *testphone.Call, d string) time.Time {
		t.Helper()
		if err := s.SendDTMF(ctx, d); err != nil {
			t.Fatal(err)
		}
		sent := s.DTMFSent()
		return sent[len(sent)-1].Start
	}

	at := press(adam, "1")
	r.HearsAfter(c.Agent, at, hzSupervisor, true, "agent hears Adam's whisper")
	at = press(beth, "1")
	r.HearsAfter(beth, at, e2etest.ToneRefusalLow, true, "Beth hears her whisper refused")
	from := time.Now()
	time.Sleep(300 * time.Millisecond)
	r.SilentOn(c.Agent, e2etest.ToneSupervisor2, from, time.Now(), "agent while Beth's whisper is refused")
	if e, ok := e2etest.FindAudit(r.Audit("acme"), "mode_change", "refused", RefuseTalkerBusy); !ok || e.Actor != "701" || e.Repeats != 0 {
		t.Errorf("talker_busy refusal audit: %+v %v", e, ok)
	}
	// One digit, one refusal: the DTMF event reaches the app once, although it matches two of its
	// subscriptions (the channel in Stasis and the PJSIP endpoints).
	refusals := 0
	for _, e := range r.Audit("acme") {
		if e.Action == "mode_change" && e.Reason == RefuseTalkerBusy {
			refusals += 1 + int(e.Repeats)
		}
	}
	if refusals != 1 {
		t.Errorf("one refused digit audited %d times", refusals)
	}
	if d := r.Client.Stats().Duplicates; d == 0 {
		t.Error("no duplicate event dropped: the digit should have come twice (channel and endpoint subscriptions)")
	}

	at = press(adam, "0")
	r.HearsAfter(c.Agent, at, hzSupervisor, false, "Adam back to spy")
	at = press(beth, "1")
	r.HearsAfter(c.Agent, at, e2etest.ToneSupervisor2, true, "agent hears Beth's whisper")
	r.SilentOn(c.Customer, e2etest.ToneSupervisor2, time.Now().Add(-200*time.Millisecond), time.Now(), "customer during Beth's whisper")

	live, err := r.Store.ListSessions(ctx, "acme")
	if err != nil || len(live) != 2 {
		t.Fatalf("live sessions: %v %d", err, len(live))
	}
	if live[0].AgentChannel != live[1].AgentChannel {
		t.Errorf("sessions on different agent channels: %s %s", live[0].AgentChannel, live[1].AgentChannel)
	}
	if err := c.Customer.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r.AwaitEnded(adam, 5*time.Second, "Adam")
	r.AwaitEnded(beth, 5*time.Second, "Beth")
	r.AssertClean("acme")
	// The talker slot was released with the session: nothing of the call is left in Redis.
	keys, err := r.RDB.Keys(ctx, store.Prefix+"claim:*").Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("claims left: %v %v", keys, err)
	}
}

// TestE2EAnnounceBeep: a tenant with announce: beep has the call hear a short beep (1400 Hz)
// when a supervisor joins, even in spy mode; the spy session itself stays silent.
func TestE2EAnnounceBeep(t *testing.T) {
	r := newRig(t, func(_ *Config, d *config.Config) { d.Tenants[0].Announce = config.AnnounceBeep })
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	sup, answered := r.Dial(r.Phone("700", hzSupervisor, testphone.AutoAnswer), "*90744")
	r.HearsAfterN(c.Agent, answered, e2etest.ToneBeep, 3, "agent hears the join beep")
	r.HearsAfterN(c.Customer, answered, e2etest.ToneBeep, 3, "customer hears the join beep")
	r.Hears(sup, hzCustomer, "supervisor")
	from := time.Now().Add(200 * time.Millisecond)
	time.Sleep(600 * time.Millisecond)
	r.SilentOn(c.Agent, e2etest.ToneBeep, from, time.Now(), "agent after the beep")
	r.SilentOn(c.Agent, hzSupervisor, answered, time.Now(), "agent (spy)")
	ctx, cancel := context.WithTimeout(r.Ctx, 5*time.Second)
	defer cancel()
	if err := sup.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r.AssertClean("acme")
}
