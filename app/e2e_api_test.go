package app

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
	"github.com/earpiece/earpiece/store"
)

var (
	adamKey  = Principal{Tenant: "acme", Role: config.RoleSupervisor, Extension: "700", KeyName: "adam"}
	carlKey  = Principal{Tenant: "acme", Role: config.RoleAdmin, KeyName: "crm"}
	johnKey  = Principal{Tenant: "acme", Role: config.RoleAgent, Extension: "744", KeyName: "john"}
	ginaKey  = Principal{Tenant: "globex", Role: config.RoleSupervisor, Extension: "900", KeyName: "gina"}
	bethKey  = Principal{Tenant: "acme", Role: config.RoleSupervisor, Extension: "701", KeyName: "beth"}
	waitLong = 10 * time.Second
)

// notes records notifications.
type notes struct {
	mu  sync.Mutex
	all []Notification
}

func (n *notes) Notify(x Notification) {
	n.mu.Lock()
	n.all = append(n.all, x)
	n.mu.Unlock()
}

func (n *notes) types(tenant string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, x := range n.all {
		if x.Tenant == tenant {
			out = append(out, x.Type)
		}
	}
	return out
}

func (n *notes) has(tenant, typ string) bool {
	for _, t := range n.types(tenant) {
		if t == typ {
			return true
		}
	}
	return false
}

func newAPIRig(t *testing.T) (*rig, *notes) {
	n := &notes{}
	r := newRig(t, func(c *Config, _ *config.Config) {
		c.Notifier = n
		c.RingTimeout = 2 * time.Second
	})
	return r, n
}

