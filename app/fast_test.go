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
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
)

// The fast tests drive the app against fakeARI (in memory) and a real Redis: the app's own rules
// — refusals, teardown order, the talker slot, reconciliation — in milliseconds. What Asterisk
// does is proven by the end-to-end tests on a real Asterisk, not here.

type fastRig struct {
	t     *testing.T
	ari   *fakeARI
	app   *App
	store *store.Store
}

func newFastRig(t *testing.T, mods ...func(*Config)) *fastRig {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	rs := redistest.Start(t)
	opts := rs.Options()
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	st := store.New(rdb, store.Options{})
	cfg, err := config.Load("testdata/e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := config.NewDirectory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeARI(t)
	acfg := Config{
		AppName: "earpiece", Instance: "fast",
		RefusalTone: 30 * time.Millisecond, EndTone: 30 * time.Millisecond,
		SnoopTimeout: time.Second, CallTimeout: 2 * time.Second,
	}
	for _, m := range mods {
		m(&acfg)
	}
	a := New(acfg, f, st, dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx, f.events) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("App.Run did not return")
		}
	})
	return &fastRig{t: t, ari: f, app: a, store: st}
}

// eventually waits until cond holds (deadline 5 s).
func (r *fastRig) eventually(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *fastRig) audit(tenant string) []store.AuditEntry {
	r.t.Helper()
	es, err := r.store.Audit(context.Background(), tenant, time.Time{}, time.Now().Add(time.Minute), 1000)
	if err != nil {
		r.t.Fatal(err)
	}
	return es
}

// clean reports what earpiece left behind: its bridges, snoops, live sessions, running sessions.
func (r *fastRig) leftovers(tenant string) string {
	var out []string
	for _, b := range r.ari.Bridges() {
		if strings.HasPrefix(b.Name, BridgeNamePrefix) {
			out = append(out, "bridge "+string(b.ID))
		}
	}
	for _, s := range r.ari.Snoops() {
		out = append(out, "snoop "+string(s))
	}
	live, err := r.store.ListSessions(context.Background(), tenant)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		out = append(out, err.Error())
	}
	for _, s := range live {
		out = append(out, "session "+s.ID)
	}
	if n := len(r.app.Live()); n > 0 {
		out = append(out, "running sessions")
	}
	return strings.Join(out, "; ")
}

func (r *fastRig) assertClean(tenant string) {
	r.t.Helper()
	var last string
	r.eventually("nothing left behind", func() bool { last = r.leftovers(tenant); return last == "" })
	if last != "" {
		r.t.Fatal(last)
	}
}

// sessionOf waits for the running session of supervisor channel sup.
func (r *fastRig) active(sup ari.ChannelID) {
	r.t.Helper()
	r.eventually("session of "+string(sup)+" active", func() bool {
		return slices.ContainsFunc(r.ari.Calls("AddChannel"), func(c string) bool { return strings.HasPrefix(c, "AddChannel "+string(sup)+" ") })
	})
}

