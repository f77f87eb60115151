package app

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/store"
)

// Active/standby, the node lease and fencing.
//
// A node is one Asterisk and the Stasis application earpiece runs there; the app name names it.
// Asterisk gives an application's events to one WebSocket at a time (a second one takes the app
// over: ApplicationReplaced), so one instance runs a node's sessions: the holder of the node's
// lease in Redis (store.AcquireLease; TTL Config.LeaseTTL, 3 s, renewed every second). RunActive
// waits as the standby until it gets the lease (at once when nobody holds it, or when the holder
// has this instance's own name: that instance restarted), then connects the events socket, runs
// the app and adopts the sessions its predecessor left (adopt.go). A standby answers the API
// like the active: reads from Redis, session-changing requests forwarded to the active through
// Redis (lease_forward.go).
//
// Fencing. Every acquisition of the lease takes a new epoch; a session record carries its owner
// (instance, epoch), and the owner's record writes are compare-and-set on it (store.AdoptSession,
// UpdateOwnedSession). Before a session acts on Asterisk in answer to something from outside
// (an event, a request, a timer), it checks in Redis that its record is still its own (allowed):
// an instance declared gone that comes back (a paused process, a partition) finds its sessions
// adopted and abandons them without touching anything. An instance also stops acting at once
// (fence) when it learns it lost the lease: a renewal finds another holder, or Asterisk says
// another socket took the app (ApplicationReplaced). RunActive then returns ErrLeaseLost, and the
// process exits to be restarted as a standby.
//
// At a graceful stop the active hands its sessions over to a standby when one waits (they go on
// without a gap; the standby adopts them at once); without one it ends them, as a single instance
// always did.

// ErrLeaseLost: another instance took the node over; this one stopped acting without touching
// its sessions (RunActive's result).
var ErrLeaseLost = errors.New("app: another instance took the node over")

// errCrashed is RunActive's result after Crash.
var errCrashed = errors.New("app: crashed (test)")

// LeaseStore is what active/standby needs of Redis; *store.Store implements it.
type LeaseStore interface {
	AcquireLease(ctx context.Context, node, instance string, ttl time.Duration, sameName bool) (store.Lease, bool, error)
	RenewLease(ctx context.Context, l store.Lease, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, l store.Lease) error
	MarkStandby(ctx context.Context, node, instance string, ttl time.Duration) error
	StandbyPresent(ctx context.Context, node string) (string, error)
	PushCommand(ctx context.Context, node string, payload []byte, ttl time.Duration) error
	NextCommand(ctx context.Context, node string, wait time.Duration) ([]byte, error)
	PutReply(ctx context.Context, id string, payload []byte, ttl time.Duration) error
	AwaitReply(ctx context.Context, id string, wait time.Duration) ([]byte, error)
}

var _ LeaseStore = (*store.Store)(nil)

// ownedStore is the store's fenced session writes; *store.Store implements them (a store that
// does not gets plain writes).
type ownedStore interface {
	AdoptSession(ctx context.Context, id string, from, to store.Owner) (store.Session, error)
	UpdateOwnedSession(ctx context.Context, id string, o store.Owner, fn func(*store.Session) error) (store.Session, error)
}

var _ ownedStore = (*store.Store)(nil)

// EventSource is the ARI events socket RunActive connects once it is active (*ari.Client).
type EventSource interface {
	Run(ctx context.Context) error
	Events() <-chan ari.Event
}

// haState is the app's lease and fencing state.
type haState struct {
	// managed: the app runs under RunActive with a lease (Config.Lease).
	managed atomic.Bool
	// active: this instance holds the node's lease and runs the app.
	active atomic.Bool
	// fenced: this instance must not act any more (the lease is lost, or Crash).
	fenced    atomic.Bool
	fenceOnce sync.Once
	fencedC   chan struct{}
	initOnce  sync.Once
	// epoch is the owner epoch recorded on the sessions this instance runs: the lease's, or
	// without a lease a number of this App's own (so a restart under the same name is another
	// owner).
	epoch     atomic.Int64
	crashed   atomic.Bool
	lease     atomic.Pointer[store.Lease]
	callsMu   sync.Mutex // one on-demand rebuild of the calls index at a time (standby)
	stopEvent atomic.Pointer[context.CancelFunc]

	// frozen (tests): renewals pause, as if the process were stopped.
	frozen atomic.Bool
}

