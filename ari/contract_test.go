package ari_test

// Contract tests: the client against a real Asterisk 22 (internal/asterisktest: Debian sid's
// 22.10.1 in a chroot, or the Asterisk EARPIECE_TEST_ARI_URL names). They pin down the Asterisk
// behaviour that earpiece and the fake ARI server (aritest) rely on, each subtest's comment saying
// which (comments elsewhere name the subtest, e.g. TestContract/parallel/SnoopErrors), and that the
// client's requests, error mapping and event stream work against the real thing. What a snoop lets
// each party hear is judged by ear end to end, in app's TestE2EModesByEar.
//
// Each test uses a Stasis application and ids of its own (random per run, so -count=N on one
// Asterisk works), hangs up and destroys what it made, and checks that none of its channels or
// bridges are left. Every wait is bounded by contractWait; a check that something does NOT happen
// looks at the whole recorded stream after a later event that Asterisk publishes after it (a
// sentinel), or after quietWindow when there is no such event.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/internal/asterisktest"
)

const (
	// contractWait bounds every wait for something that should happen.
	contractWait = 5 * time.Second
	// quietWindow is how long a check that an event does not come waits when there is no
	// sentinel event to wait for instead.
	quietWindow = 300 * time.Millisecond
	// toneEndpoint answers and plays 440 Hz forever (asterisk-conf/extensions.conf). Originated
	// into a Stasis app, its ;1 half is in the app and its ;2 half runs the dialplan.
	toneEndpoint = "Local/tone440@earpiece-test-tones"
)

// contractEnv is what the contract tests of one run share.
type contractEnv struct {
	ast *asterisktest.Instance
	run string // random, in every app name and id of this run
}

// TestContract runs the contract tests. The snoop timing runs first and alone (its numbers would
// mean little under the load of the others), the rest in parallel; at the end no channel or
// bridge of this run may be left in Asterisk.
func TestContract(t *testing.T) {
	env := &contractEnv{ast: asterisktest.Shared(t), run: randomID()}
	// Registered first, so it runs last: after every client, and the private Asterisk, stopped.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })

	t.Run("SnoopTiming", func(t *testing.T) { contractSnoopTiming(t, env) })
	t.Run("parallel", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			f    func(*testing.T, *contractEnv)
		}{
			{"SnoopErrors", contractSnoopErrors},
			{"SnoopEndsWithTarget", contractSnoopEndsWithTarget},
			{"TalkPath", contractTalkPath},
			{"Bridges", contractBridges},
			{"BridgeIDCollision", contractBridgeIDCollision},
			{"Originate", contractOriginate},
			{"OriginateUnregisteredPJSIP", contractOriginateUnregisteredPJSIP},
			{"OriginateNoWebSocket", contractOriginateNoWebSocket},
			{"DTMF", contractDTMF},
			{"Playback", contractPlayback},
			{"PlaybackBlocksCommands", contractPlaybackBlocksCommands},
			{"Recording", contractRecording},
			{"EndpointsAndApplications", contractEndpointsAndApplications},
			{"ModulesAndGlobals", contractModulesAndGlobals},
			{"EventFilter", contractEventFilter},
			{"Unauthorized", contractUnauthorized},
			{"Reconnect", contractReconnect},
			{"ApplicationReplaced", contractApplicationReplaced},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.f(t, env)
			})
		}
	})

	// Every test checked its own ids when it ended; this catches anything of the run that
	// escaped a test's bookkeeping (the private Asterisk of Reconnect is gone already).
	c := plainClient(t, env.ast, "contract-"+env.run+"-final")
	prefix := "ct" + env.run
	waitGone(t, c, func(id string) bool { return strings.HasPrefix(id, prefix) })
}

// kit is one contract test's client, event recorder and bookkeeping.
type kit struct {
	t      *testing.T
	ast    *asterisktest.Instance
	app    string
	prefix string // every id the test makes starts with it and a "-"
	c      *ari.Client
	w      *watcher
}

