package app

import (
	"context"
	"errors"

	"github.com/earpiece/earpiece/store"
)

// ReasonLost ends a session found on Asterisk or in Redis that could not be taken over: its
// owner is gone and what is left of it cannot go on (adopt.go), or nothing records it any more.
const ReasonLost = "lost"

// reconcile runs after every (re)connection of the events socket: events were missed while it
// was down, so earpiece's objects on Asterisk and the node's sessions in Redis are compared with
// the sessions this instance runs. Sessions nobody runs any more are adopted (adopt.go): they go
// on, or end cleanly when they cannot. What is left of sessions that no live record describes (a
// bridge named earpiece:<session>, a snoop) is removed with its supervisor. Live sessions of
// another owner this instance may not adopt (another instance's, without a lease) are left alone.
func (a *App) reconcile(ctx context.Context) {
	a.reconcileMu.Lock()
	defer a.reconcileMu.Unlock()
	if a.ha.fenced.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 4*a.cfg.CallTimeout)
	defer cancel()
	bridges, err := a.ari.ListBridges(ctx)
	if err != nil {
		a.log.Warn().Err(err).Msg("reconcile: list bridges")
		return
	}
	chans, err := a.ari.ListChannels(ctx)
	if err != nil {
		a.log.Warn().Err(err).Msg("reconcile: list channels")
		return
	}
	adopted := a.adoptSessions(ctx, bridges, chans)
	for _, b := range bridges {
		sid := sessionOfName(b.Name, "")
		if sid == "" || adopted[sid] || !a.orphan(ctx, sid) {
			continue
		}
		a.log.Warn().Str("session", sid).Str("bridge", string(b.ID)).Msg("reconcile: removing orphaned session")
		for _, ch := range b.Channels {
			a.bestEffortHangup(ctx, ch)
		}
		a.bestEffortDestroyBridge(ctx, b.ID)
	}
	for _, ch := range chans {
		sid := sessionOfName("", ch.ID)
		if sid == "" || adopted[sid] || !a.orphan(ctx, sid) {
			continue
		}
		a.log.Warn().Str("session", sid).Str("channel", string(ch.ID)).Msg("reconcile: removing orphaned snoop")
		a.bestEffortHangup(ctx, ch.ID)
	}
}

// orphan reports whether session sid is owned by nobody: not running here, and without a live
// record (a live one is adopted, or another owner's).
func (a *App) orphan(ctx context.Context, sid string) bool {
	if _, mine := a.localSession(sid); mine {
		return false
	}
	rec, err := a.store.GetSession(ctx, sid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true
	case err != nil:
		// Redis unreachable: do not guess, leave it for the next reconciliation.
		return false
	}
	return !rec.Live()
}
