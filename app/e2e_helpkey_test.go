package app

import (
	"context"
	"testing"
	"time"

	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
	"github.com/earpiece/earpiece/store"
)

// TestE2EHelpRaiseByKey: the agent presses the tenant's help key (*0) in a customer's call.
// Asterisk's bridge feature takes the keys: the customer's phone receives no DTMF, keeps hearing
// the agent (no gap beyond the keys' own RFC 4733 time) and never hears the confirmation; the
// agent hears a high beep. The request is open on that call, raised by the agent via
// "phone", audited and notified. Pressing again while it is open raises nothing: the agent hears
// one low tone instead, the refusal is audited, the customer still hears nothing of it.
func TestE2EHelpRaiseByKey(t *testing.T) {
	r, n := newAPIRig(t)
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	call := r.awaitCall(adamKey, "744")
	ctx, cancel := context.WithTimeout(r.Ctx, 30*time.Second)
	defer cancel()
	key := dialplan.DefaultRules().HelpRaiseDTMF

	// press sends the help key from the agent's phone and returns when its first key started and
	// its last ended.
	press := func() (first, last time.Time) {
		t.Helper()
		before := len(c.Agent.DTMFSent())
		if err := c.Agent.SendDTMF(ctx, key); err != nil {
			t.Fatal(err)
		}
		sent := c.Agent.DTMFSent()[before:]
		if len(sent) != len(key) {
			t.Fatalf("agent's phone sent %d keys, want %d", len(sent), len(key))
		}
		return sent[0].Start, sent[len(sent)-1].End
	}

	start := time.Now()
	first, last := press()
	heard := r.HearsAfterN(c.Agent, first, e2etest.ToneHelpRaised, 5, "agent after "+key)
	t.Logf("%s: confirmation heard %v after the last key", key, heard.Sub(last).Round(time.Millisecond))
	var h store.HelpRequest
	e2etest.WaitFor(t, 5*time.Second, "help request raised by "+key, func() bool {
		hs, err := r.app.HelpRequests(ctx, carlKey, HelpFilter{Agent: "744"})
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) > 1 {
			t.Fatalf("%d requests after one press: %+v", len(hs), hs)
		}
		if len(hs) == 1 {
			h = hs[0]
		}
		return len(hs) == 1
	})
	if h.State != store.HelpOpen || h.CallID != call.ID || h.Via != "phone" || h.RaisedBy != "744" {
		t.Errorf("request raised by the key: %+v (call %s)", h, call.ID)
	}
	if e, ok := e2etest.FindAudit(r.Audit("acme"), "help_raise", "allowed", ""); !ok || e.Actor != "744" || e.Trigger != "phone" || e.Call != call.ID {
		t.Errorf("raise by key audited as %+v", e)
	}
	if !n.has("acme", NoteHelpRaised) {
		t.Errorf("no help.raised notification (got %v)", n.types("acme"))
	}
	if got := r.awaitCall(adamKey, "744"); !got.NeedsHelp || got.HelpRequest != h.ID {
		t.Errorf("call after the key: needs_help=%v help_request=%q, want true %q", got.NeedsHelp, got.HelpRequest, h.ID)
	}
	// The customer kept hearing the agent once the keys were sent (RFC 4733 replaces the phone's
	// audio while a key is sent, whoever receives it), through the beep.
	settled := heard.Add(600 * time.Millisecond)
	listenUntil(ctx, settled)
	r.HearsAfter(c.Customer, settled, hzAgent, true, "customer after the beep")
	r.NoGap("customer hearing the agent after the keys", c.Customer, c.Agent, hzAgent, last.Add(40*time.Millisecond), settled)
	r.NoGap("agent hearing the customer", c.Agent, c.Customer, hzCustomer, start, settled)

	// Again, while the request is open: nothing raised, one low tone.
	first2, _ := press()
	low := r.HearsAfterN(c.Agent, first2, e2etest.ToneRefusalLow, 5, "agent pressing "+key+" again")
	done := low.Add(600 * time.Millisecond)
	listenUntil(ctx, done)
	r.HearsAfter(c.Customer, done, hzAgent, true, "customer after the second press")
	if p := c.Agent.Heard(e2etest.ToneHelpRaised, first2, done); p.Present > 0 {
		t.Errorf("agent heard the raised confirmation on the second press (%d frames)", p.Present)
	}
	e2etest.WaitFor(t, 5*time.Second, "second press audited as "+RefuseHelpExists, func() bool {
		e, ok := e2etest.FindAudit(r.Audit("acme"), "help_raise", "refused", RefuseHelpExists)
		return ok && e.Actor == "744"
	})
	if hs, err := r.app.HelpRequests(ctx, carlKey, HelpFilter{Agent: "744"}); err != nil || len(hs) != 1 || hs[0].State != store.HelpOpen {
		t.Errorf("requests after the second press: %+v, %v", hs, err)
	}

	// The customer got none of it.
	if got := c.Customer.DTMFReceived(); len(got) > 0 {
		t.Errorf("customer's phone received DTMF %q", got)
	}
	r.SilentOn(c.Customer, e2etest.ToneHelpRaised, start, done, "customer")
	r.SilentOn(c.Customer, e2etest.ToneRefusalLow, start, done, "customer")
	r.AssertClean("acme")
}

