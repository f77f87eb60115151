package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/store"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the Redis-down tests make many.
	redis.SetLogger(quietLogger{})
	goleak.VerifyTestMain(m)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// clock is a settable Options.Clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

type env struct {
	srv   *redistest.Server
	rdb   *redis.Client
	st    *store.Store
	clock *clock
	opts  store.Options
}

func setup(t testing.TB, opts store.Options) *env {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	c := newClock()
	if opts.Clock == nil {
		opts.Clock = c.Now
	}
	return &env{srv: srv, rdb: rdb, st: store.New(rdb, opts), clock: c, opts: opts}
}

// ctx is the test's context with a deadline, so a hang fails the test
// instead of stalling it.
func ctx(t testing.TB) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

var seq int

func session(tenant, sup, agent string) store.Session {
	seq++
	return store.Session{
		ID:                fmt.Sprintf("sup-%04d", seq),
		Tenant:            tenant,
		Supervisor:        sup,
		Agent:             agent,
		CallID:            "agent-chan-" + agent,
		Origin:            "feature_code",
		Mode:              "spy",
		State:             store.StateActive,
		SupervisorChannel: fmt.Sprintf("sup-chan-%d", seq),
		AgentChannel:      "agent-chan-" + agent,
		SnoopChannel:      fmt.Sprintf("snoop-chan-%d", seq),
		BridgeID:          fmt.Sprintf("bridge-%d", seq),
		Instance:          "node-a",
	}
}

func mustCreate(t testing.TB, e *env, s store.Session) store.Session {
	t.Helper()
	if err := e.st.CreateSession(ctx(t), s); err != nil {
		t.Fatalf("CreateSession(%s): %v", s.ID, err)
	}
	got, err := e.st.GetSession(ctx(t), s.ID)
	if err != nil {
		t.Fatalf("GetSession(%s): %v", s.ID, err)
	}
	return got
}

func ids(ss []store.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

// channelOwner is the session the channel index gives ch to ("" for none).
func channelOwner(t testing.TB, e *env, ch string) string {
	t.Helper()
	id, err := e.rdb.Get(ctx(t), store.Prefix+"{sessions}:channel:"+ch).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	if err != nil {
		t.Fatalf("channel index of %s: %v", ch, err)
	}
	return id
}

// keys lists every key under the earpiece prefix.
func keys(t testing.TB, rdb *redis.Client) []string {
	t.Helper()
	var out []string
	iter := rdb.Scan(ctx(t), 0, store.Prefix+"*", 100).Iterator()
	for iter.Next(ctx(t)) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	slices.Sort(out)
	return out
}

func TestCreateAndGet(t *testing.T) {
	e := setup(t, store.Options{})
	in := session("acme", "200", "744")
	in.ModeSince = e.clock.Now()
	got := mustCreate(t, e, in)

	want := in
	want.StartedAt = e.clock.Now() // zero StartedAt defaults to now
	want.UpdatedAt = e.clock.Now()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetSession =\n %+v\nwant\n %+v", got, want)
	}

	if _, err := e.st.GetSession(ctx(t), "sup-missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession(missing) error = %v, want ErrNotFound", err)
	}
}

func TestCreateValidates(t *testing.T) {
	e := setup(t, store.Options{})
	for name, mut := range map[string]func(*store.Session){
		"empty id":      func(s *store.Session) { s.ID = "" },
		"empty tenant":  func(s *store.Session) { s.Tenant = "" },
		"tenant colon":  func(s *store.Session) { s.Tenant = "a:b" },
		"tenant spaces": func(s *store.Session) { s.Tenant = "a b" },
		"ended":         func(s *store.Session) { s.State = store.StateEnded },
	} {
		s := session("acme", "200", "744")
		mut(&s)
		if err := e.st.CreateSession(ctx(t), s); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: CreateSession error = %v, want ErrInvalid", name, err)
		}
	}
	if k := keys(t, e.rdb); len(k) != 0 {
		t.Errorf("refused creates left keys: %v", k)
	}
}

