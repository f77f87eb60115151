package app

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
)

// Tests of the event-kept calls index (calls.go) and of what a join costs (lookup.go), on the
// fake ARI and a real Redis. scale_fake_test.go measures the same at 10 and 1,000 live sessions.

// countingARI counts every ARI call the app makes, by method, and the time spent in the fake
// (so that a measurement can leave the fake's own costs out: it scans all its bridges on some
// calls, which Asterisk does not). A method the fake records (Calls) but this wrapper does not
// wrap is counted from that record.
type countingARI struct {
	*fakeARI
	mu    sync.Mutex
	n     map[string]int
	seen  int           // f.calls read so far
	inARI time.Duration // spent in the fake's methods
	// beforeList, when set, runs at the start of ListChannels (a rebuild between its two listings).
	beforeList func()
}

func newCountingARI(f *fakeARI) *countingARI { return &countingARI{fakeARI: f, n: map[string]int{}} }

// wrapped are the methods countingARI counts itself.
var wrapped = map[string]bool{
	"Answer": true, "Hangup": true, "GetChannel": true, "SetVar": true, "Snoop": true, "Play": true,
	"StopPlayback": true, "CreateBridge": true, "AddChannel": true, "DestroyBridge": true,
	"ListBridges": true, "ListChannels": true, "Originate": true, "Subscribe": true, "GetEndpoint": true,
}

// call counts method and returns the function that adds its duration.
func (c *countingARI) call(method string) func() {
	start := time.Now()
	return func() {
		d := time.Since(start)
		c.mu.Lock()
		c.n[method]++
		c.inARI += d
		c.mu.Unlock()
	}
}

func (c *countingARI) Answer(ctx context.Context, id ari.ChannelID) error {
	defer c.call("Answer")()
	return c.fakeARI.Answer(ctx, id)
}

func (c *countingARI) Hangup(ctx context.Context, id ari.ChannelID, reason string) error {
	defer c.call("Hangup")()
	return c.fakeARI.Hangup(ctx, id, reason)
}

func (c *countingARI) GetChannel(ctx context.Context, id ari.ChannelID) (ari.Channel, error) {
	defer c.call("GetChannel")()
	return c.fakeARI.GetChannel(ctx, id)
}

func (c *countingARI) SetVar(ctx context.Context, id ari.ChannelID, name, value string) error {
	defer c.call("SetVar")()
	return c.fakeARI.SetVar(ctx, id, name, value)
}

func (c *countingARI) Snoop(ctx context.Context, id ari.ChannelID, req ari.SnoopRequest) (ari.Channel, error) {
	defer c.call("Snoop")()
	return c.fakeARI.Snoop(ctx, id, req)
}

func (c *countingARI) Play(ctx context.Context, id ari.ChannelID, req ari.PlayRequest) (ari.Playback, error) {
	defer c.call("Play")()
	return c.fakeARI.Play(ctx, id, req)
}

func (c *countingARI) StopPlayback(ctx context.Context, id ari.PlaybackID) error {
	defer c.call("StopPlayback")()
	return c.fakeARI.StopPlayback(ctx, id)
}

func (c *countingARI) CreateBridge(ctx context.Context, req ari.CreateBridgeRequest) (ari.Bridge, error) {
	defer c.call("CreateBridge")()
	return c.fakeARI.CreateBridge(ctx, req)
}

func (c *countingARI) AddChannel(ctx context.Context, bridge ari.BridgeID, req ari.AddChannelRequest) error {
	defer c.call("AddChannel")()
	return c.fakeARI.AddChannel(ctx, bridge, req)
}

func (c *countingARI) DestroyBridge(ctx context.Context, id ari.BridgeID) error {
	defer c.call("DestroyBridge")()
	return c.fakeARI.DestroyBridge(ctx, id)
}

func (c *countingARI) ListBridges(ctx context.Context) ([]ari.Bridge, error) {
	defer c.call("ListBridges")()
	return c.fakeARI.ListBridges(ctx)
}

func (c *countingARI) ListChannels(ctx context.Context) ([]ari.Channel, error) {
	defer c.call("ListChannels")()
	if c.beforeList != nil {
		c.beforeList()
	}
	return c.fakeARI.ListChannels(ctx)
}

