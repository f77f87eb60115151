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

// Help requests on the real Asterisk, judged by ear.

// TestE2EHelpAcceptByAPI: the agent raises a help request with its own key; a supervisor accepts
// it by API with a mode; earpiece rings the supervisor's phone (caller id: the agent), and on
// answer the supervisor hears both parties and the agent hears the supervisor (whisper), the
// customer does not. The session carries the request's id, the request names who helps.
func TestE2EHelpAcceptByAPI(t *testing.T) {
	r, n := newAPIRig(t)
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	supPhone := r.Phone("700", hzSupervisor, testphone.Manual)
	r.awaitCall(adamKey, "744")
	ctx, cancel := context.WithTimeout(r.Ctx, 30*time.Second)
	defer cancel()

	h, err := r.app.Raise(ctx, johnKey, RaiseRequest{Reason: "customer wants a refund"})
	if err != nil {
		t.Fatal(err)
	}
	if call := r.awaitCall(adamKey, "744"); !call.NeedsHelp || call.HelpRequest != h.ID {
		t.Errorf("call after the raise: needs_help=%v help_request=%q, want true %q", call.NeedsHelp, call.HelpRequest, h.ID)
	}
	acc, err := r.app.Accept(ctx, adamKey, h.ID, AcceptRequest{Mode: dialplan.Whisper})
	if err != nil {
		t.Fatal(err)
	}
	if acc.Help.State != store.HelpInProgress || acc.Help.HelpProvidedBy != "700" || acc.Session == nil {
		t.Fatalf("accept answer: %+v session %v", acc.Help, acc.Session)
	}
	if acc.Session.HelpRequest != h.ID || acc.Session.Supervisor != "700" || acc.Session.Agent != "744" {
		t.Errorf("session of the accept: %+v", acc.Session)
	}
	in, err := supPhone.AwaitIncoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.CallerIDNum() != "744" {
		t.Errorf("supervisor's phone shows <%s>, want the agent's number", in.CallerIDNum())
	}
	if err := in.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	r.ExpectMode(e2etest.ModeChange{From: dialplan.Spy, To: dialplan.Whisper, Asked: answered, Quiet: answered}, c, in)

	got, err := r.app.HelpRequest(ctx, adamKey, h.ID)
	if err != nil || got.State != store.HelpInProgress || got.HelpProvidedBy != "700" || got.SessionID != acc.Session.ID {
		t.Errorf("request after the join: %+v, %v", got, err)
	}
	// The agent sees who helps, never the supervision the accept started (a silent one must
	// not show through the request: eventview.go).
	if got, err := r.app.HelpRequest(ctx, johnKey, h.ID); err != nil || got.HelpProvidedBy != "700" || got.SessionID != "" {
		t.Errorf("request after the join, as the agent sees it: %+v, %v", got, err)
	}
	if call := r.awaitCall(adamKey, "744"); call.NeedsHelp || call.HelpRequest != h.ID {
		t.Errorf("call after the accept: needs_help=%v help_request=%q, want false %q", call.NeedsHelp, call.HelpRequest, h.ID)
	}
	if e, ok := e2etest.FindAudit(r.Audit("acme"), "join", "allowed", ""); !ok || e.Extra["help_request"] != h.ID {
		t.Errorf("join not audited against the request: %+v", e)
	}

	// The agent closes the request; the supervision goes on.
	if h, err = r.app.CloseHelp(ctx, johnKey, h.ID); err != nil || h.State != store.HelpClosed {
		t.Fatalf("close: %+v, %v", h, err)
	}
	r.HearsAfter(c.Agent, time.Now(), hzSupervisor, true, "agent after the close")
	for _, typ := range []string{NoteHelpRaised, NoteHelpAccepted, NoteHelpClosed, NoteSupervisionStarted} {
		if !n.has("acme", typ) {
			t.Errorf("no %s notification (got %v)", typ, n.types("acme"))
		}
	}
	if _, err := r.app.Leave(ctx, adamKey, acc.Session.ID); err != nil {
		t.Fatal(err)
	}
	r.AwaitEnded(in, 5*time.Second, "supervisor after DELETE")
	r.AssertClean("acme")
}