// newKit connects a client for a Stasis app of the test's own and waits until it is connected.
// Asterisk registers the app while it handles the WebSocket upgrade, before it answers 101
// (res_ari ari_websockets.c, websocket_attempted_cb), so once Connected is seen the app exists.
func newKit(t *testing.T, env *contractEnv, ast *asterisktest.Instance, mod func(*ari.Config)) *kit {
	t.Helper()
	name := shortName(t)
	k := &kit{
		t:      t,
		ast:    ast,
		app:    "contract-" + env.run + "-" + name,
		prefix: "ct" + env.run + "-" + name,
	}
	cfg := ari.Config{
		BaseURL:        ast.ARIURL,
		User:           ast.User,
		Password:       ast.Password,
		App:            k.app,
		RequestTimeout: contractWait,
		ReconnectMin:   20 * time.Millisecond,
		ReconnectMax:   500 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	k.c, k.w = runClient(t, cfg)
	// Registered after the client's cleanup, so it runs before it; the hangups and bridge
	// destructions the test registers later run before this check.
	t.Cleanup(func() {
		// The "-" keeps Playback from claiming PlaybackBlocksCommands' ids.
		waitGone(t, k.c, func(id string) bool { return strings.HasPrefix(id, k.prefix+"-") })
	})
	k.w.await(t, "Connected", isConn(ari.Connected))
	return k
}

// runClient starts c.Run for the test and records its events. When the test ends, Run must return
// context.Canceled promptly.
func runClient(t *testing.T, cfg ari.Config) (*ari.Client, *watcher) {
	t.Helper()
	c, err := ari.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := watch(c.Events())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
			<-w.done // Run closed Events
		case <-time.After(contractWait):
			t.Errorf("Run did not return within %v after its context ended", contractWait)
		}
		c.CloseIdleConnections()
	})
	return c, w
}

// plainClient is a client for REST calls only.
func plainClient(t *testing.T, ast *asterisktest.Instance, app string) *ari.Client {
	t.Helper()
	c, err := ari.New(ari.Config{BaseURL: ast.ARIURL, User: ast.User, Password: ast.Password, App: app, RequestTimeout: contractWait})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// waitGone waits until GET /channels and GET /bridges list no id mine says is ours. Hung-up
// channels take a moment to be destroyed, hence the polling.
func waitGone(t *testing.T, c *ari.Client, mine func(id string) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), contractWait)
	defer cancel()
	var left []string
	for {
		left = left[:0]
		chs, err := c.ListChannels(ctx)
		if err != nil {
			t.Errorf("GET /channels: %v", err)
			return
		}
		for _, ch := range chs {
			if mine(string(ch.ID)) {
				left = append(left, "channel "+string(ch.ID)+" ("+ch.Name+")")
			}
		}
		bs, err := c.ListBridges(ctx)
		if err != nil {
			t.Errorf("GET /bridges: %v", err)
			return
		}
		for _, b := range bs {
			if mine(string(b.ID)) {
				left = append(left, "bridge "+string(b.ID))
			}
		}
		if len(left) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("left in Asterisk after the test: %s", strings.Join(left, ", "))
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// awaitGone polls GET /channels/{id} until it is a 404.
func (k *kit) awaitGone(id ari.ChannelID) {
	k.t.Helper()
	ctx := k.ctx()
	pollUntil(k.t, "GET of channel "+string(id)+" is a 404", func() bool {
		_, err := k.c.GetChannel(ctx, id)
		return errors.Is(err, ari.ErrNotFound)
	})
}

// pollUntil calls cond every 5 ms until it is true and returns how long that took; it fails the
// test after contractWait. For state Asterisk changes without an event to wait for.
func pollUntil(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > contractWait {
			t.Fatalf("not within %v: %s", contractWait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// ctx is a context for the test's calls; each call is bounded by RequestTimeout
// (contractWait) as well.
func (k *kit) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	k.t.Cleanup(cancel)
	return ctx
}

// id returns the test's id for an object: <prefix>-<kind>-<name>. Channels, bridges and snoops
// get different kinds so a bridge id never equals a channel id (see BridgeIDCollision).
func (k *kit) id(kind, name string) string { return k.prefix + "-" + kind + "-" + name }

func (k *kit) chanID(name string) ari.ChannelID { return ari.ChannelID(k.id("ch", name)) }

// originate makes a toneEndpoint channel in the test's app (mod may change the request), waits for
// its StasisStart and returns it. The channel is hung up when the test ends.
func (k *kit) originate(name string, mod func(*ari.OriginateRequest)) *ari.StasisStart {
	k.t.Helper()
	r := ari.OriginateRequest{Endpoint: toneEndpoint, App: k.app, ChannelID: k.chanID(name)}
	if mod != nil {
		mod(&r)
	}
	k.hangupLater(r.ChannelID)
	ch, err := k.c.Originate(k.ctx(), r)
	if err != nil {
		k.t.Fatalf("originate %s: %v", r.ChannelID, err)
	}
	if ch.ID != r.ChannelID {
		k.t.Fatalf("originate answered channel %q, want %q", ch.ID, r.ChannelID)
	}
	return k.w.await(k.t, "StasisStart of "+string(r.ChannelID), is("StasisStart", r.ChannelID)).ev.(*ari.StasisStart)
}

// hangupLater hangs id up when the test ends; it may be gone by then.
func (k *kit) hangupLater(id ari.ChannelID) {
	k.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), contractWait)
		defer cancel()
		if err := k.c.Hangup(ctx, id, ""); err != nil && !errors.Is(err, ari.ErrNotFound) {
			k.t.Errorf("cleanup: hang up %s: %v", id, err)
		}
	})
}

