package app

import (
	"context"
	"errors"
	"strings"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/store"
)

// ReasonLost ends a session found on Asterisk or in Redis that no running instance owns (its
// instance crashed or was killed without teardown).
const ReasonLost = "lost"

// reconcile runs after every (re)connection of the events socket: events were missed while it
// was down, so earpiece's objects on Asterisk are compared with the sessions this instance runs.
// Every bridge named earpiece:<session> and every snoop channel whose session is neither running
// here nor live in Redis under another instance is removed, with its supervisor, and the session
// record is ended as "lost". Sessions of other instances sharing the Redis are left alone.
func (a *App) reconcile(ctx context.Context) {
	a.reconcileMu.Lock()
	defer a.reconcileMu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 4*a.cfg.CallTimeout)
	defer cancel()
	bridges, err := a.ari.ListBridges(ctx)
	if err != nil {
		a.log.Warn().Err(err).Msg("reconcile: list bridges")
		return
	}
	for _, b := range bridges {
		sid, ok := strings.CutPrefix(b.Name, BridgeNamePrefix)
		if !ok || !a.orphan(ctx, sid) {
			continue
		}
		a.log.Warn().Str("session", sid).Str("bridge", string(b.ID)).Msg("reconcile: removing orphaned session")
		// Recorded first, like every action: whoever sees the supervisor hung up finds the
		// session already ended as lost.
		a.endLost(ctx, sid)
		for _, ch := range b.Channels {
			a.bestEffortHangup(ctx, ch)
		}
		if err := a.ari.DestroyBridge(ctx, b.ID); err != nil && !errors.Is(err, ari.ErrNotFound) {
			a.log.Warn().Err(err).Str("bridge", string(b.ID)).Msg("reconcile: destroy bridge")
		}
	}
	chans, err := a.ari.ListChannels(ctx)
	if err != nil {
		a.log.Warn().Err(err).Msg("reconcile: list channels")
		return
	}
	for _, ch := range chans {
		rest, ok := strings.CutPrefix(string(ch.ID), snoopPrefix)
		if !ok {
			continue
		}
		// Snoop ids are ep-snp-<session uuid>-<n>.
		i := strings.LastIndexByte(rest, '-')
		if i < 0 {
			continue
		}
		if sid := sessionPrefix + rest[:i]; a.orphan(ctx, sid) {
			a.log.Warn().Str("session", sid).Str("channel", string(ch.ID)).Msg("reconcile: removing orphaned snoop")
			a.endLost(ctx, sid)
			a.bestEffortHangup(ctx, ch.ID)
		}
	}
}

// orphan reports whether session sid is owned by nobody: not running here, and not a live
// session of another instance.
func (a *App) orphan(ctx context.Context, sid string) bool {
	a.mu.Lock()
	_, mine := a.sessions[sid]
	a.mu.Unlock()
	if mine {
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
	return !rec.Live() || rec.Instance == a.cfg.Instance
}

func (a *App) endLost(ctx context.Context, sid string) {
	rec, err := a.store.GetSession(ctx, sid)
	if err != nil || !rec.Live() {
		return
	}
	_ = a.audit(ctx, store.AuditEntry{Tenant: rec.Tenant, Actor: "earpiece", Action: "end", Target: rec.Agent,
		Outcome: "ok", Reason: ReasonLost, Session: sid})
	a.endRecord(ctx, sid, ReasonLost)
	if rec.AgentChannel != "" {
		_ = a.store.Release(ctx, talkerKey(ari.ChannelID(rec.AgentChannel)), sid)
	}
}
