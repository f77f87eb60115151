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
	"github.com/earpiece/earpiece/internal/testphone"
	"github.com/earpiece/earpiece/store"
)

// endedSession waits until the tenant's only session of supervisor is ended and returns it.
func (r *rig) endedSession(tenant, supervisor string) store.Session {
	r.t.Helper()
	var found store.Session
	waitFor(r.t, 5*time.Second, "session ended", func() bool {
		for _, e := range r.audit(tenant) {
			if e.Action != "end" || e.Actor != supervisor {
				continue
			}
			s, err := r.store.GetSession(r.ctx, e.Session)
			if err == nil && s.State == store.StateEnded {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// TestE2ECallEndsUnderSupervision: the customer hangs up while a supervisor barges in; the
// supervisor hears the end tone and is hung up, and everything earpiece made is gone.
func TestE2ECallEndsUnderSupervision(t *testing.T) {
	r := newRig(t)
	c := r.connect(r.phone("800", hzCustomer, testphone.AutoAnswer), r.phone("744", hzAgent, testphone.AutoAnswer), "744")
	sup, _ := r.dial(r.phone("700", hzSupervisor, testphone.AutoAnswer), "*92744")
	r.hears(c.customer, hzSupervisor, "customer (barge)")
	r.hears(c.agent, hzSupervisor, "agent (barge)")

	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	hungUp := time.Now()
	if err := c.customer.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r.hearsAfter(sup, hungUp, toneRefusalLow, true, "supervisor hears the end tone")
	r.awaitEnded(sup, 5*time.Second, "supervisor after the call ended")
	r.assertClean("acme")
	s := r.endedSession("acme", "700")
	if s.EndReason != ReasonCallEnded {
		t.Errorf("end reason %q, want %q", s.EndReason, ReasonCallEnded)
	}
}

// TestE2ESupervisorLeavesMidSetup: the supervisor's channel hangs up after the join was accepted
// but before the snoop's StasisStart: the snoop and the bridge are removed, nothing is left.
func TestE2ESupervisorLeavesMidSetup(t *testing.T) {
	r := newRig(t)
	c := r.connect(r.phone("800", hzCustomer, testphone.AutoAnswer), r.phone("744", hzAgent, testphone.AutoAnswer), "744")
	var once sync.Once
	r.app.hooks.beforeSnoop = func(s *session, _ ari.ChannelID) {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := r.client.Hangup(ctx, s.supChan, "normal"); err != nil {
				t.Errorf("hangup supervisor: %v", err)
			}
			// Hold the session until the dispatcher has routed the supervisor's StasisEnd.
			for ctx.Err() == nil {
				s.mbox.mu.Lock()
				gone := false
				for _, v := range s.mbox.q {
					gone = gone || s.isSupervisorGone(v)
				}
				s.mbox.mu.Unlock()
				if gone {
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	supPhone := r.phone("700", hzSupervisor, testphone.AutoAnswer)
	call, err := supPhone.Call(ctx, "*90744")
	if err == nil {
		r.awaitEnded(call, 5*time.Second, "supervisor")
	}
	r.assertClean("acme")
	if s := r.endedSession("acme", "700"); s.EndReason != ReasonSupervisorHangup {
		t.Errorf("end reason %q, want %q", s.EndReason, ReasonSupervisorHangup)
	}
	r.hearsAfter(c.customer, time.Now(), hzAgent, true, "customer after the aborted join")
}

// TestE2EAgentHangsUpDuringJoin: the agent's call ends between the lookup and the snoop: the
// supervisor is told by ear and hung up, and nothing is left.
func TestE2EAgentHangsUpDuringJoin(t *testing.T) {
	r := newRig(t)
	c := r.connect(r.phone("800", hzCustomer, testphone.AutoAnswer), r.phone("744", hzAgent, testphone.AutoAnswer), "744")
	var once sync.Once
	r.app.hooks.beforeSnoop = func(s *session, _ ari.ChannelID) {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := r.client.Hangup(ctx, s.agentChan, "normal"); err != nil {
				t.Errorf("hangup agent: %v", err)
			}
		})
	}
	sup, _ := r.dial(r.phone("700", hzSupervisor, testphone.AutoAnswer), "*90744")
	r.hears(sup, toneRefusalLow, "supervisor of a call that ended during the join")
	r.awaitEnded(sup, 5*time.Second, "supervisor")
	r.awaitEnded(c.customer, 5*time.Second, "customer of the ended call")
	r.assertClean("acme")
	if s := r.endedSession("acme", "700"); s.EndReason != ReasonCallEnded && s.EndReason != ReasonError {
		t.Errorf("end reason %q, want call_ended or error", s.EndReason)
	}
}

// TestE2EQueueCall: the agent takes the call through a queue, behind a Local channel. earpiece
// snoops the agent's own PJSIP channel, and all six switches work as on a plain call.
func TestE2EQueueCall(t *testing.T) {
	r := newRig(t)
	c := r.connect(r.phone("801", hzCustomer, testphone.AutoAnswer), r.phone("744", hzAgent, testphone.AutoAnswer), "600")
	sup, answered := r.dial(r.phone("700", hzSupervisor, testphone.AutoAnswer), "*90744")
	r.expectMode(dialplan.Spy, dialplan.Spy, c, sup, answered)

	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	live, err := r.store.ListSessions(ctx, "acme")
	if err != nil || len(live) != 1 {
		t.Fatalf("live sessions: %v %+v", err, live)
	}
	ch, err := r.client.GetChannel(ctx, ari.ChannelID(live[0].AgentChannel))
	if err != nil || !strings.HasPrefix(ch.Name, "PJSIP/744-") {
		t.Fatalf("snooped channel %q (%v), want the agent's PJSIP channel", ch.Name, err)
	}
	switches := r.sixSwitches(ctx, c, sup, live[0].ID)
	t.Logf("queue call: switch latencies %v", switches)
	if err := sup.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r.assertClean("acme")
	r.hearsAfter(c.customer, time.Now(), hzAgent, true, "customer after supervision")
}

// TestE2ETwoSupervisors: two supervisors listen to one call; only one may talk at a time. The
// second one's whisper is refused (short congestion, audited) until the first goes back to spy.
func TestE2ETwoSupervisors(t *testing.T) {
	r := newRig(t)
	c := r.connect(r.phone("800", hzCustomer, testphone.AutoAnswer), r.phone("744", hzAgent, testphone.AutoAnswer), "744")
	adam, _ := r.dial(r.phone("700", hzSupervisor, testphone.AutoAnswer), "*90744")
	beth, _ := r.dial(r.phone("701", toneSupervisor2, testphone.AutoAnswer), "*90744")
	for _, s := range []*testphone.Call{adam, beth} {
		r.hears(s, hzCustomer, "supervisor")
		r.hears(s, hzAgent, "supervisor")
	}
	ctx, cancel := context.WithTimeout(r.ctx, 20*time.Second)
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
	r.hearsAfter(c.agent, at, hzSupervisor, true, "agent hears Adam's whisper")
	at = press(beth, "1")
	r.hearsAfter(beth, at, toneRefusalLow, true, "Beth hears her whisper refused")
	from := time.Now()
	time.Sleep(300 * time.Millisecond)
	r.silentOn(c.agent, toneSupervisor2, from, time.Now(), "agent while Beth's whisper is refused")
	if e, ok := findAudit(r.audit("acme"), "mode_change", "refused", RefuseTalkerBusy); !ok || e.Actor != "701" {
		t.Errorf("talker_busy refusal audit: %+v %v", e, ok)
	}

	at = press(adam, "0")
	r.hearsAfter(c.agent, at, hzSupervisor, false, "Adam back to spy")
	at = press(beth, "1")
	r.hearsAfter(c.agent, at, toneSupervisor2, true, "agent hears Beth's whisper")
	r.silentOn(c.customer, toneSupervisor2, time.Now().Add(-200*time.Millisecond), time.Now(), "customer during Beth's whisper")

	live, err := r.store.ListSessions(ctx, "acme")
	if err != nil || len(live) != 2 {
		t.Fatalf("live sessions: %v %d", err, len(live))
	}
	if live[0].AgentChannel != live[1].AgentChannel {
		t.Errorf("sessions on different agent channels: %s %s", live[0].AgentChannel, live[1].AgentChannel)
	}
	if err := c.customer.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r.awaitEnded(adam, 5*time.Second, "Adam")
	r.awaitEnded(beth, 5*time.Second, "Beth")
	r.assertClean("acme")
	// The talker slot was released with the session: nothing of the call is left in Redis.
	keys, err := r.rdb.Keys(ctx, "earpiece:v1:claim:*").Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("claims left: %v %v", keys, err)
	}
}

// TestE2EAnnounceBeep: a tenant with announce: beep has the call hear a short beep (1400 Hz)
// when a supervisor joins, even in spy mode; the spy session itself stays silent.
func TestE2EAnnounceBeep(t *testing.T) {
	r := newRig(t)
	cfg, err := config.Load("testdata/e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Tenants[0].Announce = config.AnnounceBeep
	dir, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.app.dir = dir // before any session: the app reads it only from session goroutines
	c := r.connect(r.phone("800", hzCustomer, testphone.AutoAnswer), r.phone("744", hzAgent, testphone.AutoAnswer), "744")
	sup, answered := r.dial(r.phone("700", hzSupervisor, testphone.AutoAnswer), "*90744")
	r.hearsAfterN(c.agent, answered, toneBeep, 3, "agent hears the join beep")
	r.hearsAfterN(c.customer, answered, toneBeep, 3, "customer hears the join beep")
	r.hears(sup, hzCustomer, "supervisor")
	from := time.Now().Add(200 * time.Millisecond)
	time.Sleep(600 * time.Millisecond)
	r.silentOn(c.agent, toneBeep, from, time.Now(), "agent after the beep")
	r.silentOn(c.agent, hzSupervisor, answered, time.Now(), "agent (spy)")
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	if err := sup.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r.assertClean("acme")
}
