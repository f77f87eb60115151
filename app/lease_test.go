package app

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
)

// Fast tests of the node lease, adoption, fencing and forwarding: app instances on fakeARI (one
// fake per Asterisk) sharing a real Redis. The real Asterisk's side of a takeover (the audio goes
// on, DTMF reaches the new socket) is e2e_adopt_test.go's.

// fakeSource is an EventSource over a fakeARI: Run connects (a Connected event) and hands the
// fake's events on until ctx ends.
type fakeSource struct {
	f   *fakeARI
	out chan ari.Event
}

func newFakeSource(f *fakeARI) *fakeSource { return &fakeSource{f: f, out: make(chan ari.Event)} }

func (s *fakeSource) Events() <-chan ari.Event { return s.out }

func (s *fakeSource) Run(ctx context.Context) error {
	defer close(s.out)
	send := func(ev ari.Event) bool {
		select {
		case s.out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !send(&ari.ConnectionEvent{State: ari.Connected}) {
		return ctx.Err()
	}
	for {
		select {
		case ev := <-s.f.events:
			if !send(ev) {
				return ctx.Err()
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// haFast is a Redis, a directory and the instances a test starts on them.
type haFast struct {
	t     *testing.T
	store *store.Store
	dir   *config.Directory
	ttl   time.Duration // the lease TTL of the instances it starts
}

type fastInstance struct {
	app    *App
	f      *fakeARI
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func newHAFast(t *testing.T) *haFast {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	rs := redistest.Start(t)
	opts := rs.Options()
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return &haFast{t: t, store: store.New(rdb, store.Options{}), dir: testDirectory(t, nil), ttl: 300 * time.Millisecond}
}

// start runs instance name of node (an app name) on Asterisk f under the node's lease.
func (h *haFast) start(f *fakeARI, node, name string) *fastInstance {
	h.t.Helper()
	a := New(Config{
		AppName: node, Instance: name,
		RefusalTone: 30 * time.Millisecond, EndTone: 30 * time.Millisecond,
		SnoopTimeout: time.Second, CallTimeout: 2 * time.Second,
		Lease: h.store, LeaseTTL: h.ttl,
	}, f, h.store, h.dir)
	ctx, cancel := context.WithCancel(context.Background())
	in := &fastInstance{app: a, f: f, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		in.err = a.RunActive(ctx, newFakeSource(f))
	}()
	h.t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
		case <-time.After(10 * time.Second):
			h.t.Error("RunActive did not return")
		}
	})
	return in
}

func (h *haFast) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// join has a supervisor whisper to a new call of agent 744 on in's Asterisk; it returns the
// supervisor's channel and the session's record.
func (h *haFast) join(in *fastInstance) (ari.ChannelID, store.Session) {
	h.t.Helper()
	in.f.Call("PJSIP/744")
	sup := in.f.Dial("PJSIP/700", "acme", "*91744")
	var rec store.Session
	h.eventually("the session active", func() bool {
		ids := in.app.Live()
		if len(ids) != 1 {
			return false
		}
		r, err := h.store.GetSession(context.Background(), ids[0])
		rec = r
		// Whispering: active, and the talk paths made (the agent hears the supervisor).
		return err == nil && r.State == store.StateActive && len(r.Talk) == earCount
	})
	return sup, rec
}

// TestFastNodes: two nodes (two Asterisks, two app names) share one Redis. Each has its lease
// and runs its own sessions; an instance of one node never adopts the other's; a request about a
// session made on an instance of the other node, or on a standby, is carried out by the
// session's node's active; a standby rebuilt its calls list and shows the supervisors.
func TestFastNodes(t *testing.T) {
	h := newHAFast(t)
	ctx := context.Background()
	fx, fy := newFakeARI(t), newFakeARI(t)
	x := h.start(fx, "earpiece-x", "x1")
	y := h.start(fy, "earpiece-y", "y1")
	h.eventually("both nodes active", func() bool { return x.app.Active() && y.app.Active() })
	xs := h.start(fx, "earpiece-x", "x-standby")
	h.eventually("x's standby waiting", func() bool {
		name, _ := h.store.StandbyPresent(ctx, "earpiece-x")
		return name == "x-standby"
	})
	if xs.app.Active() {
		t.Fatal("two actives on node x")
	}
	_, rec := h.join(x)
	if rec.Node != "earpiece-x" || rec.Instance != "x1" {
		t.Fatalf("record: %+v", rec)
	}

	// The standby's calls list: the call (from its Asterisk's REST API) with its supervisor (from
	// Redis).
	calls, err := xs.app.Calls(ctx, adamKey)
	if err != nil || len(calls) != 1 || len(calls[0].Supervisors) != 1 || calls[0].Supervisors[0].SessionID != rec.ID {
		t.Fatalf("calls on the standby: %v %+v", err, calls)
	}
	// A switch asked of node y's instance is node x's active's to make.
	mutesBefore := len(fx.Calls("Mute"))
	got, err := y.app.SetMode(ctx, adamKey, rec.ID, dialplan.Spy)
	if err != nil || got.Mode != "spy" {
		t.Fatalf("SetMode through node y: %v %+v", err, got)
	}
	if len(fx.Calls("Mute")) != mutesBefore+1 || len(fy.Calls("Mute", "Snoop")) != 0 {
		t.Errorf("mutes: x %v, y %v", fx.Calls("Mute"), fy.Calls("Mute", "Snoop"))
	}
	// Errors come back with their codes: through the standby, a join of an agent who is not on
	// a call.
	_, err = xs.app.Join(ctx, adamKey, JoinRequest{Agent: "745", Mode: dialplan.Spy})
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != RefuseNoActiveCall || !errors.Is(err, ErrConflict) {
		t.Fatalf("forwarded join refusal: %v", err)
	}

	// x1 crashes. Node y's active reconciles: it leaves node x's session alone. x's standby takes
	// node x over and adopts it.
	x.app.Crash()
	<-x.done
	y.app.reconcile(ctx)
	if r, _ := h.store.GetSession(ctx, rec.ID); r.Instance != "x1" && r.Instance != "x-standby" {
		t.Fatalf("node y adopted node x's session: %+v", r)
	}
	h.eventually("x's standby runs the session", func() bool { _, ok := xs.app.localSession(rec.ID); return ok })
	if r, _ := h.store.GetSession(ctx, rec.ID); r.Instance != "x-standby" || r.Mode != "spy" || !r.Live() {
		t.Fatalf("adopted record: %+v", r)
	}
	for node, want := range map[string]string{"earpiece-x": "x-standby", "earpiece-y": "y1"} {
		if l, err := h.store.LeaseHolder(ctx, node); err != nil || l.Instance != want {
			t.Errorf("lease of %s: %+v %v", node, l, err)
		}
	}
	// DELETE through node y: carried out by node x's new active.
	ended, err := y.app.Leave(ctx, adamKey, rec.ID)
	if err != nil || ended.State != store.StateEnded || ended.EndReason != ReasonAPI {
		t.Fatalf("Leave through node y: %v %+v", err, ended)
	}
	h.eventually("node x clean", func() bool { return len(fx.Snoops()) == 0 && len(xs.app.Live()) == 0 })
	for _, b := range fx.Bridges() {
		if strings.HasPrefix(b.Name, BridgeNamePrefix) {
			t.Errorf("bridge left: %+v", b)
		}
	}
	if fy.Calls("Hangup", "DestroyBridge", "CreateBridge") != nil {
		t.Errorf("node y's Asterisk was touched: %v", fy.Calls())
	}
}

// TestFastStaleOwner: a session adopted by another owner while its instance did not look (a
// paused process) is not touched by that instance any more: a digit and a shutdown find the
// record another's, and the session is abandoned as it is: no snoop, no hangup, no audit entry,
// no write.
func TestFastStaleOwner(t *testing.T) {
	h := newHAFast(t)
	ctx := context.Background()
	f := newFakeARI(t)
	a := h.start(f, "earpiece", "a")
	h.eventually("active", a.app.Active)
	sup, rec := h.join(a)
	// Another owner takes it over (what a standby does once a's lease lapsed).
	other := store.Owner{Instance: "b", Epoch: rec.Epoch + 1}
	if _, err := h.store.AdoptSession(ctx, rec.ID, rec.Owner(), other); err != nil {
		t.Fatal(err)
	}
	before := len(f.Calls())
	audit, err := h.store.Audit(ctx, "acme", time.Time{}, time.Now().Add(time.Minute), 1000)
	if err != nil {
		t.Fatal(err)
	}
	f.Digit(sup, "0")
	h.eventually("the session abandoned", func() bool { return len(a.app.Live()) == 0 })
	a.cancel() // a graceful stop: nothing left to end
	<-a.done
	if calls := f.Calls()[before:]; len(calls) != 0 {
		t.Errorf("the stale owner called Asterisk: %v", calls)
	}
	if len(f.Snoops()) != 5 || !slices.ContainsFunc(f.Bridges(), func(b ari.Bridge) bool { return b.Name == BridgeNamePrefix+rec.ID }) {
		t.Errorf("the session's snoop or bridge is gone: %v %v", f.Snoops(), f.Bridges())
	}
	got, err := h.store.GetSession(ctx, rec.ID)
	if err != nil || got.Owner() != other || !got.Live() || got.Mode != "whisper" {
		t.Errorf("record: %v %+v", err, got)
	}
	after, _ := h.store.Audit(ctx, "acme", time.Time{}, time.Now().Add(time.Minute), 1000)
	if len(after) != len(audit) {
		t.Errorf("the stale owner audited: %+v", after[len(audit):])
	}
	// And its record writes are refused by the store, whatever it believes.
	if _, err := a.app.updateRecord(ctx, rec.ID, func(r *store.Session) error { r.Mode = "barge"; return nil }); !errors.Is(err, store.ErrNotOwner) {
		t.Errorf("stale record write: %v", err)
	}
}

// TestFastStandbyForwardsDuringTakeover: a request made on a standby while no instance runs the
// node waits in the node's queue and is carried out by the next active, once it has adopted the
// session.
func TestFastStandbyForwardsDuringTakeover(t *testing.T) {
	h := newHAFast(t)
	h.ttl = 2 * time.Second
	ctx := context.Background()
	f := newFakeARI(t)
	a := h.start(f, "earpiece", "a")
	h.eventually("active", a.app.Active)
	_, rec := h.join(a)
	a.app.Crash()
	<-a.done
	// Nobody runs the node; a's lease has not lapsed yet: b stands by, and gets a PATCH.
	b := h.start(f, "earpiece", "b")
	h.eventually("b stands by", func() bool { name, _ := h.store.StandbyPresent(ctx, "earpiece"); return name == "b" })
	if b.app.Active() {
		t.Fatal("b took a lease that had not lapsed")
	}
	got, err := b.app.SetMode(ctx, adamKey, rec.ID, dialplan.Barge)
	if err != nil || got.Mode != "barge" || got.Instance != "b" {
		t.Fatalf("PATCH across the takeover: %v %+v", err, got)
	}
	if _, err := b.app.Leave(ctx, adamKey, rec.ID); err != nil {
		t.Fatal(err)
	}
	h.eventually("clean", func() bool { return len(f.Snoops()) == 0 && len(b.app.Live()) == 0 })
}

// TestFastHandover: the active stopped gracefully while a standby waits hands its sessions over
// instead of ending them: it touches nothing, gives the lease back, and the standby adopts them
// at once. Without a standby, a graceful stop ends them (shutdown), as a single instance does.
func TestFastHandover(t *testing.T) {
	h := newHAFast(t)
	h.ttl = 2 * time.Second
	ctx := context.Background()
	f := newFakeARI(t)
	a := h.start(f, "earpiece", "a")
	h.eventually("active", a.app.Active)
	_, rec := h.join(a)
	b := h.start(f, "earpiece", "b")
	h.eventually("b stands by", func() bool { name, _ := h.store.StandbyPresent(ctx, "earpiece"); return name == "b" })
	if err := a.app.ARICheck(func() bool { return false })(ctx); err == nil {
		t.Error("the active without its socket is ready")
	}
	if err := b.app.ARICheck(func() bool { return false })(ctx); err != nil {
		t.Errorf("the standby is not ready: %v", err)
	}
	before := len(f.Calls())
	stopped := time.Now()
	a.cancel()
	<-a.done
	if a.err != nil {
		t.Errorf("graceful stop: %v", a.err)
	}
	if calls := f.Calls()[before:]; slices.ContainsFunc(calls, func(c string) bool {
		return strings.HasPrefix(c, "Hangup") || strings.HasPrefix(c, "DestroyBridge")
	}) {
		t.Errorf("the stopping active tore down: %v", calls)
	}
	h.eventually("b runs the session", func() bool { _, ok := b.app.localSession(rec.ID); return ok })
	if d := time.Since(stopped); d > h.ttl {
		t.Errorf("handover took %v: the lease was not given back", d)
	}
	got, _ := h.store.GetSession(ctx, rec.ID)
	if !got.Live() || got.Instance != "b" {
		t.Fatalf("record after the handover: %+v", got)
	}
	// b stops with no standby: the session ends.
	b.cancel()
	<-b.done
	got, _ = h.store.GetSession(ctx, rec.ID)
	if got.State != store.StateEnded || got.EndReason != ReasonShutdown {
		t.Fatalf("record after the last instance stopped: %+v", got)
	}
}