func (h *haState) init() {
	h.initOnce.Do(func() { h.fencedC = make(chan struct{}) })
}

// fencedChan is closed once the app is fenced.
func (h *haState) fencedChan() <-chan struct{} {
	h.init()
	return h.fencedC
}

// node is the node this app serves: its Stasis application's name.
func (a *App) node() string { return a.cfg.AppName }

// owner is this instance as the owner of the sessions it runs.
func (a *App) owner() store.Owner {
	if a.ha.epoch.Load() == 0 {
		// Without a lease: a number of this App's own, negative so it never equals a lease's.
		a.ha.epoch.CompareAndSwap(0, -time.Now().UnixNano())
	}
	return store.Owner{Instance: a.cfg.Instance, Epoch: a.ha.epoch.Load()}
}

// fence stops the app acting: sessions abandon what they run (nothing on Asterisk or in Redis is
// touched), and RunActive returns. Idempotent.
func (a *App) fence(why string) {
	a.ha.init()
	if !a.ha.fenced.CompareAndSwap(false, true) {
		return
	}
	a.ha.active.Store(false)
	a.log.Warn().Str("why", why).Msg("fenced: no longer acting on this node's sessions")
	a.ha.fenceOnce.Do(func() { close(a.ha.fencedC) })
	// Wake every session: its next step finds it must not act, and it abandons.
	a.mu.Lock()
	live := make([]*session, 0, len(a.sessions))
	for _, s := range a.sessions {
		live = append(live, s)
	}
	a.mu.Unlock()
	for _, s := range live {
		s.postEvent(evLeave{reason: ReasonShutdown})
	}
}

// Crash stops the app as kill -9 would, for tests: RunActive returns at once, nothing is torn
// down (the bridges, snoops, records and talker claims stay as they are) and the lease is not
// given back, so that another instance finds what a crashed one leaves.
func (a *App) Crash() {
	a.ha.crashed.Store(true)
	a.fence("crash (test)")
}

// replaced: Asterisk gave the app's events to another socket. Under a lease that is another
// instance that took the node over: stop acting at once.
func (a *App) replaced() {
	if a.ha.managed.Load() {
		a.fence("Asterisk gave the application to another instance (ApplicationReplaced)")
	}
}

// Active reports whether this instance runs its node's sessions now (always true without a
// lease once Run has started).
func (a *App) Active() bool {
	if a.ha.fenced.Load() {
		return false
	}
	if a.ha.managed.Load() {
		return a.ha.active.Load()
	}
	return a.running()
}

// running reports whether Run has started and is not stopping.
func (a *App) running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.runCtx != nil && !a.closing
}

// ARICheck is the readiness check of the ARI side: the events socket is connected (connected
// says so), or the instance is a healthy standby (it needs no socket).
func (a *App) ARICheck(connected func() bool) func(context.Context) error {
	return func(context.Context) error {
		if a.ha.managed.Load() && !a.ha.active.Load() && !a.ha.fenced.Load() {
			return nil
		}
		if !connected() {
			return errors.New("events socket not connected")
		}
		return nil
	}
}

// RunActive runs the app under its node's lease (Config.Lease): as the standby until it holds the
// lease, then as the active, with src (the ARI events socket) connected only then. It returns nil
// after ctx ends (the sessions handed over to a standby if one waits, else ended, and the lease
// given back), ErrLeaseLost when another instance took the node over, or Run's error. Without a
// lease it runs src and the app at once. src is run here: do not run it elsewhere.
func (a *App) RunActive(ctx context.Context, src EventSource) error {
	a.ha.init()
	if a.cfg.Lease == nil {
		return a.runActive(ctx, src, nil)
	}
	a.ha.managed.Store(true)
	l, err := a.awaitLease(ctx)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, errCrashed) {
			return nil
		}
		return err
	}
	return a.runActive(ctx, src, &l)
}

// standbyPoll is how often a standby tries to take the lease.
func (a *App) standbyPoll() time.Duration {
	return min(max(a.cfg.LeaseTTL/10, 50*time.Millisecond), 250*time.Millisecond)
}