func TestIndexLookups(t *testing.T) {
	e := setup(t, store.Options{})
	a := mustCreate(t, e, session("acme", "200", "744"))
	e.clock.Advance(time.Second)
	b := mustCreate(t, e, session("acme", "201", "744")) // second supervisor, same call
	e.clock.Advance(time.Second)
	c := mustCreate(t, e, session("acme", "200", "745"))
	e.clock.Advance(time.Second)
	d := mustCreate(t, e, session("globex", "300", "900"))

	for _, tc := range []struct {
		ch   string
		want store.Session
	}{
		{a.SupervisorChannel, a}, {a.SnoopChannel, a},
		{b.SupervisorChannel, b}, {b.SnoopChannel, b},
		{d.SnoopChannel, d},
	} {
		if got := channelOwner(t, e, tc.ch); got != tc.want.ID {
			t.Errorf("channel %s indexed to %q, want %s", tc.ch, got, tc.want.ID)
		}
	}
	// The agent channel is not a session's own channel.
	if got := channelOwner(t, e, a.AgentChannel); got != "" {
		t.Errorf("agent channel indexed to %q, want nothing", got)
	}

	acme, err := e.st.ListSessions(ctx(t), "acme")
	if err != nil || !slices.Equal(ids(acme), []string{a.ID, b.ID, c.ID}) {
		t.Fatalf("ListSessions(acme) = %v, %v", ids(acme), err)
	}
	if !reflect.DeepEqual(acme[0], a) {
		t.Errorf("ListSessions returned %+v, want %+v", acme[0], a)
	}
	globex, err := e.st.ListSessions(ctx(t), "globex")
	if err != nil || !slices.Equal(ids(globex), []string{d.ID}) {
		t.Errorf("ListSessions(globex) = %v, %v", ids(globex), err)
	}
	if _, err := e.st.ListSessions(ctx(t), ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ListSessions(\"\") error = %v, want ErrInvalid", err)
	}
}

func TestCreateDuplicate(t *testing.T) {
	e := setup(t, store.Options{})
	a := mustCreate(t, e, session("acme", "200", "744"))

	sameID := session("acme", "201", "745")
	sameID.ID = a.ID
	sameSup := session("acme", "201", "745")
	sameSup.SupervisorChannel = a.SupervisorChannel
	sameSnoop := session("acme", "201", "745")
	sameSnoop.SnoopChannel = a.SnoopChannel
	supIsSnoop := session("acme", "201", "745")
	supIsSnoop.SupervisorChannel = a.SnoopChannel

	before := keys(t, e.rdb)
	for name, s := range map[string]store.Session{
		"same id": sameID, "same supervisor channel": sameSup,
		"same snoop channel": sameSnoop, "supervisor channel is a snoop": supIsSnoop,
	} {
		if err := e.st.CreateSession(ctx(t), s); !errors.Is(err, store.ErrExists) {
			t.Errorf("%s: CreateSession error = %v, want ErrExists", name, err)
		}
	}
	if after := keys(t, e.rdb); !slices.Equal(before, after) {
		t.Errorf("refused creates changed keys:\n before %v\n after  %v", before, after)
	}

	// An ended session frees its channels, but not its id.
	if _, err := e.st.EndSession(ctx(t), a.ID, "hangup", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateSession(ctx(t), sameSup); err != nil {
		t.Errorf("CreateSession on a channel of an ended session: %v", err)
	}
	if err := e.st.CreateSession(ctx(t), sameID); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateSession reusing an ended session's id: error = %v, want ErrExists", err)
	}
}