func TestFastRefusals(t *testing.T) {
	r := newFastRig(t)
	r.ari.Call("PJSIP/744")
	r.ari.Call("PJSIP/746")
	tests := []struct {
		name, endpoint, tenant, dialed, code string
	}{
		{"caller in no tenant", "PJSIP/999", "acme", "*90744", RefuseUnknownCaller},
		{"dialplan names another tenant", "PJSIP/700", "globex", "*90744", RefuseTenantMismatch},
		{"unknown code", "PJSIP/700", "acme", "*99744", RefuseUnknownCode},
		{"letters as target", "PJSIP/700", "acme", "*90abc", RefuseInvalidTarget},
		{"unknown extension", "PJSIP/700", "acme", "*90799", RefuseUnknownExtension},
		{"agent role", "PJSIP/744", "acme", "*90745", RefuseNotSupervisor},
		{"self", "PJSIP/700", "acme", "*90700", RefuseSelf},
		{"other hunt group", "PJSIP/700", "acme", "*90746", RefuseNotAllowed},
		{"no active call", "PJSIP/700", "acme", "*90745", RefuseNoActiveCall},
		{"tenant disabled", "PJSIP/900", "globex", "*21901", RefuseTenantDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sup := r.ari.Dial(tt.endpoint, tt.tenant, tt.dialed)
			r.eventually("supervisor hung up", func() bool {
				return slices.Contains(r.ari.Calls("Hangup"), "Hangup "+string(sup))
			})
			calls := r.ari.Calls("Answer "+string(sup), "Play tone:congestion on "+string(sup), "Hangup "+string(sup))
			want := []string{"Answer " + string(sup), "Play tone:congestion on " + string(sup), "Hangup " + string(sup)}
			if !slices.Equal(calls, want) {
				t.Errorf("the supervisor's calls: %q, want answer, congestion, hangup in that order", calls)
			}
			r.assertClean("acme")
			tenant := tt.tenant
			if tt.code == RefuseUnknownCaller {
				tenant = "_unknown"
			} else if tt.code == RefuseTenantMismatch {
				tenant = "acme"
			}
			if !slices.ContainsFunc(r.audit(tenant), func(e store.AuditEntry) bool {
				return e.Action == "join" && e.Outcome == "refused" && e.Reason == tt.code && e.Extra["dialed"] == tt.dialed
			}) {
				t.Errorf("no refused-join audit entry with reason %s in %s", tt.code, tenant)
			}
		})
	}
	// Nothing was made for any refusal: no snoop, no bridge was ever created.
	if made := r.ari.Calls("Snoop", "CreateBridge"); len(made) > 0 {
		t.Errorf("refusals made %q", made)
	}
}

// A join that Asterisk fails half-way: the snoop goes before the supervisor hears the tone, the
// supervisor is hung up before the bridge goes, and the record ends as an error.
func TestFastTeardownOrder(t *testing.T) {
	r := newFastRig(t)
	r.ari.Call("PJSIP/744")
	r.ari.Fail("AddChannel", errors.New("boom"))
	sup := r.ari.Dial("PJSIP/700", "acme", "*90744")
	// The bridge goes last: once it is gone, the whole teardown has been carried out.
	r.eventually("the bridge destroyed", func() bool { return len(r.ari.Calls("DestroyBridge")) > 0 })
	calls := r.ari.Calls("Snoop", "Hangup", "Play", "DestroyBridge", "CreateBridge")
	idx := func(prefix string) int {
		return slices.IndexFunc(calls, func(c string) bool { return strings.HasPrefix(c, prefix) })
	}
	snoopHangup := idx("Hangup " + snoopPrefix)
	tone, supHangup, destroy := idx("Play tone:congestion on "+string(sup)), idx("Hangup "+string(sup)), idx("DestroyBridge")
	if idx("CreateBridge") < 0 || snoopHangup < 0 || tone < 0 || supHangup < 0 || destroy < 0 ||
		!(snoopHangup < tone && tone < supHangup && supHangup < destroy) {
		t.Errorf("teardown order: %q; want snoop hung up, tone, supervisor hung up, bridge destroyed", calls)
	}
	r.assertClean("acme")
	if !slices.ContainsFunc(r.audit("acme"), func(e store.AuditEntry) bool {
		return e.Action == "end" && e.Outcome == "failed" && e.Reason == ReasonError
	}) {
		t.Error("no failed end audit entry")
	}
}