// awaitLease waits as the standby until this instance holds the node's lease.
func (a *App) awaitLease(ctx context.Context) (store.Lease, error) {
	ls := a.cfg.Lease
	t := time.NewTicker(a.standbyPoll())
	defer t.Stop()
	var holder string
	var failing bool
	for {
		if a.ha.fenced.Load() {
			return store.Lease{}, errCrashed
		}
		cctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
		l, ok, err := ls.AcquireLease(cctx, a.node(), a.cfg.Instance, a.cfg.LeaseTTL, true)
		switch {
		case err != nil:
			if !failing {
				a.log.Warn().Err(err).Msg("standby: cannot reach Redis to take the lease")
			}
			failing = true
		case ok:
			cancel()
			a.log.Info().Str("node", a.node()).Int64("epoch", l.Epoch).Msg("active: took the node's lease")
			return l, nil
		default:
			failing = false
			if l.Instance != holder {
				holder = l.Instance
				a.log.Info().Str("node", a.node()).Str("active", holder).Msg("standby: another instance is active")
			}
			if err := ls.MarkStandby(cctx, a.node(), a.cfg.Instance, a.cfg.LeaseTTL); err != nil {
				a.log.Debug().Err(err).Msg("standby: marking presence")
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return store.Lease{}, ctx.Err()
		case <-t.C:
		}
	}
}

// runActive connects src and runs the app (with l, under the lease) until ctx ends or the app is
// fenced.
func (a *App) runActive(ctx context.Context, src EventSource, l *store.Lease) error {
	if l != nil {
		a.ha.lease.Store(l)
		a.ha.epoch.Store(l.Epoch)
	}
	var bg sync.WaitGroup
	defer bg.Wait()
	// The events socket runs under a context of its own: it stops after the app (teardown) and
	// at once on a crash.
	srcCtx, stopSrc := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSrc()
	a.ha.stopEvent.Store(&stopSrc)
	srcDone := make(chan struct{})
	bg.Go(func() {
		defer close(srcDone)
		if err := src.Run(srcCtx); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Warn().Err(err).Msg("ari events socket stopped")
		}
	})
	// The app reads the socket's events through a relay, so that the socket closing (a crash,
	// a test's freeze) does not end Run, whose end is the teardown.
	events := make(chan ari.Event)
	appStopped := make(chan struct{})
	bg.Go(func() {
		for ev := range src.Events() {
			select {
			case events <- ev:
			case <-appStopped:
			}
		}
	})
	appCtx, stopApp := context.WithCancel(context.WithoutCancel(ctx))
	defer stopApp()
	appDone := make(chan error, 1)
	bg.Go(func() {
		defer close(appStopped)
		appDone <- a.Run(appCtx, events)
	})
	sideCtx, stopSide := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSide()
	if l != nil {
		a.ha.active.Store(true)
		bg.Go(func() { a.renewLease(sideCtx, *l) })
		bg.Go(func() { a.serveCommands(sideCtx) }) // lease_forward.go
	}

	var err error
	appReturned, handover := false, false
	select {
	case <-ctx.Done():
		handover = l != nil && a.standbyWaits()
		if handover {
			a.fence("graceful stop: handing the sessions over to the standby")
		}
	case <-a.ha.fencedChan():
		err = ErrLeaseLost
		if a.ha.crashed.Load() {
			err = errCrashed
		}
	case err = <-appDone:
		appReturned = true
	}
	a.ha.active.Store(false)
	if err != nil && !appReturned && !errors.Is(err, errCrashed) {
		a.log.Error().Err(err).Msg("stopping without touching the sessions")
	}
	if errors.Is(err, errCrashed) {
		// kill -9: the socket goes first, as the process would vanish.
		stopSrc()
	}
	stopSide()
	stopApp()
	if !appReturned {
		if rerr := <-appDone; err == nil && !errors.Is(rerr, context.Canceled) {
			err = rerr
		}
	}
	stopSrc()
	<-srcDone
	if l != nil && !a.ha.crashed.Load() && !(a.ha.fenced.Load() && !handover) {
		// Given back (graceful stop, or the app stopped by itself): a standby takes it at once.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
		if rerr := a.cfg.Lease.ReleaseLease(rctx, *l); rerr != nil {
			a.log.Warn().Err(rerr).Msg("giving the lease back")
		}
		cancel()
	}
	if errors.Is(err, errCrashed) {
		return nil
	}
	return err
}