func TestConcurrentCreateOneChannel(t *testing.T) {
	e := setup(t, store.Options{})
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	c := ctx(t)
	for i := range n {
		s := session("acme", "200", "744")
		s.SupervisorChannel = "contested"
		wg.Go(func() { errs[i] = e.st.CreateSession(c, s) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrExists):
			t.Errorf("CreateSession: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d creates won the same supervisor channel, want 1", won)
	}
	list, err := e.st.ListSessions(ctx(t), "acme")
	if err != nil || len(list) != 1 {
		t.Fatalf("ListSessions = %v, %v; want the winner only", ids(list), err)
	}
}

func TestUpdateSession(t *testing.T) {
	e := setup(t, store.Options{})
	a := mustCreate(t, e, session("acme", "200", "744"))
	other := mustCreate(t, e, session("acme", "201", "900"))

	// A mode switch with a new snoop channel re-indexes the channel.
	now := e.clock.Advance(time.Minute)
	got, err := e.st.UpdateSession(ctx(t), a.ID, func(s *store.Session) error {
		s.SwitchMode("whisper", now)
		s.SnoopChannel = "snoop-new"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != "whisper" || got.SnoopChannel != "snoop-new" || !got.UpdatedAt.Equal(now) || !got.ModeSince.Equal(now) {
		t.Errorf("UpdateSession returned %+v", got)
	}
	if read, _ := e.st.GetSession(ctx(t), a.ID); !reflect.DeepEqual(read, got) {
		t.Errorf("GetSession after update =\n %+v\nUpdateSession returned\n %+v", read, got)
	}
	if got := channelOwner(t, e, a.SnoopChannel); got != "" {
		t.Errorf("old snoop channel still indexed to %s", got)
	}
	if got := channelOwner(t, e, "snoop-new"); got != a.ID {
		t.Errorf("snoop-new indexed to %q, want %s", got, a.ID)
	}

	// Taking another live session's channel is refused, with nothing written.
	before, _ := e.st.GetSession(ctx(t), a.ID)
	if _, err := e.st.UpdateSession(ctx(t), a.ID, func(s *store.Session) error {
		s.SnoopChannel = other.SupervisorChannel
		s.BridgeID = "changed"
		return nil
	}); !errors.Is(err, store.ErrExists) {
		t.Errorf("update onto another session's channel: error = %v, want ErrExists", err)
	}
	if after, _ := e.st.GetSession(ctx(t), a.ID); !reflect.DeepEqual(before, after) {
		t.Errorf("refused update changed the session")
	}

	// fn's error aborts and comes back.
	errBoom := errors.New("boom")
	if _, err := e.st.UpdateSession(ctx(t), a.ID, func(*store.Session) error { return errBoom }); !errors.Is(err, errBoom) {
		t.Errorf("UpdateSession error = %v, want fn's error", err)
	}
	for name, fn := range map[string]func(*store.Session) error{
		"id":     func(s *store.Session) error { s.ID = "sup-other"; return nil },
		"tenant": func(s *store.Session) error { s.Tenant = "globex"; return nil },
	} {
		if _, err := e.st.UpdateSession(ctx(t), a.ID, fn); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("changing %s: error = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := e.st.UpdateSession(ctx(t), "sup-missing", func(*store.Session) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateSession(missing) error = %v, want ErrNotFound", err)
	}
}

func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	// 20 writers on one key: on a loaded machine one of them can lose the WATCH race more than
	// the default 10 times in a row (ErrConflict, which callers see and retry); what this test
	// checks is that no committed update is lost, so it allows as many attempts as writers+.
	e := setup(t, store.Options{MaxRetries: 100})
	a := mustCreate(t, e, session("acme", "200", "744"))

	const workers, each = 20, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	c := ctx(t)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				_, err := e.st.UpdateSession(c, a.ID, func(s *store.Session) error {
					if s.ModeTime == nil {
						s.ModeTime = map[string]time.Duration{}
					}
					s.ModeTime["spy"] += time.Second
					// Churn an index too, so re-indexing races with itself.
					s.SnoopChannel = fmt.Sprintf("snoop-%d-%d", w, i)
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("UpdateSession: %v", err)
	}
	got, err := e.st.GetSession(ctx(t), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := workers * each * time.Second; got.ModeTime["spy"] != want {
		t.Errorf("ModeTime[spy] = %v after %d increments, want %v", got.ModeTime["spy"], workers*each, want)
	}
	// Exactly the final snoop channel is indexed.
	var chans []string
	for _, k := range keys(t, e.rdb) {
		if c, ok := strings.CutPrefix(k, store.Prefix+"{sessions}:channel:"); ok {
			chans = append(chans, c)
		}
	}
	if want := []string{got.SnoopChannel, got.SupervisorChannel}; !slices.Equal(chans, want) {
		t.Errorf("channel index = %v, want %v", chans, want)
	}
}

func TestEndSession(t *testing.T) {
	e := setup(t, store.Options{TTL: time.Hour, HistoryTTL: 3 * time.Hour})
	in := session("acme", "200", "744")
	in.StartedAt = e.clock.Now()
	a := mustCreate(t, e, in)
	b := mustCreate(t, e, session("acme", "201", "744"))

	joined := e.clock.Advance(10 * time.Second)
	if _, err := e.st.UpdateSession(ctx(t), a.ID, func(s *store.Session) error {
		s.SwitchMode("spy", joined)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	switched := e.clock.Advance(30 * time.Second)
	if _, err := e.st.UpdateSession(ctx(t), a.ID, func(s *store.Session) error {
		s.SwitchMode("barge", switched)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	end := e.clock.Advance(20 * time.Second)

	ended, err := e.st.EndSession(ctx(t), a.ID, "supervisor_hangup", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if ended.State != store.StateEnded || !ended.EndedAt.Equal(end) || ended.EndReason != "supervisor_hangup" {
		t.Errorf("EndSession returned %+v", ended)
	}
	wantModes := map[string]time.Duration{"spy": 30 * time.Second, "barge": 20 * time.Second}
	if !reflect.DeepEqual(ended.ModeTime, wantModes) || !ended.ModeSince.IsZero() {
		t.Errorf("ModeTime = %v, ModeSince = %v; want %v and zero", ended.ModeTime, ended.ModeSince, wantModes)
	}

	// Gone from every live index; the other supervisor of the call stays.
	for _, ch := range []string{a.SupervisorChannel, a.SnoopChannel} {
		if got := channelOwner(t, e, ch); got != "" {
			t.Errorf("channel %s still indexed to %s after end", ch, got)
		}
	}
	if l, _ := e.st.ListSessions(ctx(t), "acme"); !slices.Equal(ids(l), []string{b.ID}) {
		t.Errorf("ListSessions after end = %v, want [%s]", ids(l), b.ID)
	}
	// The record stays, for HistoryTTL.
	if got, err := e.st.GetSession(ctx(t), a.ID); err != nil || !reflect.DeepEqual(got, ended) {
		t.Errorf("GetSession after end = %+v, %v", got, err)
	}
	ttl := e.rdb.TTL(ctx(t), store.Prefix+"{sessions}:session:"+a.ID).Val()
	if ttl <= time.Hour || ttl > 3*time.Hour {
		t.Errorf("ended record TTL = %v, want about HistoryTTL (3h)", ttl)
	}

	// Idempotent: same record back, nothing rewritten.
	e.clock.Advance(time.Minute)
	again, err := e.st.EndSession(ctx(t), a.ID, "call_ended", time.Time{})
	if err != nil || !reflect.DeepEqual(again, ended) {
		t.Errorf("second EndSession = %+v, %v; want the first result", again, err)
	}
	if _, err := e.st.UpdateSession(ctx(t), a.ID, func(*store.Session) error { return nil }); !errors.Is(err, store.ErrEnded) {
		t.Errorf("UpdateSession after end: error = %v, want ErrEnded", err)
	}
	if _, err := e.st.EndSession(ctx(t), "sup-missing", "x", time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EndSession(missing) error = %v, want ErrNotFound", err)
	}

	// Ending the last session leaves only ended records.
	if _, err := e.st.EndSession(ctx(t), b.ID, "call_ended", time.Time{}); err != nil {
		t.Fatal(err)
	}
	want := []string{store.Prefix + "{sessions}:session:" + a.ID, store.Prefix + "{sessions}:session:" + b.ID}
	if got := keys(t, e.rdb); !slices.Equal(got, want) {
		t.Errorf("keys after ending everything = %v, want %v", got, want)
	}
}

func TestEndRacesUpdates(t *testing.T) {
	e := setup(t, store.Options{MaxRetries: 50})
	a := mustCreate(t, e, session("acme", "200", "744"))
	var wg sync.WaitGroup
	c := ctx(t)
	for w := range 10 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := e.st.UpdateSession(c, a.ID, func(s *store.Session) error {
					s.SnoopChannel = fmt.Sprintf("snoop-%d-%d", w, i)
					return nil
				})
				if errors.Is(err, store.ErrEnded) {
					return
				}
				if err != nil {
					t.Errorf("UpdateSession: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		if _, err := e.st.EndSession(c, a.ID, "hangup", time.Time{}); err != nil {
			t.Errorf("EndSession: %v", err)
		}
	})
	wg.Wait()
	if got, want := keys(t, e.rdb), []string{store.Prefix + "{sessions}:session:" + a.ID}; !slices.Equal(got, want) {
		t.Errorf("keys after end = %v, want %v", got, want)
	}
}

func TestEveryLiveKeyHasATTL(t *testing.T) {
	const ttl = 2 * time.Hour
	e := setup(t, store.Options{TTL: ttl})
	a := mustCreate(t, e, session("acme", "200", "744"))
	mustCreate(t, e, session("acme", "201", "744"))
	mustCreate(t, e, session("globex", "300", "900"))
	if _, err := e.st.UpdateSession(ctx(t), a.ID, func(s *store.Session) error {
		s.SnoopChannel = "snoop-after-switch"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Shorten every TTL, then check that an update restores them on the
	// session's whole footprint.
	all := keys(t, e.rdb)
	for _, k := range all {
		e.rdb.Expire(ctx(t), k, time.Minute)
	}
	if _, err := e.st.UpdateSession(ctx(t), a.ID, func(s *store.Session) error { s.BridgeID = "b2"; return nil }); err != nil {
		t.Fatal(err)
	}
	footprint := []string{
		"{sessions}:session:" + a.ID,
		"{sessions}:channel:" + a.SupervisorChannel,
		"{sessions}:channel:snoop-after-switch",
		"{sessions}:tenant:acme",
		"{sessions}:supervising:acme/" + a.Supervisor + "/" + a.CallID,
	}
	for _, k := range footprint {
		if got := e.rdb.TTL(ctx(t), store.Prefix+k).Val(); got < ttl-time.Minute || got > ttl {
			t.Errorf("TTL %s = %v after update, want about %v", k, got, ttl)
		}
	}
	if len(all) != 3+6+2+3 { // sessions, channels, tenants, supervisor-on-call
		t.Errorf("live keys = %d %v, want 14", len(all), all)
	}
	for _, k := range all {
		if got := e.rdb.TTL(ctx(t), k).Val(); got <= 0 {
			t.Errorf("TTL %s = %v, want a TTL", k, got)
		}
	}
}

func TestExpiredSessionsArePruned(t *testing.T) {
	e := setup(t, store.Options{})
	a := mustCreate(t, e, session("acme", "200", "744"))
	b := mustCreate(t, e, session("acme", "201", "744"))
	// a's record expires before its indexes (an instance died mid-call).
	if err := e.rdb.Del(ctx(t), store.Prefix+"{sessions}:session:"+a.ID).Err(); err != nil {
		t.Fatal(err)
	}
	if l, err := e.st.ListSessions(ctx(t), "acme"); err != nil || !slices.Equal(ids(l), []string{b.ID}) {
		t.Errorf("ListSessions = %v, %v; want [%s]", ids(l), err, b.ID)
	}
	if in, _ := e.rdb.SIsMember(ctx(t), store.Prefix+"{sessions}:tenant:acme", a.ID).Result(); in {
		t.Errorf("the tenant's set still holds expired %s", a.ID)
	}
	// Its stale channel index does not block a new session.
	c := session("acme", "200", "744")
	c.SupervisorChannel = a.SupervisorChannel
	if err := e.st.CreateSession(ctx(t), c); err != nil {
		t.Errorf("CreateSession over a stale channel index: %v", err)
	}
}

func TestModeTotals(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var s store.Session
	if got := s.ModeTotals(t0); len(got) != 0 {
		t.Errorf("ModeTotals before join = %v", got)
	}
	s.SwitchMode("spy", t0)
	s.SwitchMode("whisper", t0.Add(5*time.Second))
	s.SwitchMode("spy", t0.Add(7*time.Second))
	got := s.ModeTotals(t0.Add(10 * time.Second))
	want := map[string]time.Duration{"spy": 8 * time.Second, "whisper": 2 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ModeTotals = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(s.ModeTime, map[string]time.Duration{"spy": 5 * time.Second, "whisper": 2 * time.Second}) {
		t.Errorf("ModeTotals changed the session: %v", s.ModeTime)
	}
}

// TestLiveSessionFor: the supervisor-on-call index answers without a listing, follows the newest
// live session, and goes with the end of the session it names, not with another's.
func TestLiveSessionFor(t *testing.T) {
	e := setup(t, store.Options{})
	a := mustCreate(t, e, session("acme", "200", "744"))
	mustCreate(t, e, session("acme", "201", "744")) // another supervisor, same call
	got, err := e.st.LiveSessionFor(ctx(t), "acme", "200", a.CallID)
	if err != nil || got.ID != a.ID {
		t.Fatalf("LiveSessionFor(200, %s) = %s, %v; want %s", a.CallID, got.ID, err, a.ID)
	}
	for _, q := range [][3]string{{"acme", "202", a.CallID}, {"acme", "200", "other-call"}, {"globex", "200", a.CallID}} {
		if _, err := e.st.LiveSessionFor(ctx(t), q[0], q[1], q[2]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LiveSessionFor%v: %v, want ErrNotFound", q, err)
		}
	}
	// A second session of the same supervisor on the same call (two phones) takes the index;
	// the first one's end leaves it.
	b := session("acme", "200", "744")
	b.ID, b.SupervisorChannel, b.SnoopChannel = b.ID+"-2", b.SupervisorChannel+"-2", b.SnoopChannel+"-2"
	b.CallID, b.AgentChannel = a.CallID, a.AgentChannel
	mustCreate(t, e, b)
	if _, err := e.st.EndSession(ctx(t), a.ID, "api", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got, err := e.st.LiveSessionFor(ctx(t), "acme", "200", a.CallID); err != nil || got.ID != b.ID {
		t.Fatalf("after the first ended: %s, %v; want %s", got.ID, err, b.ID)
	}
	if _, err := e.st.EndSession(ctx(t), b.ID, "api", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.LiveSessionFor(ctx(t), "acme", "200", a.CallID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after both ended: %v, want ErrNotFound", err)
	}
	for _, k := range keys(t, e.rdb) {
		if strings.Contains(k, ":supervising:acme/200/") {
			t.Errorf("index key left after the end: %s", k)
		}
	}
}
