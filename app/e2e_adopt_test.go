package app

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
	"github.com/earpiece/earpiece/store"
)

// End-to-end tests of instances that crash, restart and stand by, on the real stack: several
// app instances in this test process, each with an ARI client of its own, on the shared test
// Asterisk (one app name: one node) and the rig's Redis, under the node lease (lease.go). A
// crash is App.Crash (RunActive returns at once; nothing is torn down, the lease is not given
// back, the events socket closes as a killed process's would).

// haRig is a rig whose app instances the test starts and stops itself.
type haRig struct {
	*e2etest.Rig
	t   *testing.T
	dir *config.Directory
	ttl time.Duration
}

// instance is one app instance of an haRig.
type instance struct {
	name   string
	app    *App
	client *ari.Client
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func newHARig(t *testing.T, ttl time.Duration) *haRig {
	t.Helper()
	r := e2etest.New(t, owned)
	return &haRig{Rig: r, t: t, dir: testDirectory(t, nil), ttl: ttl}
}

// start runs an instance named name under the node lease; it stops gracefully when the test
// ends (unless it stopped before).
func (r *haRig) start(name string) *instance {
	r.t.Helper()
	log := r.Log.With().Str("instance", name).Logger()
	client, err := ari.New(ari.Config{BaseURL: r.Ast.ARIURL, User: r.Ast.User, Password: r.Ast.Password, App: e2etest.AppName, Logger: log})
	if err != nil {
		r.t.Fatal(err)
	}
	a := New(Config{
		AppName: e2etest.AppName, Instance: name, Logger: log,
		RefusalTone: 700 * time.Millisecond, EndTone: 500 * time.Millisecond, CallTimeout: 2 * time.Second,
		Lease: r.Store, LeaseTTL: r.ttl,
	}, client, r.Store, r.dir)
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{name: name, app: a, client: client, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		in.err = a.RunActive(ctx, client)
	}()
	r.t.Cleanup(func() {
		in.cancel()
		e2etest.AwaitClosed(r.t, in.done, 20*time.Second, in.name+": RunActive to return")
		in.client.CloseIdleConnections()
	})
	return in
}

// awaitActive waits until in runs the node with its events socket connected and returns how long
// that took.
func (r *haRig) awaitActive(in *instance, limit time.Duration) time.Duration {
	r.t.Helper()
	start := time.Now()
	e2etest.WaitFor(r.t, limit, in.name+" active", func() bool { return in.app.Active() && in.client.Stats().Connected })
	return time.Since(start)
}

// awaitRuns waits until in runs session sid.
func (r *haRig) awaitRuns(in *instance, sid string, limit time.Duration) {
	r.t.Helper()
	e2etest.WaitFor(r.t, limit, in.name+" runs "+sid, func() bool { _, ok := in.app.localSession(sid); return ok })
}

// crash stops in as kill -9 would.
func (r *haRig) crash(in *instance) {
	r.t.Helper()
	in.app.Crash()
	e2etest.AwaitClosed(r.t, in.done, 10*time.Second, in.name+": RunActive to return after the crash")
}

// only returns the id of the tenant's one live session.
func (r *haRig) only(tenant string) store.Session {
	r.t.Helper()
	live, err := r.Store.ListSessions(r.Ctx, tenant)
	if err != nil || len(live) != 1 {
		r.t.Fatalf("live sessions: %v %+v", err, live)
	}
	return live[0]
}

// assertClean is AssertClean plus: no instance runs a session.
func (r *haRig) assertClean(ins ...*instance) {
	r.t.Helper()
	r.AssertClean("acme")
	for _, in := range ins {
		if ids := in.app.Live(); len(ids) > 0 {
			r.t.Errorf("%s still runs %v", in.name, ids)
		}
	}
	keys, err := r.RDB.Keys(r.Ctx, store.Prefix+"claim:talker:*").Result()
	if err != nil || len(keys) != 0 {
		r.t.Errorf("talker claims left: %v %v", keys, err)
	}
}

// press sends digit d on c and returns when it started.
func press(t *testing.T, ctx context.Context, c *testphone.Call, d string) time.Time {
	t.Helper()
	if err := c.SendDTMF(ctx, d); err != nil {
		t.Fatal(err)
	}
	sent := c.DTMFSent()
	return sent[len(sent)-1].Start
}

// noGap fails when listener went without hz (sent by sender) longer than 200 ms in [from, to),
// beyond the sender's own stalls.
func (r *haRig) noGap(who string, listener, sender *testphone.Call, hz float64, from, to time.Time) time.Duration {
	r.t.Helper()
	gap, _ := e2etest.Gap(listener, sender, hz, from, to)
	if limit := 200*time.Millisecond + sender.SenderStall(from, to); gap > limit {
		r.t.Errorf("%s: %v Hz missing for %v across the takeover (limit %v)", who, hz, gap, limit)
	}
	return gap
}

// adoptAudited checks the session's audit entries after its adoption: the adopt entry, and no
// entry of the previous owner after it.
func (r *haRig) adoptAudited(sid, from string) {
	r.t.Helper()
	var adopt *store.AuditEntry
	for _, e := range r.Audit("acme") {
		if e.Session != sid {
			continue
		}
		if e.Action == "adopt" {
			if e.Extra["from"] != from || e.Reason != ReasonOwnerGone {
				r.t.Errorf("adopt entry: %+v", e)
			}
			adopt = &e
		}
	}
	if adopt == nil {
		r.t.Fatal("no adopt audit entry")
	}
}

// TestE2EAdoptAfterCrashNewName: the instance running a whisper session is killed; another one,
// under another name (a re-created container), takes the node over once the lease lapses and
// adopts the session: the agent hears the supervisor throughout, DTMF and the API work again,
// the talker slot is released to another supervisor, and nothing is left behind.
func TestE2EAdoptAfterCrashNewName(t *testing.T) {
	r := newHARig(t, time.Second)
	a := r.start("pod-a")
	r.awaitActive(a, 10*time.Second)
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	sup, _ := r.Dial(r.Phone("700", hzSupervisor, testphone.AutoAnswer), "*91744")
	r.Hears(c.Agent, hzSupervisor, "agent hears the whisper")
	rec := r.only("acme")

	from := time.Now()
	crashed := time.Now()
	r.crash(a)
	b := r.start("pod-b")
	r.awaitActive(b, 5*time.Second)
	r.awaitRuns(b, rec.ID, 5*time.Second)
	t.Logf("kill -9 to adopted under a new name: %v (lease TTL %v)", time.Since(crashed), r.ttl)
	time.Sleep(300 * time.Millisecond)
	gap := r.noGap("agent", c.Agent, sup, hzSupervisor, from, time.Now())
	t.Logf("longest silence of the whisper across the takeover: %v", gap)
	r.SilentOn(c.Customer, hzSupervisor, from, time.Now(), "customer during the whisper")
	got, err := r.Store.GetSession(r.Ctx, rec.ID)
	if err != nil || got.Instance != "pod-b" || got.Epoch <= rec.Epoch || got.State != store.StateActive || got.Mode != "whisper" {
		t.Fatalf("adopted record: %v %+v (was %+v)", err, got, rec)
	}
	r.adoptAudited(rec.ID, "pod-a")

	ctx, cancel := context.WithTimeout(r.Ctx, 30*time.Second)
	defer cancel()
	// DTMF works again: 0 is spy, the agent stops hearing the supervisor.
	at := press(t, ctx, sup, "0")
	r.HearsAfter(c.Agent, at, hzSupervisor, false, "agent after DTMF 0 (spy)")
	r.HearsAfter(sup, at, hzCustomer, true, "supervisor still hears the customer")
	// The talker slot was released: another supervisor may whisper.
	beth, _ := r.Dial(r.Phone("701", e2etest.ToneSupervisor2, testphone.AutoAnswer), "*91744")
	r.Hears(c.Agent, e2etest.ToneSupervisor2, "agent hears the second supervisor's whisper")
	if err := beth.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	e2etest.WaitFor(t, 5*time.Second, "Beth's session ended", func() bool { return len(b.app.Live()) == 1 })
	// PATCH and DELETE through the API.
	asked := time.Now()
	if s, err := b.app.SetMode(ctx, adamKey, rec.ID, dialplan.Barge); err != nil || s.Mode != "barge" {
		t.Fatalf("PATCH barge: %v %+v", err, s)
	}
	r.HearsAfter(c.Customer, asked, hzSupervisor, true, "customer hears the barge")
	s, err := b.app.Leave(ctx, adamKey, rec.ID)
	if err != nil || s.State != store.StateEnded || s.EndReason != ReasonAPI {
		t.Fatalf("DELETE: %v %+v", err, s)
	}
	r.AwaitEnded(sup, 5*time.Second, "supervisor after DELETE")
	r.assertClean(b)
	r.HearsAfter(c.Customer, time.Now(), hzAgent, true, "customer after supervision")
}

// TestE2EAdoptAfterCrashSameName: killed and restarted under the same name, the instance takes
// its lease over at once (a restart of itself) and adopts its session; when the call then ends,
// the supervisor hears the end tone and everything goes.
func TestE2EAdoptAfterCrashSameName(t *testing.T) {
	r := newHARig(t, 3*time.Second)
	a := r.start("pod")
	r.awaitActive(a, 10*time.Second)
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	sup, _ := r.Dial(r.Phone("700", hzSupervisor, testphone.AutoAnswer), "*91744")
	r.Hears(c.Agent, hzSupervisor, "agent hears the whisper")
	rec := r.only("acme")

	from := time.Now()
	r.crash(a)
	restarted := time.Now()
	a2 := r.start("pod")
	r.awaitRuns(a2, rec.ID, 5*time.Second)
	took := time.Since(restarted)
	t.Logf("restart under the same name to adopted: %v", took)
	if took >= r.ttl {
		t.Errorf("a restart under the same name waited %v for its own lease (TTL %v)", took, r.ttl)
	}
	time.Sleep(200 * time.Millisecond)
	r.noGap("agent", c.Agent, sup, hzSupervisor, from, time.Now())

	ctx, cancel := context.WithTimeout(r.Ctx, 20*time.Second)
	defer cancel()
	at := press(t, ctx, sup, "0")
	r.HearsAfter(c.Agent, at, hzSupervisor, false, "agent after DTMF 0 (spy)")
	hungUp := time.Now()
	if err := c.Customer.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r.HearsAfter(sup, hungUp, e2etest.ToneRefusalLow, true, "supervisor hears the end tone")
	r.AwaitEnded(sup, 5*time.Second, "supervisor after the call ended")
	r.assertClean(a2)
	if got, _ := r.Store.GetSession(r.Ctx, rec.ID); got.EndReason != ReasonCallEnded || got.Instance != "pod" || got.Epoch == rec.Epoch {
		t.Errorf("ended record: %+v", got)
	}
}

// TestE2EActiveStandby: two instances of one node. The standby forwards the API to the active
// (join, calls, PATCH); the active is paused (as a stopped process: no renewals, its socket
// gone) and the standby takes over within the lease's TTL and adopts the session without a gap;
// the paused instance comes back, its session in memory is asked to switch and to end, and
// nothing happens: the session is the new active's (fencing); the old one learns it lost the
// lease and stops. The API works on the new active and, forwarded, on the old one.
func TestE2EActiveStandby(t *testing.T) {
	r := newHARig(t, 3*time.Second) // the production TTL: the takeover time measured is the real one
	a := r.start("a")
	r.awaitActive(a, 10*time.Second)
	b := r.start("b")
	e2etest.WaitFor(t, 5*time.Second, "b stands by", func() bool {
		name, err := r.Store.StandbyPresent(r.Ctx, e2etest.AppName)
		return err == nil && name == "b"
	})
	if b.app.Active() || b.client.Stats().Connected {
		t.Fatal("the standby connected the events socket")
	}
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	adam := r.Phone("700", hzSupervisor, testphone.AutoAnswer)
	ctx, cancel := context.WithTimeout(r.Ctx, 40*time.Second)
	defer cancel()

	// Join through the standby: the active rings the phone and runs the session.
	rec, err := b.app.Join(ctx, adamKey, JoinRequest{Agent: "744", Mode: dialplan.Whisper})
	if err != nil || rec.State != store.StateRinging {
		t.Fatalf("join on the standby: %v %+v", err, rec)
	}
	sup, err := adam.AwaitIncoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		sup.Hangup(hctx)
	})
	r.Hears(c.Agent, hzSupervisor, "agent hears the whisper joined through the standby")
	r.awaitRuns(a, rec.ID, time.Second)
	// The calls list on the standby shows the supervisor (from Redis).
	calls, err := b.app.Calls(ctx, adamKey)
	if err != nil || len(calls) != 1 || len(calls[0].Supervisors) != 1 || calls[0].Supervisors[0].SessionID != rec.ID {
		t.Fatalf("calls on the standby: %v %+v", err, calls)
	}
	// PATCH through the standby.
	asked := time.Now()
	if s, err := b.app.SetMode(ctx, adamKey, rec.ID, dialplan.Spy); err != nil || s.Mode != "spy" {
		t.Fatalf("PATCH spy on the standby: %v %+v", err, s)
	}
	r.HearsAfter(c.Agent, asked, hzSupervisor, false, "agent after spy")
	asked = time.Now()
	if _, err := b.app.SetMode(ctx, adamKey, rec.ID, dialplan.Whisper); err != nil {
		t.Fatalf("PATCH whisper on the standby: %v", err)
	}
	r.HearsAfter(c.Agent, asked, hzSupervisor, true, "agent hears the whisper again")

	// The active pauses: the standby takes over.
	from := time.Now()
	a.app.freeze()
	took := r.awaitActive(b, 2*r.ttl)
	r.awaitRuns(b, rec.ID, 5*time.Second)
	t.Logf("active paused to standby active: %v, session adopted after %v (lease TTL %v)", took, time.Since(from), r.ttl)
	if took > r.ttl+time.Second {
		t.Errorf("takeover took %v", took)
	}
	time.Sleep(300 * time.Millisecond)
	r.noGap("agent", c.Agent, sup, hzSupervisor, from, time.Now())
	r.adoptAudited(rec.ID, "a")

	// Fencing: the old active comes back. Its session, still in its memory, gets a digit and an
	// end request: it acts on neither (the record is b's), and abandons the session.
	old, ok := a.app.localSession(rec.ID)
	if !ok {
		t.Fatal("the paused instance lost its session before it came back")
	}
	entries := len(r.Audit("acme"))
	old.postARI(&ari.ChannelDtmfReceived{Digit: "0", Channel: ari.Channel{ID: old.supChan}})
	old.postEvent(evLeave{reason: ReasonAPI})
	e2etest.AwaitClosed(t, old.done, 5*time.Second, "the stale session to be abandoned")
	checked := time.Now()
	time.Sleep(300 * time.Millisecond)
	r.HearsAfter(c.Agent, checked, hzSupervisor, true, "agent still hears the whisper")
	if p := c.Agent.Heard(hzSupervisor, checked, time.Now()); p.Present < p.Frames*9/10 {
		t.Errorf("agent heard the whisper in %d of %d frames after the stale owner acted", p.Present, p.Frames)
	}
	got, err := r.Store.GetSession(ctx, rec.ID)
	if err != nil || got.Instance != "b" || got.State != store.StateActive || got.Mode != "whisper" {
		t.Fatalf("record after the stale owner acted: %v %+v", err, got)
	}
	if es := r.Audit("acme"); len(es) != entries {
		t.Errorf("the stale owner audited: %+v", es[entries:])
	}
	a.app.thaw()
	e2etest.AwaitClosed(t, a.done, 5*time.Second, "the old active to stop")
	if !errors.Is(a.err, ErrLeaseLost) {
		t.Errorf("old active stopped with %v, want ErrLeaseLost", a.err)
	}

	// The API on the new active, and forwarded from the old one.
	asked = time.Now()
	if s, err := a.app.SetMode(ctx, adamKey, rec.ID, dialplan.Spy); err != nil || s.Mode != "spy" {
		t.Fatalf("PATCH on the old instance (forwarded): %v %+v", err, s)
	}
	r.HearsAfter(c.Agent, asked, hzSupervisor, false, "agent after spy")
	calls, err = b.app.Calls(ctx, adamKey)
	if err != nil || len(calls) != 1 || len(calls[0].Supervisors) != 1 || calls[0].Supervisors[0].Mode != "spy" {
		t.Fatalf("calls on the new active: %v %+v", err, calls)
	}
	at := press(t, ctx, sup, "1")
	r.HearsAfter(c.Agent, at, hzSupervisor, true, "agent after DTMF 1 on the new active")
	if s, err := b.app.Leave(ctx, adamKey, rec.ID); err != nil || s.State != store.StateEnded {
		t.Fatalf("DELETE on the new active: %v %+v", err, s)
	}
	r.AwaitEnded(sup, 5*time.Second, "supervisor after DELETE")
	r.assertClean(a, b)
	if es := r.Audit("acme"); !slices.ContainsFunc(es, func(e store.AuditEntry) bool {
		return e.Session == rec.ID && e.Action == "end" && e.Reason == ReasonAPI
	}) {
		t.Error("no end entry")
	}
}