// bridge creates a bridge with the test's id for name, destroyed when the test ends.
func (k *kit) bridge(name string, types ...string) ari.BridgeID {
	k.t.Helper()
	id := ari.BridgeID(k.id("br", name))
	k.destroyLater(id)
	b, err := k.c.CreateBridge(k.ctx(), ari.CreateBridgeRequest{BridgeID: id, Types: types})
	if err != nil {
		k.t.Fatalf("create bridge %s: %v", id, err)
	}
	if b.ID != id {
		k.t.Fatalf("create bridge answered %q, want %q", b.ID, id)
	}
	return id
}

func (k *kit) destroyLater(id ari.BridgeID) {
	k.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), contractWait)
		defer cancel()
		if err := k.c.DestroyBridge(ctx, id); err != nil && !errors.Is(err, ari.ErrNotFound) {
			k.t.Errorf("cleanup: destroy bridge %s: %v", id, err)
		}
	})
}

// stamped is an event and when the test's recorder took it from the stream.
type stamped struct {
	ev ari.Event
	at time.Time
}

// watcher records a client's event stream as it comes, with arrival times, so a test can wait
// for events in order and also look back at everything delivered.
type watcher struct {
	mu    sync.Mutex
	seen  []stamped
	ended bool
	wake  chan struct{} // 1-buffered: something was recorded, or the stream ended
	done  chan struct{} // closed when the stream has ended
	next  int           // first item await has not examined; the test's goroutine only
}

func watch(events <-chan ari.Event) *watcher {
	w := &watcher{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ev := range events {
			w.mu.Lock()
			w.seen = append(w.seen, stamped{ev: ev, at: time.Now()})
			w.mu.Unlock()
			poke(w.wake)
		}
		w.mu.Lock()
		w.ended = true
		w.mu.Unlock()
		poke(w.wake)
	}()
	return w
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// await returns the first event after the previous await's match that satisfies match, skipping
// the others: successive awaits check the order of events. It fails the test after
// contractWait, listing what it skipped.
func (w *watcher) await(t testing.TB, what string, match func(ari.Event) bool) stamped {
	t.Helper()
	return w.wait(t, &w.next, what, match)
}

// eventually returns the first event of the whole stream that satisfies match, waiting for it if
// need be, for events whose order relative to the awaited ones is not fixed. It does not move
// await's position.
func (w *watcher) eventually(t testing.TB, what string, match func(ari.Event) bool) stamped {
	t.Helper()
	pos := 0
	return w.wait(t, &pos, what, match)
}

func (w *watcher) wait(t testing.TB, pos *int, what string, match func(ari.Event) bool) stamped {
	t.Helper()
	deadline := time.NewTimer(contractWait)
	defer deadline.Stop()
	from := *pos
	for {
		w.mu.Lock()
		for *pos < len(w.seen) {
			s := w.seen[*pos]
			*pos++
			if match(s.ev) {
				w.mu.Unlock()
				return s
			}
		}
		ended := w.ended
		w.mu.Unlock()
		if ended {
			t.Fatalf("waiting for %s: the event stream ended; saw: %s", what, w.describe(from))
		}
		select {
		case <-w.wake:
		case <-deadline.C:
			t.Fatalf("no %s within %v; saw: %s", what, contractWait, w.describe(from))
		}
	}
}

// skipAll makes the next await consider only events recorded from now on.
func (w *watcher) skipAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next = len(w.seen)
}

// all returns every event recorded so far.
func (w *watcher) all() []ari.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	evs := make([]ari.Event, len(w.seen))
	for i, s := range w.seen {
		evs[i] = s.ev
	}
	return evs
}

// none fails the test if any event recorded so far satisfies match.
func (w *watcher) none(t testing.TB, what string, match func(ari.Event) bool) {
	t.Helper()
	for _, ev := range w.all() {
		if match(ev) {
			t.Errorf("unexpected %s: %s", what, describe(ev))
		}
	}
}