// awaitCall waits until the calls index lists the agent's call and returns it.
func (r *rig) awaitCall(p Principal, agent string) Call {
	r.T.Helper()
	var found Call
	e2etest.WaitFor(r.T, 5*time.Second, "call of "+agent+" listed", func() bool {
		cs, err := r.app.Calls(r.Ctx, p)
		if err != nil {
			r.T.Fatal(err)
		}
		for _, c := range cs {
			if c.Agent == agent {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

func apiCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// TestE2EAPIJoinAndModes: a CRM lists the call, asks earpiece to call the supervisor and join in
// spy, then moves through every mode by API and by DTMF, and ends the session by API.
func TestE2EAPIJoinAndModes(t *testing.T) {
	r, n := newAPIRig(t)
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	supPhone := r.Phone("700", hzSupervisor, testphone.Manual)

	call := r.awaitCall(adamKey, "744")
	if call.CustomerNumber != "5550800" || call.Direction != "inbound" || call.StartedAt.IsZero() || len(call.Supervisors) != 0 {
		t.Errorf("listed call: %+v", call)
	}
	if !n.has("acme", NoteCallStarted) {
		t.Error("no call.started notification")
	}
	if cs, _ := r.app.Calls(r.Ctx, ginaKey); len(cs) != 0 {
		t.Errorf("another tenant sees acme's calls: %+v", cs)
	}
	if _, err := r.app.Calls(r.Ctx, johnKey); !errors.Is(err, ErrForbidden) {
		t.Errorf("agent lists calls: %v", err)
	}

	ctx, cancel := context.WithTimeout(r.Ctx, 30*time.Second)
	defer cancel()
	rec, err := r.app.Join(ctx, adamKey, JoinRequest{CallID: call.ID, Mode: dialplan.Spy})
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != store.StateRinging || rec.Origin != "api" || rec.Supervisor != "700" || rec.Agent != "744" {
		t.Fatalf("join answer: %+v", rec)
	}
	in, err := supPhone.AwaitIncoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.CallerIDNum() != "744" {
		t.Errorf("supervisor's phone shows %q <%s>, want the agent's number", in.CallerIDName(), in.CallerIDNum())
	}
	if err := in.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	r.ExpectMode(e2etest.ModeChange{From: dialplan.Spy, To: dialplan.Spy, Asked: answered}, c, in)
	e2etest.WaitFor(t, 3*time.Second, "active", func() bool {
		s, err := r.app.Supervision(ctx, adamKey, rec.ID)
		return err == nil && s.State == store.StateActive
	})
	if call := r.awaitCall(adamKey, "744"); len(call.Supervisors) != 1 || call.Supervisors[0].Extension != "700" || call.Supervisors[0].Mode != "spy" {
		t.Errorf("call's supervisors: %+v", call.Supervisors)
	}

	prev := dialplan.Spy
	for _, m := range []dialplan.Mode{dialplan.Whisper, dialplan.Barge, dialplan.Spy, dialplan.Barge, dialplan.Whisper, dialplan.Spy} {
		asked := time.Now()
		got, err := r.app.SetMode(ctx, adamKey, rec.ID, m)
		if err != nil {
			t.Fatalf("PATCH mode %s: %v", m, err)
		}
		if got.Mode != m.String() {
			t.Errorf("after PATCH %s the session says %s", m, got.Mode)
		}
		// SetMode answers once the new mode is audible: the change is settled.
		r.ExpectMode(e2etest.ModeChange{From: prev, To: m, Asked: asked, Quiet: asked, Settled: time.Now()}, c, in)
		prev = m
	}
	// DTMF works in API-started sessions too.
	if err := in.SendDTMF(ctx, "2"); err != nil {
		t.Fatal(err)
	}
	sent := in.DTMFSent()
	r.ExpectMode(e2etest.ModeChange{From: dialplan.Spy, To: dialplan.Barge, Asked: sent[len(sent)-1].Start, Quiet: sent[len(sent)-1].End}, c, in)

	// Another supervisor key cannot touch Adam's session; another tenant does not see it.
	if _, err := r.app.SetMode(ctx, bethKey, rec.ID, dialplan.Spy); !errors.Is(err, ErrForbidden) {
		t.Errorf("Beth changes Adam's mode: %v", err)
	}
	if _, err := r.app.Leave(ctx, ginaKey, rec.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("other tenant ends the session: %v", err)
	}
	ended, err := r.app.Leave(ctx, carlKey, rec.ID)
	if err != nil || ended.State != store.StateEnded || ended.EndReason != ReasonAPI {
		t.Fatalf("DELETE: %v %+v", err, ended)
	}
	r.AwaitEnded(in, 5*time.Second, "supervisor after DELETE")
	r.AssertClean("acme")
	r.HearsAfter(c.Customer, time.Now(), hzAgent, true, "customer after the API session")
	for _, typ := range []string{NoteSupervisionRinging, NoteSupervisionStarted, NoteSupervisionMode, NoteSupervisionEnded} {
		if !n.has("acme", typ) {
			t.Errorf("no %s notification (got %v)", typ, n.types("acme"))
		}
	}
	ctxE, cancelE := context.WithTimeout(r.Ctx, 5*time.Second)
	defer cancelE()
	if err := c.Customer.Hangup(ctxE); err != nil {
		t.Fatal(err)
	}
	e2etest.WaitFor(t, 5*time.Second, "call.ended", func() bool { return n.has("acme", NoteCallEnded) })
}

// TestE2EAPIOriginateOutcomes: busy, rejected and unanswered supervisor phones end the session
// with the matching reason and leave nothing; authorization is enforced before anything rings.
func TestE2EAPIOriginateOutcomes(t *testing.T) {
	r, _ := newAPIRig(t)
	r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	ctx, cancel := context.WithTimeout(r.Ctx, 60*time.Second)
	defer cancel()

	for _, tc := range []struct {
		policy testphone.Policy
		reason string
	}{
		{testphone.Busy, ReasonBusy},
		{testphone.Reject, ReasonRejected},
		{testphone.Ignore, ReasonNoAnswer},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			r := r.For(t)
			p := r.Phone("701", hzSupervisor, tc.policy)
			rec, err := r.app.Join(ctx, carlKey, JoinRequest{Agent: "744", Supervisor: "701", Mode: dialplan.Whisper})
			if err != nil {
				t.Fatal(err)
			}
			e2etest.WaitFor(t, waitLong, "session ended", func() bool {
				s, err := r.Store.GetSession(ctx, rec.ID)
				return err == nil && s.State == store.StateEnded
			})
			s, _ := r.Store.GetSession(ctx, rec.ID)
			if s.EndReason != tc.reason {
				t.Errorf("end reason %q, want %q", s.EndReason, tc.reason)
			}
			r.AssertClean("acme")
			p.Close()
		})
	}

	for _, tc := range []struct {
		name string
		p    Principal
		req  JoinRequest
		kind error
		code string
	}{
		{"agent key", johnKey, JoinRequest{Agent: "745", Mode: dialplan.Spy}, ErrForbidden, "forbidden"},
		{"supervisor as someone else", adamKey, JoinRequest{Agent: "744", Supervisor: "701", Mode: dialplan.Spy}, ErrForbidden, "not_own_extension"},
		{"supervisor outside the group", adamKey, JoinRequest{Agent: "746", Mode: dialplan.Spy}, ErrForbidden, RefuseNotAllowed},
		{"admin without supervisor", carlKey, JoinRequest{Agent: "744", Mode: dialplan.Spy}, ErrInvalid, "invalid_field"},
		{"admin names an unknown supervisor", carlKey, JoinRequest{Agent: "744", Supervisor: "799", Mode: dialplan.Spy}, ErrInvalid, RefuseUnknownExtension},
		{"admin self", carlKey, JoinRequest{Agent: "744", Supervisor: "744", Mode: dialplan.Spy}, ErrForbidden, RefuseSelf},
		{"no active call", adamKey, JoinRequest{Agent: "745", Mode: dialplan.Spy}, ErrConflict, RefuseNoActiveCall},
		{"unknown call id", adamKey, JoinRequest{CallID: "nope", Mode: dialplan.Spy}, ErrNotFound, "call_not_found"},
		{"other tenant (disabled)", ginaKey, JoinRequest{Agent: "744", Mode: dialplan.Spy}, ErrForbidden, RefuseTenantDisabled},
		{"another tenant's agent", adamKey, JoinRequest{Agent: "901", Mode: dialplan.Spy}, ErrNotFound, RefuseUnknownExtension},
		{"bad mode", adamKey, JoinRequest{Agent: "744"}, ErrInvalid, "invalid_field"},
	} {
		_, err := r.app.Join(ctx, tc.p, tc.req)
		if !errors.Is(err, tc.kind) || apiCode(err) != tc.code {
			t.Errorf("%s: got %v (code %q), want %v/%s", tc.name, err, apiCode(err), tc.kind, tc.code)
		}
	}
	r.AssertClean("acme")
	if _, ok := e2etest.FindAudit(r.Audit("acme"), "join", "refused", RefuseNotAllowed); !ok {
		t.Error("refused API join not audited")
	}
}