func (c *countingARI) Originate(ctx context.Context, req ari.OriginateRequest) (ari.Channel, error) {
	defer c.call("Originate")()
	return c.fakeARI.Originate(ctx, req)
}

func (c *countingARI) Subscribe(ctx context.Context, app string, sources ...string) (ari.Application, error) {
	defer c.call("Subscribe")()
	return c.fakeARI.Subscribe(ctx, app, sources...)
}

func (c *countingARI) GetEndpoint(ctx context.Context, tech, resource string) (ari.Endpoint, error) {
	defer c.call("GetEndpoint")()
	return c.fakeARI.GetEndpoint(ctx, tech, resource)
}

// counts returns every ARI call made so far, by method (reading only the fake's new records).
func (c *countingARI) counts() map[string]int {
	c.fakeARI.mu.Lock()
	fresh := c.fakeARI.calls[c.seen:]
	c.seen = len(c.fakeARI.calls)
	c.fakeARI.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, call := range fresh {
		if m, _, _ := strings.Cut(call, " "); !wrapped[m] {
			c.n[m]++
		}
	}
	out := make(map[string]int, len(c.n))
	for m, n := range c.n {
		out[m] = n
	}
	return out
}

// spent returns the time spent in the fake so far.
func (c *countingARI) spent() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inARI
}

// diffCounts is after minus before, without zeros.
func diffCounts(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for m, n := range after {
		if d := n - before[m]; d != 0 {
			out[m] = d
		}
	}
	return out
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func fmtCounts(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// pairs is a directory of one tenant ("acme") with n agents 20000+i and n supervisors 50000+i,
// each supervisor allowed to supervise its own agent (a hunt group per pair, so the directory
// grows as n and not as n²).
func pairsDirectory(tb testing.TB, n int) *config.Directory {
	tb.Helper()
	cfg, err := config.Load("testdata/e2e.yaml") // acme's settings, with the defaults applied
	if err != nil {
		tb.Fatal(err)
	}
	t := cfg.Tenants[0]
	t.Extensions, t.HuntGroups, t.APIKeys, t.Webhooks = nil, nil, nil, nil
	t.Announce = config.AnnounceNone
	for i := range n {
		ag, sup := agentExt(i), supervisorExt(i)
		t.Extensions = append(t.Extensions,
			config.Extension{Number: ag, Endpoint: "PJSIP/" + ag, Name: "agent " + ag, Role: config.RoleAgent},
			config.Extension{Number: sup, Endpoint: "PJSIP/" + sup, Name: "supervisor " + sup, Role: config.RoleSupervisor})
		t.HuntGroups = append(t.HuntGroups, config.HuntGroup{Name: "g" + ag, Members: []config.Member{
			{Extension: ag}, {Extension: sup, SupervisionAllowed: true},
		}})
	}
	cfg.Tenants = []config.Tenant{t}
	d, err := config.NewDirectory(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func agentExt(i int) string      { return fmt.Sprint(20000 + i) }
func supervisorExt(i int) string { return fmt.Sprint(50000 + i) }

// costRig is the app on a counting fake ARI and a Redis of its own, with a directory of pairs.
type costRig struct {
	tb    testing.TB
	f     *fakeARI
	ari   *countingARI
	app   *App
	rdb   *redis.Client
	store *store.Store
	notes *noteLog
}

func newCostRig(tb testing.TB, pairs int) *costRig {
	tb.Helper()
	ignore := goleak.IgnoreCurrent()
	tb.Cleanup(func() { goleak.VerifyNone(tb, ignore) })
	rs := redistest.Start(tb)
	opts := rs.Options()
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	tb.Cleanup(func() { rdb.Close() })
	st := store.New(rdb, store.Options{})
	f := newFakeARI(tb)
	f.events = make(chan ari.Event, 8192) // a thousand calls' events in flight
	ca := newCountingARI(f)
	notes := &noteLog{}
	a := New(Config{
		AppName: "earpiece", Instance: "cost",
		RefusalTone: 30 * time.Millisecond, EndTone: 30 * time.Millisecond,
		SnoopTimeout: time.Second, CallTimeout: 2 * time.Second, Notifier: notes,
	}, ca, st, pairsDirectory(tb, pairs))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx, f.events) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			tb.Fatal("App.Run did not return")
		}
	})
	return &costRig{tb: tb, f: f, ari: ca, app: a, rdb: rdb, store: st, notes: notes}
}

