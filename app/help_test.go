package app

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// Help requests against fakeARI and a real Redis.

type noteLog struct {
	mu    sync.Mutex
	notes []Notification
}

func (l *noteLog) Notify(n Notification) {
	l.mu.Lock()
	l.notes = append(l.notes, n)
	l.mu.Unlock()
}

func (l *noteLog) types(prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, n := range l.notes {
		if strings.HasPrefix(n.Type, prefix) {
			out = append(out, n.Type)
		}
	}
	return out
}

var (
	pAgent744 = Principal{Tenant: "acme", Role: config.RoleAgent, Extension: "744", KeyName: "john"}
	pAgent746 = Principal{Tenant: "acme", Role: config.RoleAgent, Extension: "746", KeyName: "liam"}
	pAdam     = Principal{Tenant: "acme", Role: config.RoleSupervisor, Extension: "700", KeyName: "adam"}
	pBeth     = Principal{Tenant: "acme", Role: config.RoleSupervisor, Extension: "701", KeyName: "beth"}
	pAdmin    = Principal{Tenant: "acme", Role: config.RoleAdmin, KeyName: "crm"}
)

func newHelpRig(t *testing.T) (*fastRig, *noteLog) {
	t.Helper()
	r := newFastRig(t)
	notes := &noteLog{}
	r.app.cfg.Notifier = notes // read by the calls goroutine only after its first rebuild is triggered
	return r, notes
}

// waitCall waits until the calls index shows the agent's call.
func (r *fastRig) waitCall(tenant, agent string) {
	r.t.Helper()
	r.eventually("the calls index shows "+agent, func() bool {
		r.app.touchCalls()
		_, ok := r.app.callOf(tenant, "", agent)
		return ok
	})
}