// standbyWaits reports whether another instance waits as the node's standby.
func (a *App) standbyWaits() bool {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CallTimeout)
	defer cancel()
	name, err := a.cfg.Lease.StandbyPresent(ctx, a.node())
	return err == nil && name != "" && name != a.cfg.Instance
}

// renewLease renews l every third of its TTL until ctx ends; it fences the app when l is lost.
// A renewal that cannot reach Redis is not a loss: nobody can take the lease meanwhile without
// reaching Redis, and one who does connects the events socket, which Asterisk reports here as
// ApplicationReplaced.
func (a *App) renewLease(ctx context.Context, l store.Lease) {
	every := a.cfg.LeaseTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.ha.frozen.Load() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, max(every, 100*time.Millisecond))
		held, err := a.cfg.Lease.RenewLease(cctx, l, a.cfg.LeaseTTL)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				a.log.Warn().Err(err).Msg("renewing the node's lease: Redis out of reach; going on")
			}
			failing = true
		case err == nil && !held:
			a.fence("the node's lease was taken by another instance")
			return
		default:
			failing = false
		}
	}
}

// effectful reports whether act changes anything outside the session (Asterisk, Redis, the
// notifications); timers, replies and routes are the session's own.
func effectful(act action) bool {
	switch act.(type) {
	case actTimer, actReply, actForget, actEnded:
		return false
	}
	return true
}

// ownershipCheck bounds the Redis read of allowed: a Redis that does not answer must not hold a
// DTMF switch for CallTimeout.
const ownershipCheck = 250 * time.Millisecond

// allowed reports whether the session may carry out acts, the machine's answer to one event
// (first: the event came from outside: an ARI event, a request, a timer; not the result of the
// session's own previous action). A fenced app may not act; a session whose record another
// owner has adopted may not either. Redis out of reach is no proof of anything: the session
// goes on.
func (s *session) allowed(ctx context.Context, acts []action, first bool) bool {
	if !slicesContainsEffect(acts) {
		return true
	}
	a := s.app
	if a.ha.fenced.Load() {
		return false
	}
	if !first || !s.m.record || a.storeDown() {
		return true
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(ownershipCheck, a.cfg.CallTimeout))
	defer cancel()
	rec, err := a.store.GetSession(cctx, s.id)
	if err != nil {
		return true // not found (not written yet), or Redis out of reach
	}
	if o := a.owner(); rec.Owner() != o {
		s.log.Warn().Str("owner", rec.Owner().String()).Str("me", o.String()).Msg("the session was adopted by another instance")
		return false
	}
	return true
}

func slicesContainsEffect(acts []action) bool {
	for _, act := range acts {
		if effectful(act) {
			return true
		}
	}
	return false
}

// abandon ends the session here without touching anything: it is not this instance's any more.
func (s *session) abandon() {
	s.log.Warn().Str("state", s.m.state).Msg("session abandoned: another instance runs it now")
	s.m.state, s.m.end, s.m.waiters = store.StateEnded, nil, nil
}

// updateRecord updates the session's record as its owner: refused (store.ErrNotOwner) once
// another owner has it.
func (a *App) updateRecord(ctx context.Context, id string, fn func(*store.Session) error) (store.Session, error) {
	if os, ok := a.store.(ownedStore); ok {
		return os.UpdateOwnedSession(ctx, id, a.owner(), fn)
	}
	return a.store.UpdateSession(ctx, id, fn)
}

// freeze (tests) makes the app stop renewing its lease and drop its events socket, as a process
// that is paused would look from outside, while its sessions stay in memory; thaw resumes it.
func (a *App) freeze() {
	a.ha.frozen.Store(true)
	if stop := a.ha.stopEvent.Load(); stop != nil {
		(*stop)()
	}
}

func (a *App) thaw() { a.ha.frozen.Store(false) }