// TestE2EHelpKeyAgentCalls: when the agent is the caller (744 dials the customer 800), the help
// key is on for the agent's channel (Gosub before Dial) and not for the called customer's (the
// variable is not inherited): the customer's *0 reaches the agent as plain DTMF, the agent's *0
// raises a request on that call and is confirmed to the agent alone.
func TestE2EHelpKeyAgentCalls(t *testing.T) {
	r, _ := newAPIRig(t)
	// Connect's roles are caller and callee: the agent calls, so it is Connect's "customer".
	p := r.Connect(r.Phone("744", hzCustomer, testphone.AutoAnswer), r.Phone("800", hzAgent, testphone.AutoAnswer), "800")
	agent, customer := p.Customer, p.Agent
	call := r.awaitCall(adamKey, "744")
	ctx, cancel := context.WithTimeout(r.Ctx, 10*time.Second)
	defer cancel()
	key := dialplan.DefaultRules().HelpRaiseDTMF

	if err := customer.SendDTMF(ctx, key); err != nil {
		t.Fatal(err)
	}
	if got, err := agent.AwaitDTMF(ctx, len(key)); err != nil || len(got) != len(key) {
		t.Fatalf("the calling agent received %q, %v; want the customer's %s", got, err, key)
	}

	since := time.Now()
	if err := agent.SendDTMF(ctx, key); err != nil {
		t.Fatal(err)
	}
	done := r.HearsAfterN(agent, since, e2etest.ToneHelpRaised, 5, "calling agent after "+key).Add(600 * time.Millisecond)
	listenUntil(ctx, done)
	e2etest.WaitFor(t, 5*time.Second, "help request raised by the calling agent", func() bool {
		hs, err := r.app.HelpRequests(ctx, carlKey, HelpFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(hs) == 1 && hs[0].Agent == "744" && hs[0].CallID == call.ID
	})
	r.HearsAfter(customer, done, hzCustomer, true, "customer after the agent's key") // the agent's tone
	if got := customer.DTMFReceived(); len(got) > 0 {
		t.Errorf("customer's phone received DTMF %q", got)
	}
	r.SilentOn(customer, e2etest.ToneHelpRaised, since, done, "customer")
	r.AssertClean("acme")
}

// TestE2EHelpKeyQueueCall: a queue call, where the agent's phone is dialed by a Local channel
// (queue-agents runs the agent subroutine as Dial's pre-dial handler): the key raises the request
// on the agent's own channel and the customer receives no DTMF.
func TestE2EHelpKeyQueueCall(t *testing.T) {
	r, _ := newAPIRig(t)
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "600")
	call := r.awaitCall(adamKey, "744")
	ctx, cancel := context.WithTimeout(r.Ctx, 10*time.Second)
	defer cancel()
	since := time.Now()
	if err := c.Agent.SendDTMF(ctx, dialplan.DefaultRules().HelpRaiseDTMF); err != nil {
		t.Fatal(err)
	}
	done := r.HearsAfterN(c.Agent, since, e2etest.ToneHelpRaised, 5, "queue agent after the key").Add(600 * time.Millisecond)
	e2etest.WaitFor(t, 5*time.Second, "help request on the queue call", func() bool {
		hs, err := r.app.HelpRequests(ctx, carlKey, HelpFilter{Agent: "744"})
		if err != nil {
			t.Fatal(err)
		}
		return len(hs) == 1 && hs[0].CallID == call.ID
	})
	listenUntil(ctx, done)
	if got := c.Customer.DTMFReceived(); len(got) > 0 {
		t.Errorf("customer's phone received DTMF %q", got)
	}
	r.SilentOn(c.Customer, e2etest.ToneHelpRaised, since, done, "customer")
	r.AssertClean("acme")
}

// listenUntil lets the phones listen until t (or ctx ends): the by-ear checks of a window need
// all of its frames, and the phones' tone waits count only frames from their since onwards once
// that moment has passed.
func listenUntil(ctx context.Context, t time.Time) {
	select {
	case <-time.After(time.Until(t)):
	case <-ctx.Done():
	}
}