// TestE2ECallEndsWhileDown: the call ends while no instance runs (the supervisor is left alone in
// the bridge); the instance that starts next finds it, and the supervisor hears the end tone and
// is hung up: nothing is left, the session ended as call_ended.
func TestE2ECallEndsWhileDown(t *testing.T) {
	r := newHARig(t, 3*time.Second)
	a := r.start("pod")
	r.awaitActive(a, 10*time.Second)
	c := r.Connect(r.Phone("800", hzCustomer, testphone.AutoAnswer), r.Phone("744", hzAgent, testphone.AutoAnswer), "744")
	sup, _ := r.Dial(r.Phone("700", hzSupervisor, testphone.AutoAnswer), "*92744")
	r.Hears(c.Customer, hzSupervisor, "customer hears the barge")
	rec := r.only("acme")
	r.crash(a)
	ctx, cancel := context.WithTimeout(r.Ctx, 10*time.Second)
	defer cancel()
	if err := c.Customer.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	r.AwaitEnded(c.Agent, 5*time.Second, "agent")
	restarted := time.Now()
	a2 := r.start("pod")
	r.HearsAfter(sup, restarted, e2etest.ToneRefusalLow, true, "supervisor hears the end tone after the restart")
	r.AwaitEnded(sup, 5*time.Second, "supervisor")
	t.Logf("restart to supervisor hung up: %v", time.Since(restarted))
	r.assertClean(a2)
	got, _ := r.Store.GetSession(r.Ctx, rec.ID)
	if got.EndReason != ReasonCallEnded {
		t.Errorf("ended record: %+v", got)
	}
	if _, ok := e2etest.FindAudit(r.Audit("acme"), "end", "ok", ReasonCallEnded); !ok {
		t.Error("no end audit entry")
	}
}
