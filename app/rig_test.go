package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/internal/asterisktest"
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/internal/testphone"
	"github.com/earpiece/earpiece/store"
)

// TestMain stops the shared test Asterisk after the tests, then checks that nothing was left
// running (each rig also checks its own test, see newRig).
func TestMain(m *testing.M) {
	code := asterisktest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Test tones beyond the three parties': a second supervisor, and the 480+620 Hz pair of the
// congestion and busy tones a refused or ended supervisor hears.
const (
	toneSupervisor2 = 1500.0
	toneRefusalLow  = 480.0
	toneRefusalHigh = 620.0
	toneBeep        = 1400.0
)

var watch = []float64{testphone.ToneCustomer, testphone.ToneAgent, testphone.ToneSupervisor, toneSupervisor2, toneRefusalLow, toneRefusalHigh, toneBeep}

// rig is one end-to-end setup: the shared test Asterisk, a Redis of its own, the ARI client and
// the app running as Stasis app "earpiece".
type rig struct {
	t      *testing.T
	ast    *asterisktest.Instance
	redis  *redistest.Server
	rdb    *redis.Client
	store  *store.Store
	client *ari.Client
	app    *App
	dir    *config.Directory
	ctx    context.Context
	// dtmfEnd is when the supervisor's last digit ended (for timing tones that stop).
	dtmfEnd time.Time
}

func newRig(t *testing.T) *rig {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: needs Asterisk and Redis")
	}
	ast := asterisktest.Shared(t)
	if ast.SIPPort == 0 {
		t.Skip("no SIP address for the test Asterisk (EARPIECE_TEST_SIP_ADDR)")
	}
	// Registered first, so it runs last: by then every goroutine this test started (app, ARI
	// client, phones, Redis) must have ended.
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
	log := zerolog.Nop()
	if os.Getenv("EARPIECE_TEST_LOG") != "" {
		zerolog.TimeFieldFormat = "15:04:05.000000"
		log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	client, err := ari.New(ari.Config{BaseURL: ast.ARIURL, User: ast.User, Password: ast.Password, App: "earpiece", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, ast: ast, redis: rs, rdb: rdb, store: st, client: client, dir: dir, ctx: ctx}
	r.app = New(Config{
		AppName:     "earpiece",
		Instance:    "test",
		RefusalTone: 700 * time.Millisecond,
		EndTone:     500 * time.Millisecond,
		CallTimeout: 2 * time.Second,
		Logger:      log,
	}, client, st, dir)
	clientDone := make(chan struct{})
	go func() { defer close(clientDone); client.Run(ctx) }()
	appCtx, stopApp := context.WithCancel(context.Background())
	appDone := make(chan struct{})
	go func() { defer close(appDone); r.app.Run(appCtx, client.Events()) }()
	t.Cleanup(func() {
		// The app ends its sessions before Run returns; the socket closes after it.
		stopApp()
		awaitClosed(t, appDone, 20*time.Second, "App.Run to return")
		cancel()
		awaitClosed(t, clientDone, 10*time.Second, "the ARI client to stop")
		client.CloseIdleConnections()
	})
	waitFor(t, 10*time.Second, "ARI connected", func() bool { return client.Stats().Connected })
	return r
}

// awaitClosed waits for done to close, failing the test after limit.
func awaitClosed(t *testing.T, done <-chan struct{}, limit time.Duration, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("timed out after %s waiting for %s", limit, what)
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// phone registers a test phone as user, sending tone hz.
func (r *rig) phone(user string, hz float64, policy testphone.Policy) *testphone.Phone {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	p, err := testphone.New(ctx, testphone.Config{
		User: user, Server: r.ast.SIPAddr(), ToneHz: hz, Incoming: policy,
		Detector: testphone.Detector{Watch: watch},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { p.Close() })
	if err := p.Register(ctx); err != nil {
		r.t.Fatalf("register %s: %v", user, err)
	}
	return p
}

// call is a customer-agent call through a plain Dial() (or the queue, with target "600").
type call struct {
	customer, agent *testphone.Call
}

func (r *rig) connect(customer, agent *testphone.Phone, target string) call {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	cc, err := customer.Call(ctx, target)
	if err != nil {
		r.t.Fatalf("customer calls %s: %v", target, err)
	}
	ac, err := agent.AwaitIncoming(ctx)
	if err != nil {
		r.t.Fatalf("agent gets the call: %v", err)
	}
	r.t.Cleanup(func() {
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		cc.Hangup(hctx)
	})
	// Both hear each other before supervision starts.
	r.hears(cc, testphone.ToneAgent, "customer")
	r.hears(ac, testphone.ToneCustomer, "agent")
	return call{customer: cc, agent: ac}
}

// dial makes the supervisor's feature-code call and returns it with the moment it was answered.
func (r *rig) dial(sup *testphone.Phone, code string) (*testphone.Call, time.Time) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	c, err := sup.Call(ctx, code)
	if err != nil {
		r.t.Fatalf("%s dials %s: %v", sup.User(), code, err)
	}
	at := time.Now()
	r.t.Cleanup(func() {
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c.Hangup(hctx)
	})
	return c, at
}

// hears waits until c hears hz steadily (5 frames in a row).
func (r *rig) hears(c *testphone.Call, hz float64, who string) time.Time {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
	defer cancel()
	at, err := c.AwaitToneSince(ctx, time.Time{}.Add(1), hz, true, 5)
	if err != nil {
		r.t.Fatalf("%s never heard %v Hz: %v", who, hz, err)
	}
	return at
}

// hearsAfter waits until c hears hz (present or absent) in 5 consecutive frames arriving after
// since, and returns the first of them.
func (r *rig) hearsAfter(c *testphone.Call, since time.Time, hz float64, present bool, who string) time.Time {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
	defer cancel()
	at, err := c.AwaitToneSince(ctx, since, hz, present, 5)
	if err != nil {
		r.t.Fatalf("%s: %v Hz present=%v: %v", who, hz, present, err)
	}
	return at
}

// silentOn asserts that c did not hear hz in any frame in [since, until).
func (r *rig) silentOn(c *testphone.Call, hz float64, since, until time.Time, who string) {
	r.t.Helper()
	p := c.Heard(hz, since, until)
	if p.Frames < 10 {
		r.t.Fatalf("%s received only %d frames in %s", who, p.Frames, until.Sub(since))
	}
	if p.Present > 0 {
		r.t.Errorf("%s heard %v Hz in %d of %d frames; want none", who, hz, p.Present, p.Frames)
	}
}

// awaitEnded waits for c to end (the far end hung up).
func (r *rig) awaitEnded(c *testphone.Call, limit time.Duration, who string) {
	r.t.Helper()
	select {
	case <-c.Done():
	case <-time.After(limit):
		r.t.Fatalf("%s was not hung up within %s", who, limit)
	}
}

// assertClean checks that nothing earpiece made is left: no earpiece bridge, no snoop channel on
// Asterisk, no live session in Redis.
func (r *rig) assertClean(tenant string) {
	r.t.Helper()
	var last string
	deadline := time.Now().Add(3 * time.Second)
	for {
		last = r.leftovers(tenant)
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("left behind: %s", last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rig) leftovers(tenant string) string {
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
	defer cancel()
	var out []string
	bridges, err := r.client.ListBridges(ctx)
	if err != nil {
		return "list bridges: " + err.Error()
	}
	for _, b := range bridges {
		if strings.HasPrefix(b.Name, BridgeNamePrefix) || strings.HasPrefix(string(b.ID), bridgePrefix) {
			out = append(out, "bridge "+string(b.ID))
		}
	}
	chans, err := r.client.ListChannels(ctx)
	if err != nil {
		return "list channels: " + err.Error()
	}
	for _, c := range chans {
		if strings.HasPrefix(string(c.ID), snoopPrefix) || strings.HasPrefix(c.Name, "Snoop/") {
			out = append(out, "channel "+c.Name)
		}
	}
	live, err := r.store.ListSessions(ctx, tenant)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "list sessions: " + err.Error()
	}
	for _, s := range live {
		out = append(out, "session "+s.ID+" ("+s.State+")")
	}
	if len(r.app.Live()) > 0 {
		out = append(out, "app sessions "+strings.Join(r.app.Live(), ","))
	}
	return strings.Join(out, "; ")
}

// audit returns the tenant's audit entries so far.
func (r *rig) audit(tenant string) []store.AuditEntry {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
	defer cancel()
	es, err := r.store.Audit(ctx, tenant, time.Time{}, time.Now().Add(time.Minute), 1000)
	if err != nil {
		r.t.Fatal(err)
	}
	return es
}

// findAudit returns the first entry with action and outcome (and reason, when not "").
func findAudit(es []store.AuditEntry, action, outcome, reason string) (store.AuditEntry, bool) {
	for _, e := range es {
		if e.Action == action && e.Outcome == outcome && (reason == "" || e.Reason == reason) {
			return e, true
		}
	}
	return store.AuditEntry{}, false
}

// maxGap is the longest a steady tone may go unheard at a mode switch or while supervision starts
// and ends: about four frames, beyond the sender's own stalls on a loaded test machine.
const maxGap = 80 * time.Millisecond

// noGap asserts that listener heard hz (sent by sender) without a gap longer than maxGap in
// [from, to), allowing for the sending phone's own CPU stalls in that window.
func (r *rig) noGap(who string, listener, sender *testphone.Call, hz float64, from, to time.Time) {
	r.t.Helper()
	gap := listener.LongestAbsence(hz, from, to)
	if allowed := maxGap + sender.SenderStall(from, to); gap > allowed {
		r.t.Errorf("%s: %v Hz missing for %v (allowed %v)", who, hz, gap, allowed)
	}
}

// hearsAfterN waits until c hears hz in n consecutive frames arriving after since.
func (r *rig) hearsAfterN(c *testphone.Call, since time.Time, hz float64, n int, who string) time.Time {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
	defer cancel()
	at, err := c.AwaitToneSince(ctx, since, hz, true, n)
	if err != nil {
		r.t.Fatalf("%s: %v Hz: %v", who, hz, err)
	}
	return at
}
