// Package e2etest is the end-to-end kit shared by the tests of app and webhooks: a rig (the
// shared test Asterisk, a Redis of the test's own, an ARI client and the Stasis app running on
// them), SIP phones that call each other through that Asterisk, by-ear assertions on what each
// phone hears, and checks that nothing earpiece made outlives a test.
//
// It does not import app (app's own tests use it): the test builds the app from the rig's client
// and store, and hands it to Start as an App.
package e2etest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/internal/asterisktest"
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
)

// Main runs the package's tests, stops the shared test Asterisk, then checks that nothing was
// left running (each rig also checks its own test, see New). Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(e2etest.Main(m)) }
func Main(m *testing.M) int {
	// The phones' media is real time; keep it ahead of other work on a busy machine, as the test
	// Asterisk is (asterisktest.MediaNice).
	if err := asterisktest.RaisePriority(); err != nil {
		fmt.Fprintln(os.Stderr, "e2etest: running at normal priority:", err)
	}
	code := asterisktest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// AppName is the Stasis application the rig's ARI client subscribes to; asterisk-conf's dialplan
// enters it.
const AppName = "earpiece"

// App is the Stasis application a rig runs; *app.App implements it.
type App interface {
	// Run handles events until ctx is done.
	Run(ctx context.Context, events <-chan ari.Event) error
	// Live lists the sessions the app is running.
	Live() []string
}

// Owned names what the app makes on Asterisk, for AssertClean. Channels named Snoop/... are always
// counted as the app's: nothing else on the test Asterisk snoops.
type Owned struct {
	BridgeNamePrefix string // a bridge whose name starts with it
	BridgeIDPrefix   string // a bridge whose id starts with it
	ChannelIDPrefix  string // a channel (the app's snoops) whose id starts with it
}

// Rig is one end-to-end setup: the shared test Asterisk, a Redis of its own, an ARI client for
// Stasis application AppName and, once Start is called, the app running on them. Everything
// stops when the test ends, the app first; then the test fails if a goroutine it started is still
// running.
type Rig struct {
	// T is the test the helpers report to (see For).
	T *testing.T
	// Ctx is the rig's context, done once the app has stopped at the end of the test.
	Ctx    context.Context
	Ast    *asterisktest.Instance
	Redis  *redistest.Server
	RDB    *redis.Client
	Store  *store.Store
	Client *ari.Client
	// Log is for the app: discarded, or written to the test log when EARPIECE_TEST_LOG is set.
	Log zerolog.Logger

	owned Owned
	app   App
	bg    *sync.WaitGroup // the ARI client and the tasks of Go
}

// New makes a rig for t. It skips t in -short mode and when the test Asterisk has no SIP address
// for the phones.
func New(t *testing.T, owned Owned) *Rig {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: needs Asterisk and Redis")
	}
	ast := asterisktest.Shared(t)
	if ast.SIPPort == 0 {
		t.Skipf("no SIP address for the test Asterisk (%s)", asterisktest.EnvSIPAddr)
	}
	VerifyNoLeaks(t)
	return newRig(t, owned, ast)
}

// NewPrivate is New on an Asterisk of the test's own (asterisktest.Start), for a test that
// changes Asterisk's configuration (the dialplan earpiece writes) or disturbs it otherwise.
func NewPrivate(t *testing.T, owned Owned) *Rig {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: needs Asterisk and Redis")
	}
	VerifyNoLeaks(t)
	return newRig(t, owned, asterisktest.Start(t))
}

func newRig(t *testing.T, owned Owned, ast *asterisktest.Instance) *Rig {
	t.Helper()
	rs, rdb, st := Redis(t)
	log := zerolog.Nop()
	if os.Getenv("EARPIECE_TEST_LOG") != "" {
		zerolog.TimeFieldFormat = "15:04:05.000000"
		log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	client, err := ari.New(ari.Config{BaseURL: ast.ARIURL, User: ast.User, Password: ast.Password, App: AppName, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Rig{
		T: t, Ctx: ctx, Ast: ast, Redis: rs, RDB: rdb, Store: st,
		Client: client, Log: log, owned: owned, bg: &sync.WaitGroup{},
	}
	t.Cleanup(func() {
		// After the app (Start's cleanup runs first): its sessions end through the socket.
		cancel()
		AwaitClosed(t, waitGroupDone(r.bg), 10*time.Second, "the ARI client and the tasks of Go to stop")
		client.CloseIdleConnections()
	})
	return r
}

// Start runs the ARI client and a, and waits until the client is connected. At the end of the
// test a stops first (it ends its sessions before Run returns), then the client.
func (r *Rig) Start(a App) {
	r.T.Helper()
	r.app = a
	r.Go(func(ctx context.Context) { _ = r.Client.Run(ctx) })
	appCtx, stopApp := context.WithCancel(context.Background())
	appDone := make(chan struct{})
	t := r.T
	go func() {
		defer close(appDone)
		if err := a.Run(appCtx, r.Client.Events()); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("App.Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		stopApp()
		AwaitClosed(t, appDone, 20*time.Second, "App.Run to return")
	})
	WaitFor(t, 10*time.Second, "ARI connected", func() bool { return r.Client.Stats().Connected })
}

// Go runs task beside the ARI client, under a context that ends with it, after the app has
// stopped (for example a notification hub the app reports to).
func (r *Rig) Go(task func(ctx context.Context)) {
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		task(r.Ctx)
	}()
}

// For returns the rig reporting to t, a subtest of the rig's test; what the helpers register
// for cleanup (phones, calls) then ends with t.
func (r *Rig) For(t *testing.T) *Rig {
	c := *r
	c.T = t
	return &c
}

// VerifyNoLeaks fails t if a goroutine it started is still running when it ends. Call it before
// anything else registers a cleanup, so that it runs last, after every other cleanup of t.
func VerifyNoLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// Redis starts a Redis of t's own and returns it, a client for it (closed when t ends; ctx
// deadlines enabled, see store.New) and a store on that client.
func Redis(t *testing.T) (*redistest.Server, *redis.Client, *store.Store) {
	t.Helper()
	rs := redistest.Start(t)
	opts := rs.Options()
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rs, rdb, store.New(rdb, store.Options{})
}

// WaitFor polls cond until it holds, failing t after limit.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// AwaitClosed waits for done to close, failing t after limit.
func AwaitClosed(t testing.TB, done <-chan struct{}, limit time.Duration, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("timed out after %s waiting for %s", limit, what)
	}
}

func waitGroupDone(wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}
