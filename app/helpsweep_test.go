package app

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// Escalation and expiry of help requests, with an injected clock and a real Redis.

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

var pGlobexAgent = Principal{Tenant: "globex", Role: config.RoleAgent, Extension: "901", KeyName: "hank"}

// newSweepRig is a help rig on clk whose own sweep ticks every tick (an hour: the test sweeps
// by calling sweepHelp).
func newSweepRig(t *testing.T, clk *testClock, tick time.Duration) (*fastRig, *noteLog) {
	t.Helper()
	notes := &noteLog{}
	r := newFastRig(t, func(c *Config) {
		c.Clock, c.HelpSweep, c.Notifier = clk.Now, tick, notes
	})
	return r, notes
}

func (r *fastRig) help(p Principal, id string) store.HelpRequest {
	r.t.Helper()
	h, err := r.app.HelpRequest(context.Background(), p, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

// TestFastHelpEscalateExpire: an open request is escalated after its tenant's escalate_after
// (once; it stays open and acceptable) and expires after expire_after; each is audited and
// notified; timeouts are per tenant; accepted and withdrawn requests are left alone.
func TestFastHelpEscalateExpire(t *testing.T) {
	clk := newTestClock()
	r, notes := newSweepRig(t, clk, time.Hour)
	ctx := context.Background()
	john := r.ari.Call("PJSIP/744")
	r.ari.Call("PJSIP/745")
	r.ari.Call("PJSIP/901")
	for _, ag := range []string{"744", "745"} {
		r.waitCall("acme", ag)
	}
	raise := func(p Principal, agent string) store.HelpRequest {
		t.Helper()
		h, err := r.app.Raise(ctx, p, RaiseRequest{Agent: agent})
		if err != nil {
			t.Fatalf("raise for %s: %v", agent, err)
		}
		return h
	}
	john1 := raise(pAgent744, "")                                                           // acme: 2m, 10m
	kate := raise(pAdmin, "745")                                                            // acme, accepted below
	hank := raise(Principal{Tenant: "globex", Role: config.RoleAdmin, KeyName: "g"}, "901") // globex: 30s, 1m
	if _, err := r.app.Accept(ctx, pAdam, kate.ID, AcceptRequest{}); err != nil {
		t.Fatal(err)
	}

	clk.Advance(45 * time.Second)
	r.app.sweepHelp(ctx)
	if h := r.help(pAdmin, john1.ID); h.Escalated || h.State != store.HelpOpen {
		t.Errorf("acme request after 45s: %+v; want open, not escalated", h)
	}
	hk := r.help(pGlobexAgent, hank.ID)
	if !hk.Escalated || !hk.EscalatedAt.Equal(clk.Now()) || hk.State != store.HelpOpen {
		t.Errorf("globex request after 45s: %+v; want escalated, open", hk)
	}

	at := clk.Advance(90 * time.Second) // 2m15s
	r.app.sweepHelp(ctx)
	r.app.sweepHelp(ctx) // escalates once
	if h := r.help(pAdmin, john1.ID); !h.Escalated || !h.EscalatedAt.Equal(at) || h.State != store.HelpOpen {
		t.Errorf("acme request after 2m15s: %+v; want escalated, open", h)
	}
	if h := r.help(pGlobexAgent, hank.ID); h.State != store.HelpExpired || h.CloseReason != store.HelpReasonExpired || !h.ClosedAt.Equal(at) {
		t.Errorf("globex request after 2m15s: %+v; want expired", h)
	}
	if h := r.help(pAdmin, kate.ID); h.State != store.HelpInProgress || h.Escalated {
		t.Errorf("accepted request: %+v; want in progress, not escalated", h)
	}
	// Escalated, still acceptable; the calls list still says it needs help.
	calls, err := r.app.Calls(ctx, pAdam)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(calls, func(c Call) bool { return c.Agent == "744" }); i < 0 || !calls[i].NeedsHelp {
		t.Errorf("John's call after escalation: %+v; want needs_help", calls)
	}

	at = clk.Advance(8 * time.Minute) // 10m15s
	r.app.sweepHelp(ctx)
	h := r.help(pAdmin, john1.ID)
	if h.State != store.HelpExpired || !h.ClosedAt.Equal(at) || h.HelpProvidedBy != "" {
		t.Fatalf("acme request after 10m15s: %+v; want expired", h)
	}
	if _, err := r.app.Accept(ctx, pAdam, john1.ID, AcceptRequest{}); apiCode(err) != RefuseHelpState {
		t.Errorf("accept an expired request: %v, want %s", err, RefuseHelpState)
	}
	if list, err := r.app.HelpRequests(ctx, pAdam, HelpFilter{Status: store.HelpExpired}); err != nil || len(list) != 1 || list[0].ID != john1.ID {
		t.Errorf("Adam's expired requests: %+v, %v", list, err)
	}
	calls, _ = r.app.Calls(ctx, pAdam)
	if i := slices.IndexFunc(calls, func(c Call) bool { return c.Agent == "744" }); i < 0 || calls[i].NeedsHelp || calls[i].HelpRequest != "" {
		t.Errorf("John's call after expiry: %+v; want no help request", calls)
	}
	// John may ask again on the same call.
	john2 := raise(pAgent744, "")
	if john2.CallID != string(john) {
		t.Errorf("new request on call %s, want %s", john2.CallID, john)
	}

	wantNotes := []string{NoteHelpRaised, NoteHelpRaised, NoteHelpRaised, NoteHelpAccepted, NoteHelpEscalated,
		NoteHelpEscalated, NoteHelpExpired, NoteHelpExpired, NoteHelpRaised}
	if got := notes.types("help."); !slices.Equal(got, wantNotes) {
		t.Errorf("notifications %q\nwant %q", got, wantNotes)
	}
	var sweeps []string
	for _, tenant := range []string{"acme", "globex"} {
		for _, e := range r.audit(tenant) {
			if e.Actor == sweepActor && strings.HasPrefix(e.Action, "help_") {
				sweeps = append(sweeps, tenant+":"+e.Action+"/"+e.Outcome+":"+e.Extra["help_request"])
			}
		}
	}
	wantSweeps := []string{
		"acme:help_escalate/allowed:" + john1.ID, "acme:help_expire/allowed:" + john1.ID,
		"globex:help_escalate/allowed:" + hank.ID, "globex:help_expire/allowed:" + hank.ID,
	}
	if !slices.Equal(sweeps, wantSweeps) {
		t.Errorf("sweep audit %q\nwant %q", sweeps, wantSweeps)
	}
}

// TestFastHelpSweepRuns: the app's own sweep goroutine (a short tick) expires a request once
// the clock passes expire_after, and a second instance on the same Redis does not sweep while
// the first holds the lease.
func TestFastHelpSweepRuns(t *testing.T) {
	clk := newTestClock()
	r, notes := newSweepRig(t, clk, 10*time.Millisecond)
	ctx := context.Background()
	r.ari.Call("PJSIP/744")
	r.waitCall("acme", "744")
	h, err := r.app.Raise(ctx, pAgent744, RaiseRequest{})
	if err != nil {
		t.Fatal(err)
	}

	// Another instance on the same Redis and directory, never Run, whose clock is past
	// expire_after: its sweeps find the lease taken and change nothing.
	r.eventually("the first instance holds the lease", func() bool {
		// Releasing another owner's claim is refused and leaves it alone: a harmless probe.
		return errors.Is(r.store.Release(ctx, helpSweepLease, "probe"), store.ErrNotOwner)
	})
	late := func() time.Time { return clk.Now().Add(11 * time.Minute) }
	other := New(Config{Instance: "other", Clock: late, HelpSweep: 10 * time.Millisecond}, r.ari, r.store, r.app.dir)
	other.sweepHelp(ctx)
	if got := r.help(pAdmin, h.ID); got.State != store.HelpOpen || got.Escalated {
		t.Errorf("after the sweep of the instance without the lease: %+v; want open", got)
	}
	clk.Advance(11 * time.Minute)
	r.eventually("the request expired", func() bool {
		got := r.help(pAdmin, h.ID)
		return got.State == store.HelpExpired
	})
	r.eventually("help.expired notified", func() bool { return slices.Contains(notes.types("help."), NoteHelpExpired) })
	for _, e := range r.audit("acme") {
		if e.Actor == sweepActor && e.Outcome != "allowed" {
			t.Errorf("sweep audit entry %+v; want only allowed ones", e)
		}
	}
}