// TestE2EHelpAcceptByPhone: the supervisor dials the help code (*93) and is joined in whisper to
// the oldest open request they may accept: heard. With nothing to accept (no request; only a
// request of an agent outside their groups; the request already accepted) they hear congestion,
// audited as nothing_to_accept.
func TestE2EHelpAcceptByPhone(t *testing.T) {
	r, n := newAPIRig(t)
	customer := r.Phone("800", hzCustomer, testphone.AutoAnswer)
	agent := r.Phone("744", hzAgent, testphone.AutoAnswer)
	sup := r.Phone("700", hzSupervisor, testphone.AutoAnswer)
	code := dialplan.DefaultRules().HelpAcceptCode

	t.Run("nothing to accept", func(t *testing.T) {
		r := r.For(t)
		r.expectHelpRefusal(sup, code, true)
	})

	c := r.Connect(customer, agent, "744")
	r.awaitCall(adamKey, "744")
	ctx, cancel := context.WithTimeout(r.Ctx, 30*time.Second)
	defer cancel()
	h, err := r.app.Raise(ctx, carlKey, RaiseRequest{Agent: "744"})
	if err != nil {
		t.Fatal(err)
	}

	in, dialed := r.Dial(sup, code)
	r.ExpectMode(e2etest.ModeChange{From: dialplan.Spy, To: dialplan.Whisper, Asked: dialed, Quiet: dialed}, c, in)
	got, err := r.app.HelpRequest(ctx, adamKey, h.ID)
	if err != nil || got.State != store.HelpInProgress || got.HelpProvidedBy != "700" || got.SessionID == "" {
		t.Fatalf("request after *93: %+v, %v", got, err)
	}
	s, err := r.Store.GetSession(ctx, got.SessionID)
	if err != nil || s.HelpRequest != h.ID || s.Mode != dialplan.Whisper.String() || s.State != store.StateActive {
		t.Errorf("session of the phone accept: %+v, %v", s, err)
	}
	if e, ok := e2etest.FindAudit(r.Audit("acme"), "help_accept", "allowed", ""); !ok || e.Extra["via"] != "phone" || e.Actor != "700" {
		t.Errorf("phone accept audited as %+v", e)
	}
	if !n.has("acme", NoteHelpAccepted) {
		t.Errorf("no help.accepted notification (got %v)", n.types("acme"))
	}
	// DTMF works as in any session: 2 is barge.
	if err := in.SendDTMF(ctx, "2"); err != nil {
		t.Fatal(err)
	}
	sent := in.DTMFSent()
	r.ExpectMode(e2etest.ModeChange{From: dialplan.Whisper, To: dialplan.Barge, Asked: sent[len(sent)-1].Start, Quiet: sent[len(sent)-1].End}, c, in)

	t.Run("already accepted", func(t *testing.T) {
		r := r.For(t)
		r.expectHelpRefusal(r.Phone("701", hzSupervisor, testphone.AutoAnswer), code, false)
	})
	ctxH, cancelH := context.WithTimeout(r.Ctx, 5*time.Second)
	defer cancelH()
	if err := in.Hangup(ctxH); err != nil {
		t.Fatal(err)
	}
	e2etest.WaitFor(t, 5*time.Second, "session ended", func() bool {
		s, err := r.Store.GetSession(ctx, got.SessionID)
		return err == nil && s.State == store.StateEnded
	})
	r.HearsAfter(c.Customer, time.Now(), hzAgent, true, "customer after the supervisor left")
	r.AssertClean("acme")
}

// TestE2EHelpCodeOtherGroup: an open request of an agent outside the supervisor's hunt groups is
// not theirs to accept: *93 is refused audibly and the request stays open.
func TestE2EHelpCodeOtherGroup(t *testing.T) {
	r, _ := newAPIRig(t)
	r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("746", hzAgent, testphone.AutoAnswer), "746")
	sup := r.Phone("700", hzSupervisor, testphone.AutoAnswer)
	r.awaitCall(carlKey, "746")
	ctx, cancel := context.WithTimeout(r.Ctx, 10*time.Second)
	defer cancel()
	h, err := r.app.Raise(ctx, carlKey, RaiseRequest{Agent: "746"})
	if err != nil {
		t.Fatal(err)
	}
	r.expectHelpRefusal(sup, dialplan.DefaultRules().HelpAcceptCode, true)
	if got, err := r.app.HelpRequest(ctx, carlKey, h.ID); err != nil || got.State != store.HelpOpen {
		t.Errorf("request after a refused *93: %+v, %v", got, err)
	}
}

// expectHelpRefusal dials the help code from sup and checks by ear that nothing was accepted:
// congestion, then hung up; audited as nothing_to_accept. With clean, the tenant has no session
// left afterwards (pass false while another supervisor is in a session).
func (r *rig) expectHelpRefusal(sup *testphone.Phone, code string, clean bool) {
	r.T.Helper()
	since := len(r.Audit("acme"))
	c, _ := r.Dial(sup, code)
	r.Hears(c, e2etest.ToneRefusalLow, "supervisor with nothing to accept")
	r.Hears(c, e2etest.ToneRefusalHigh, "supervisor with nothing to accept")
	r.AwaitEnded(c, 5*time.Second, "supervisor with nothing to accept")
	r.SilentOn(c, hzCustomer, time.Time{}, time.Now(), "supervisor with nothing to accept")
	r.SilentOn(c, hzAgent, time.Time{}, time.Now(), "supervisor with nothing to accept")
	if clean {
		r.AssertClean("acme")
	}
	e2etest.WaitFor(r.T, 5*time.Second, code+" refusal audited as "+RefuseNothingToHelp, func() bool {
		e, ok := e2etest.FindAudit(r.Audit("acme")[since:], "join", "refused", RefuseNothingToHelp)
		return ok && e.Actor == sup.User() && e.Extra["dialed"] == code
	})
}