// One talker per call: a second supervisor's whisper is refused while the first whispers, and
// granted once the first is back to spy.
func TestFastTalkerSlot(t *testing.T) {
	r := newFastRig(t)
	agent := r.ari.Call("PJSIP/744")
	adam := r.ari.Dial("PJSIP/700", "acme", "*90744")
	r.active(adam)
	beth := r.ari.Dial("PJSIP/701", "acme", "*90744")
	r.active(beth)
	snoops := func(whisper ari.Direction) int {
		return len(slices.DeleteFunc(r.ari.Calls("Snoop"), func(c string) bool { return !strings.HasSuffix(c, " on "+string(agent)+" whisper="+string(whisper)) }))
	}
	// The agent's ear of a supervisor's talk paths (talk.go), once made.
	ear := func() ari.ChannelID {
		for _, c := range r.ari.Calls("Snoop") {
			if f := strings.Fields(c); strings.HasSuffix(c, " on "+string(agent)+" whisper="+string(ari.DirOut)) {
				return ari.ChannelID(f[1])
			}
		}
		return ""
	}
	r.ari.Digit(adam, "1")
	r.eventually("Adam whispers", func() bool { return snoops(ari.DirOut) == 1 && !r.ari.Muted(ear(), ari.DirOut) })
	r.ari.Digit(beth, "1")
	r.eventually("Beth hears the refusal", func() bool {
		return slices.Contains(r.ari.Calls("Play"), "Play tone:congestion on "+string(beth))
	})
	if n := snoops(ari.DirOut); n != 1 {
		t.Fatalf("%d whisper snoops; Beth's whisper must not be made", n)
	}
	if !slices.ContainsFunc(r.audit("acme"), func(e store.AuditEntry) bool {
		return e.Action == "mode_change" && e.Outcome == "refused" && e.Reason == RefuseTalkerBusy && e.Actor == "701"
	}) {
		t.Error("no talker_busy audit entry for Beth")
	}
	adamsEar := ear()
	r.ari.Digit(adam, "0")
	r.eventually("Adam back to spy", func() bool { return r.ari.Muted(adamsEar, ari.DirOut) })
	r.eventually("the slot is free", func() bool {
		ok, err := r.store.Claim(context.Background(), talkerKey(agent), "probe", time.Minute)
		if ok {
			_ = r.store.Release(context.Background(), talkerKey(agent), "probe")
		}
		return err == nil && ok
	})
	r.ari.Digit(beth, "2")
	r.eventually("Beth barges: her ears to agent and customer are made open", func() bool {
		return snoops(ari.DirOut) == 2 && snoops(ari.DirIn) == 2 && slices.ContainsFunc(r.app.Live(), func(id string) bool {
			v, _ := r.app.localSession(id)
			return v != nil && v.view.Load().supervisor == "701" && v.view.Load().mode == "barge"
		})
	})
	r.ari.HangupFromPhone(agent)
	r.assertClean("acme")
}

// Reconciliation after a (re)connection removes what a crashed instance left, and leaves alone
// a live session of another instance.
func TestFastReconcile(t *testing.T) {
	r := newFastRig(t)
	agent := r.ari.Call("PJSIP/744")
	orphan := newSessionID()
	ob, os := r.ari.PutOrphan(orphan, agent)
	other := newSessionID()
	now := time.Now()
	if err := r.store.CreateSession(context.Background(), store.Session{
		ID: other, Tenant: "acme", Supervisor: "701", Agent: "744", CallID: string(agent), Origin: "api",
		Mode: "spy", State: store.StateActive, Instance: "elsewhere", StartedAt: now, UpdatedAt: now,
	}); err != nil {
		t.Fatal(err)
	}
	kb, ks := r.ari.PutOrphan(other, agent)
	r.ari.emit(&ari.ConnectionEvent{State: ari.Connected})
	r.eventually("the orphan removed", func() bool {
		return !slices.ContainsFunc(r.ari.Bridges(), func(b ari.Bridge) bool { return b.ID == ob }) && !slices.Contains(r.ari.Snoops(), os)
	})
	if !slices.ContainsFunc(r.ari.Bridges(), func(b ari.Bridge) bool { return b.ID == kb }) || !slices.Contains(r.ari.Snoops(), ks) {
		t.Error("another instance's live session was removed")
	}
}