func (w *watcher) describe(from int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if from >= len(w.seen) {
		return "nothing"
	}
	var parts []string
	for _, s := range w.seen[from:] {
		parts = append(parts, describe(s.ev))
	}
	return strings.Join(parts, ", ")
}

// describe is an event's type with the ids it carries, for failure messages.
func describe(ev ari.Event) string {
	if ce, ok := ev.(*ari.ConnectionEvent); ok {
		return fmt.Sprintf("%s(%v, %v)", ce.Type, ce.State, ce.Err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Sprintf("%T", ev)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	var parts []string
	for _, f := range []struct{ obj, field string }{
		{"channel", "id"}, {"peer", "id"}, {"bridge", "id"}, {"playback", "id"}, {"recording", "name"},
	} {
		if o, ok := m[f.obj].(map[string]any); ok {
			parts = append(parts, fmt.Sprintf("%s=%v", f.obj, o[f.field]))
		}
	}
	for _, f := range []string{"digit", "variable", "cause", "dialstatus"} {
		if v, ok := m[f]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", f, v))
		}
	}
	return ev.Base().Type + "(" + strings.Join(parts, " ") + ")"
}

// channelOf is the channel an event is about ("" if none).
func channelOf(ev ari.Event) ari.ChannelID {
	switch e := ev.(type) {
	case *ari.StasisStart:
		return e.Channel.ID
	case *ari.StasisEnd:
		return e.Channel.ID
	case *ari.ChannelDestroyed:
		return e.Channel.ID
	case *ari.ChannelHangupRequest:
		return e.Channel.ID
	case *ari.ChannelStateChange:
		return e.Channel.ID
	case *ari.ChannelDialplan:
		return e.Channel.ID
	case *ari.ChannelDtmfReceived:
		return e.Channel.ID
	case *ari.ChannelLeftBridge:
		return e.Channel.ID
	case *ari.ChannelEnteredBridge:
		if e.Channel != nil {
			return e.Channel.ID
		}
	case *ari.ChannelVarset:
		if e.Channel != nil {
			return e.Channel.ID
		}
	case *ari.Dial:
		return e.Peer.ID
	}
	return ""
}

// bridgeOf is the bridge an event is about ("" if none).
func bridgeOf(ev ari.Event) ari.BridgeID {
	switch e := ev.(type) {
	case *ari.ChannelEnteredBridge:
		return e.Bridge.ID
	case *ari.ChannelLeftBridge:
		return e.Bridge.ID
	case *ari.BridgeCreated:
		return e.Bridge.ID
	case *ari.BridgeDestroyed:
		return e.Bridge.ID
	}
	return ""
}

// is matches an event of type typ about channel ch.
func is(typ string, ch ari.ChannelID) func(ari.Event) bool {
	return func(ev ari.Event) bool { return ev.Base().Type == typ && channelOf(ev) == ch }
}

// inBridge matches an event of type typ about bridge b (and channel ch, unless empty).
func inBridge(typ string, b ari.BridgeID, ch ari.ChannelID) func(ari.Event) bool {
	return func(ev ari.Event) bool {
		return ev.Base().Type == typ && bridgeOf(ev) == b && (ch == "" || channelOf(ev) == ch)
	}
}

func isConn(s ari.ConnState) func(ari.Event) bool {
	return func(ev ari.Event) bool {
		ce, ok := ev.(*ari.ConnectionEvent)
		return ok && ce.State == s
	}
}

func isType(typ string) func(ari.Event) bool {
	return func(ev ari.Event) bool { return ev.Base().Type == typ }
}

// wantError checks that err is an *ari.Error matching sentinel, with status and a message
// containing msg, and returns it.
func wantError(t testing.TB, what string, err, sentinel error, status int, msg string) *ari.Error {
	t.Helper()
	var e *ari.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: error %v, want an *ari.Error %d", what, err, status)
		return nil
	}
	if !errors.Is(err, sentinel) || e.Status != status || !strings.Contains(e.Message, msg) {
		t.Errorf("%s: error %v (status %d, message %q), want %v, status %d, message containing %q",
			what, err, e.Status, e.Message, sentinel, status, msg)
	}
	return e
}

// shortName is the last element of the test's name, lowercased, for app names and ids.
func shortName(t *testing.T) string {
	n := t.Name()
	n = n[strings.LastIndex(n, "/")+1:]
	return strings.ToLower(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, n))
}

func randomID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