func (r *costRig) eventually(what string, cond func() bool) {
	r.tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// connect delivers the socket's Connected and waits for the index's trusted rebuild.
func (r *costRig) connect() {
	r.tb.Helper()
	r.f.emit(&ari.ConnectionEvent{State: ari.Connected})
	r.eventually("the calls index trusted", r.app.calls.trusted)
	// The connection's other work (reconciliation lists bridges and channels too) is done once
	// the app has made no ARI call for a while: only then may a join's calls be counted.
	last, quiet := r.ari.counts(), 0
	r.eventually("the app quiet after connecting", func() bool {
		time.Sleep(20 * time.Millisecond)
		now := r.ari.counts()
		if total(diffCounts(last, now)) == 0 {
			quiet++
		} else {
			quiet = 0
		}
		last = now
		return quiet >= 5
	})
}

// quietCall makes a call on the fake as the app would find it in a listing, without its events
// (calls in progress before the app connected).
func (r *costRig) quietCall(agentEndpoint string) ari.ChannelID {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	cust := f.addChannelLocked("", "PJSIP/800", "Up")
	ag := f.addChannelLocked("", agentEndpoint, "Up")
	f.seq++
	id := ari.BridgeID(fmt.Sprintf("basic-%d", f.seq))
	f.bridges[id] = &ari.Bridge{ID: id, Channels: []ari.ChannelID{cust.ch.ID, ag.ch.ID}}
	return ag.ch.ID
}

// sessionState is the published state of the session whose supervisor channel is sup ("" for
// none).
func (r *costRig) sessionState(sup ari.ChannelID) string {
	a := r.app
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.sessions {
		if s.supChan == sup {
			if v := s.view.Load(); v != nil {
				return v.state
			}
		}
	}
	return ""
}

// join has supervisor i dial the spy code of agent i and waits until the session is active.
func (r *costRig) join(i int) ari.ChannelID {
	r.tb.Helper()
	sup := r.f.Dial("PJSIP/"+supervisorExt(i), "acme", "*90"+agentExt(i))
	r.eventually("session of "+supervisorExt(i)+" active", func() bool { return r.sessionState(sup) == "active" })
	return sup
}

// TestFastJoinCostFlat: a join makes the same ARI calls, and no listing, whether 10 or 1,000
// other calls are in progress: the index answers, one GET /channels/{id} confirms.
func TestFastJoinCostFlat(t *testing.T) {
	const maxOthers = 1000
	got := map[int]map[string]int{}
	for _, others := range []int{10, maxOthers} {
		t.Run(fmt.Sprint(others), func(t *testing.T) {
			r := newCostRig(t, maxOthers+1)
			for i := range others {
				r.quietCall("PJSIP/" + agentExt(i+1))
			}
			agent := r.quietCall("PJSIP/" + agentExt(0))
			r.connect()
			if c, ok := r.app.callOf("acme", "", agentExt(0)); !ok || c.ID != string(agent) {
				t.Fatalf("the index has %+v, %v; want call %s", c, ok, agent)
			}
			before := r.ari.counts()
			sup := r.join(0)
			join := diffCounts(before, r.ari.counts())
			t.Logf("ARI calls of a join with %d other calls: %d (%s)", others, total(join), fmtCounts(join))
			for _, m := range []string{"ListBridges", "ListChannels", "GetEndpoint"} {
				if join[m] > 0 {
					t.Errorf("the join made %d %s", join[m], m)
				}
			}
			if !slices.ContainsFunc(r.f.Calls("Snoop"), func(c string) bool { return strings.HasSuffix(c, " on "+string(agent)+" whisper=none") }) {
				t.Errorf("no spy snoop on the agent's channel %s: %q", agent, r.f.Calls("Snoop"))
			}
			got[others] = join
			r.f.HangupFromPhone(sup)
			r.eventually("the session ended", func() bool { return len(r.app.Live()) == 0 })
		})
	}
	if a, b := got[10], got[maxOthers]; a != nil && b != nil && total(a) != total(b) {
		t.Errorf("a join's ARI calls grow with the calls in progress: %d with 10 (%s), %d with %d (%s)",
			total(a), fmtCounts(a), total(b), maxOthers, fmtCounts(b))
	}
}

// TestFastJoinBeforeSync: until the index's first rebuild after a connection, a join does not
// trust it and scans Asterisk (the REST path); it finds the call all the same.
func TestFastJoinBeforeSync(t *testing.T) {
	r := newCostRig(t, 2)
	agent := r.quietCall("PJSIP/" + agentExt(0))
	before := r.ari.counts()
	r.join(0)
	join := diffCounts(before, r.ari.counts())
	if join["ListBridges"] != 1 || join["GetEndpoint"] != 1 {
		t.Errorf("join before the index's sync: %s; want the REST scan (GetEndpoint, ListBridges)", fmtCounts(join))
	}
	if !slices.ContainsFunc(r.f.Calls("Snoop"), func(c string) bool { return strings.Contains(c, " on "+string(agent)+" ") }) {
		t.Errorf("no snoop on %s", agent)
	}
}

// TestFastCallsIndexEvents: the index follows the phones' events alone (no listing after the
// first): a call appears with BRIDGEPEER, is notified once, ends with its channel; a channel whose
// peers are only snoops (a supervisor in earpiece's bridge) is no call.
func TestFastCallsIndexEvents(t *testing.T) {
	r := newCostRig(t, 3)
	r.connect()
	lists := r.ari.counts()["ListChannels"]

	agent := r.f.Call("PJSIP/" + agentExt(0))
	r.eventually("the call listed", func() bool { _, ok := r.app.callOf("acme", string(agent), ""); return ok })
	cs := r.app.callsFor("acme")
	if len(cs) != 1 || cs[0].ID != string(agent) || cs[0].Agent != agentExt(0) || cs[0].Supervisors == nil {
		t.Fatalf("calls: %+v", cs)
	}
	r.eventually("call.started", func() bool { return slices.Contains(r.notes.types("call."), NoteCallStarted) })

	// A supervisor (also a directory endpoint) in earpiece's bridge: peers are snoops only.
	sup := r.join(0)
	if _, ok := r.app.callOf("acme", string(sup), ""); ok {
		t.Error("the supervisor's channel in earpiece's bridge is listed as a call")
	}
	ch, _ := r.f.GetChannel(context.Background(), sup)
	r.f.emit(&ari.ChannelVarset{Variable: varBridgePeer, Value: "Snoop/" + string(agent) + "-00000001", Channel: &ch})
	// A second call of another agent, then the first ends.
	other := r.f.Call("PJSIP/" + agentExt(2))
	r.eventually("the second call listed", func() bool { _, ok := r.app.callOf("acme", "", agentExt(2)); return ok })
	if _, ok := r.app.callOf("acme", string(sup), ""); ok {
		t.Error("a channel bridged with snoops only is listed as a call")
	}
	// Whatever its peers, a channel in earpiece's Stasis app is a supervisor's; one in another
	// app's is a call like any other.
	ch.Dialplan = ari.DialplanCEP{AppName: "Stasis", AppData: "earpiece,feature,acme,*90" + agentExt(0)}
	r.f.emit(&ari.ChannelVarset{Variable: varBridgePeer, Value: "PJSIP/800-00000009", Channel: &ch})
	elsewhere := ari.Channel{ID: "elsewhere", Name: "PJSIP/" + agentExt(1) + "-00000042", State: "Up",
		Dialplan: ari.DialplanCEP{AppName: "Stasis", AppData: "callcenter,in"}}
	r.f.emit(&ari.ChannelVarset{Variable: varBridgePeer, Value: "PJSIP/800-00000010", Channel: &elsewhere})
	r.eventually("the other app's call listed", func() bool { _, ok := r.app.callOf("acme", "elsewhere", ""); return ok })
	if _, ok := r.app.callOf("acme", string(sup), ""); ok {
		t.Error("a channel in earpiece's Stasis app is listed as a call")
	}
	r.f.emit(&ari.ChannelDestroyed{Channel: elsewhere})
	r.f.HangupFromPhone(agent)
	r.eventually("the call gone", func() bool { _, ok := r.app.callOf("acme", string(agent), ""); return !ok })
	r.eventually("call.ended", func() bool { return slices.Contains(r.notes.types("call."), NoteCallEnded) })
	if n := len(r.notes.types("call.started")); n != 3 {
		t.Errorf("%d call.started notifications, want 3 (one per call)", n)
	}
	if cs := r.app.callsFor("acme"); len(cs) != 1 || cs[0].ID != string(other) {
		t.Errorf("calls after the first ended: %+v", cs)
	}
	if n := r.ari.counts()["ListChannels"]; n != lists {
		t.Errorf("%d listings after the first: the index must follow events", n-lists)
	}
	r.f.HangupFromPhone(sup)
	r.eventually("the session ended", func() bool { return len(r.app.Live()) == 0 })
}

// TestFastCallsRebuildKeepsEvents: an event applied while a rebuild fetches its listings is not
// undone by them: a call that ends between the listings stays ended.
func TestFastCallsRebuildKeepsEvents(t *testing.T) {
	r := newCostRig(t, 2)
	agent := r.quietCall("PJSIP/" + agentExt(0))
	var once sync.Once
	r.ari.beforeList = func() {
		once.Do(func() {
			// The bridges are listed (with the call); the call ends before the channels are.
			r.f.mu.Lock()
			evs := r.f.hangupLocked(agent, 16)
			r.f.mu.Unlock()
			for _, ev := range evs {
				r.app.callEvent(ev) // as the dispatcher would, meanwhile
			}
		})
	}
	r.connect()
	if c, ok := r.app.callOf("acme", "", agentExt(0)); ok {
		t.Errorf("the ended call is listed: %+v", c)
	}
	// A call that started meanwhile is kept too.
	r.ari.beforeList = func() {}
	r.app.touchCalls()
	second := r.f.Call("PJSIP/" + agentExt(1))
	r.eventually("the new call listed", func() bool { _, ok := r.app.callOf("acme", string(second), ""); return ok })
}

// indexWithCalls is a calls index (no app) holding n calls of agents 1..n, applied as events.
func indexWithCalls(tb testing.TB, n int) (*calls, *config.Directory) {
	tb.Helper()
	d := pairsDirectory(tb, n+1)
	c := &calls{}
	c.init("earpiece")
	var ch changes
	for i := range n {
		ag := ari.Channel{ID: ari.ChannelID(fmt.Sprintf("ag-%d", i)), Name: fmt.Sprintf("PJSIP/%s-%08x", agentExt(i+1), i), State: "Up"}
		c.applyDerive(&ari.ChannelVarset{Variable: varBridgePeer, Value: "PJSIP/800-1", Channel: &ag}, d, &ch)
	}
	if len(c.live) != n {
		tb.Fatalf("%d calls indexed, want %d", len(c.live), n)
	}
	return c, d
}

// eventCost applies the events of one call's start and end (agent 0) to c: what each event of a
// phone's channel costs the index.
func eventCost(c *calls, d *config.Directory) {
	ag := ari.Channel{ID: "probe", Name: "PJSIP/" + agentExt(0) + "-probe", State: "Up"}
	var ch changes
	c.applyDerive(&ari.ChannelStateChange{Channel: ag}, d, &ch)
	c.applyDerive(&ari.ChannelVarset{Variable: varBridgePeer, Value: "PJSIP/800-2", Channel: &ag}, d, &ch)
	c.applyDerive(&ari.ChannelVarset{Variable: varBridgePeer, Value: "", Channel: &ag}, d, &ch)
	c.applyDerive(&ari.ChannelDestroyed{Channel: ag}, d, &ch)
}

// TestFastCallsEventCostFlat: an event costs the index the same allocations with 10 or 1,000
// calls in progress (it touches its own channel's call only).
func TestFastCallsEventCostFlat(t *testing.T) {
	allocs := map[int]float64{}
	for _, n := range []int{10, 1000} {
		c, d := indexWithCalls(t, n)
		allocs[n] = testing.AllocsPerRun(200, func() { eventCost(c, d) })
	}
	if allocs[1000] > allocs[10] {
		t.Errorf("a call's events allocate %.1f times with 1,000 calls, %.1f with 10", allocs[1000], allocs[10])
	}
}

func BenchmarkCallsIndexEvents(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) {
			c, d := indexWithCalls(b, n)
			b.ReportAllocs()
			for b.Loop() {
				eventCost(c, d)
			}
		})
	}
}