func TestFastHelpLifecycle(t *testing.T) {
	r, notes := newHelpRig(t)
	ctx := context.Background()
	if _, err := r.app.Raise(ctx, pAgent744, RaiseRequest{}); !errors.Is(err, ErrConflict) || apiCode(err) != RefuseNoActiveCall {
		t.Fatalf("raise without a call: %v, want 409 no_active_call", err)
	}
	agent := r.ari.Call("PJSIP/744")
	r.waitCall("acme", "744")
	h, err := r.app.Raise(ctx, pAgent744, RaiseRequest{Reason: "angry customer"})
	if err != nil || h.State != store.HelpOpen || h.CallID != string(agent) || h.Agent != "744" {
		t.Fatalf("raise = %+v, %v", h, err)
	}
	if _, err := r.app.Raise(ctx, pAdmin, RaiseRequest{Agent: "744"}); !errors.Is(err, ErrConflict) || apiCode(err) != RefuseHelpExists {
		t.Fatalf("second raise on the call: %v, want 409 help_already_open", err)
	}
	if _, err := r.app.Raise(ctx, pAgent744, RaiseRequest{Agent: "745"}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("an agent raising for another: %v, want 403", err)
	}
	calls, err := r.app.Calls(ctx, pAdam)
	if err != nil || len(calls) != 1 || !calls[0].NeedsHelp || calls[0].HelpRequest != h.ID {
		t.Fatalf("calls = %+v, %v; want needs_help", calls, err)
	}
	// Visibility: Adam (support) sees it; an agent of sales does not.
	if list, err := r.app.HelpRequests(ctx, pAdam, HelpFilter{Status: store.HelpOpen}); err != nil || len(list) != 1 {
		t.Fatalf("Adam's list = %+v, %v", list, err)
	}
	if list, err := r.app.HelpRequests(ctx, pAgent746, HelpFilter{}); err != nil || len(list) != 0 {
		t.Fatalf("Liam's list = %+v, %v", list, err)
	}
	if _, err := r.app.HelpRequest(ctx, pAgent746, h.ID); !errors.Is(err, ErrForbidden) {
		t.Fatalf("Liam reading John's request: %v, want 403", err)
	}
	// Carl (admin extension, sales group only) may not accept as a supervisor key would; an
	// agent key may not accept at all.
	if _, err := r.app.Accept(ctx, pAgent744, h.ID, AcceptRequest{}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("agent accepting: %v, want 403", err)
	}
	acc, err := r.app.Accept(ctx, pAdam, h.ID, AcceptRequest{})
	if err != nil || acc.Help.State != store.HelpInProgress || acc.Help.HelpProvidedBy != "700" || acc.Session != nil {
		t.Fatalf("accept = %+v, %v", acc, err)
	}
	if _, err := r.app.Accept(ctx, pBeth, h.ID, AcceptRequest{}); !errors.Is(err, ErrConflict) || apiCode(err) != RefuseHelpState {
		t.Fatalf("second accept: %v, want 409", err)
	}
	if _, err := r.app.CancelHelp(ctx, pAgent744, h.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("cancel in progress: %v, want 409", err)
	}
	if calls, _ := r.app.Calls(ctx, pAdam); len(calls) != 1 || calls[0].NeedsHelp || calls[0].HelpRequest != h.ID {
		t.Fatalf("calls after accept = %+v; want needs_help false", calls)
	}
	if _, err := r.app.CloseHelp(ctx, pAdam, h.ID); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a supervisor closing: %v, want 403", err)
	}
	if h, err = r.app.CloseHelp(ctx, pAgent744, h.ID); err != nil || h.State != store.HelpClosed || h.CloseReason != store.HelpReasonAgent {
		t.Fatalf("close = %+v, %v", h, err)
	}
	// A new one on the same call, withdrawn.
	h2, err := r.app.Raise(ctx, pAgent744, RaiseRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if h2, err = r.app.CancelHelp(ctx, pAgent744, h2.ID); err != nil || h2.State != store.HelpCancelled {
		t.Fatalf("cancel = %+v, %v", h2, err)
	}
	want := []string{NoteHelpRaised, NoteHelpAccepted, NoteHelpClosed, NoteHelpRaised, NoteHelpCancelled}
	if got := notes.types("help."); !slices.Equal(got, want) {
		t.Errorf("notifications %q, want %q", got, want)
	}
	var actions []string
	for _, e := range r.audit("acme") {
		if strings.HasPrefix(e.Action, "help_") {
			actions = append(actions, e.Action+"/"+e.Outcome)
		}
	}
	wantAudit := []string{"help_raise/refused", "help_raise/allowed", "help_raise/refused", "help_accept/refused",
		"help_accept/allowed", "help_accept/allowed", "help_accept/refused", "help_cancel/allowed", "help_cancel/refused",
		"help_close/refused", "help_close/allowed", "help_raise/allowed", "help_cancel/allowed"}
	if !slices.Equal(actions, wantAudit) {
		t.Errorf("audit %q\nwant  %q", actions, wantAudit)
	}
	r.ari.HangupFromPhone(agent)
	r.assertClean("acme")
}

// The call ends while a request is open: it closes with reason call_ended.
func TestFastHelpCallEnded(t *testing.T) {
	r, notes := newHelpRig(t)
	ctx := context.Background()
	agent := r.ari.Call("PJSIP/744")
	r.waitCall("acme", "744")
	h, err := r.app.Raise(ctx, pAdmin, RaiseRequest{Agent: "744"})
	if err != nil {
		t.Fatal(err)
	}
	r.ari.HangupFromPhone(agent)
	r.eventually("the request closed", func() bool {
		r.app.touchCalls()
		got, err := r.app.HelpRequest(ctx, pAdmin, h.ID)
		return err == nil && got.State == store.HelpClosed && got.CloseReason == store.HelpReasonCallEnded
	})
	// The notification follows the record's change.
	r.eventually("help.closed notified", func() bool { return slices.Contains(notes.types("help."), NoteHelpClosed) })
}

// Accepting by phone (the help code): the supervisor joins the oldest open request they may
// accept, in whisper; with nothing to accept they hear congestion and the refusal is audited.
func TestFastHelpAcceptByPhone(t *testing.T) {
	r, _ := newHelpRig(t)
	ctx := context.Background()
	nothing := r.ari.Dial("PJSIP/700", "acme", "*93")
	r.eventually("refused", func() bool { return slices.Contains(r.ari.Calls("Play"), "Play tone:congestion on "+string(nothing)) })
	r.eventually("the refusal audited", func() bool {
		return slices.ContainsFunc(r.audit("acme"), func(e store.AuditEntry) bool {
			return e.Action == "join" && e.Outcome == "refused" && e.Reason == RefuseNothingToHelp && e.Actor == "700"
		})
	})
	agent := r.ari.Call("PJSIP/744")
	liam := r.ari.Call("PJSIP/746")
	r.waitCall("acme", "744")
	r.waitCall("acme", "746")
	hl, err := r.app.Raise(ctx, pAgent746, RaiseRequest{}) // older, but of sales: not Adam's
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.app.Raise(ctx, pAgent744, RaiseRequest{})
	if err != nil {
		t.Fatal(err)
	}
	adam := r.ari.Dial("PJSIP/700", "acme", "*93")
	r.active(adam)
	r.eventually("Adam's voice reaches John's ear", func() bool {
		return slices.ContainsFunc(r.ari.Calls("Snoop"), func(c string) bool {
			return strings.HasSuffix(c, " on "+string(agent)+" whisper="+string(ari.DirOut))
		})
	})
	got, err := r.app.HelpRequest(ctx, pAdmin, h.ID)
	if err != nil || got.State != store.HelpInProgress || got.HelpProvidedBy != "700" || got.SessionID == "" {
		t.Fatalf("request after the phone accept = %+v, %v", got, err)
	}
	sess, err := r.store.GetSession(ctx, got.SessionID)
	if err != nil || sess.HelpRequest != h.ID || sess.Mode != dialplan.Whisper.String() {
		t.Fatalf("session = %+v, %v", sess, err)
	}
	if still, _ := r.app.HelpRequest(ctx, pAdmin, hl.ID); still.State != store.HelpOpen {
		t.Errorf("Liam's request = %s, want still open", still.State)
	}
	audit := r.audit("acme")
	if !slices.ContainsFunc(audit, func(e store.AuditEntry) bool {
		return e.Action == "join" && e.Outcome == "refused" && e.Reason == RefuseNothingToHelp && e.Actor == "700"
	}) {
		t.Errorf("no refused join with nothing_to_accept: %+v", audit)
	}
	if !slices.ContainsFunc(audit, func(e store.AuditEntry) bool {
		return e.Action == "join" && e.Outcome == "allowed" && e.Extra["help_request"] == h.ID
	}) {
		t.Error("the join is not audited against the help request")
	}
	r.ari.HangupFromPhone(agent)
	r.ari.HangupFromPhone(liam)
	r.assertClean("acme")
}

// Accept with a mode calls the supervisor's phone, as POST /v1/supervisions does, and the
// session carries the request's id.
func TestFastHelpAcceptWithMode(t *testing.T) {
	r, _ := newHelpRig(t)
	ctx := context.Background()
	agent := r.ari.Call("PJSIP/744")
	r.waitCall("acme", "744")
	h, err := r.app.Raise(ctx, pAgent744, RaiseRequest{})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := r.app.Accept(ctx, pAdmin, h.ID, AcceptRequest{Supervisor: "701", Mode: dialplan.Barge})
	if err != nil || acc.Session == nil || acc.Session.HelpRequest != h.ID || acc.Help.SessionID != acc.Session.ID || acc.Help.HelpProvidedBy != "701" {
		t.Fatalf("accept = %+v, %v", acc, err)
	}
	leg := ari.ChannelID(acc.Session.SupervisorChannel)
	r.ari.AnswerPhone(leg, argAPI, acc.Session.ID)
	r.active(leg)
	r.ari.HangupFromPhone(agent)
	r.assertClean("acme")
}

// Fifty supervisors accept through the app at once: one wins.
func TestFastHelpAcceptRace(t *testing.T) {
	r, _ := newHelpRig(t)
	ctx := context.Background()
	agent := r.ari.Call("PJSIP/744")
	r.waitCall("acme", "744")
	h, err := r.app.Raise(ctx, pAgent744, RaiseRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	for i := range 50 {
		p := pAdam
		if i%2 == 1 {
			p = pBeth
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.app.Accept(ctx, p, h.ID, AcceptRequest{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, ErrConflict):
				lost++
			default:
				t.Errorf("accept: %v", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || lost != 49 {
		t.Fatalf("%d won, %d lost; want 1 and 49", won, lost)
	}
	r.ari.HangupFromPhone(agent)
}
