package app

import (
	"context"
	"errors"
	"time"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// Escalation and expiry of help requests nobody accepts. A sweep runs every Config.HelpSweep:
// for each tenant, each open request older than the tenant's help_requests.escalate_after is
// escalated (it stays open; help.escalated tells the tenant's admins, who see every help event)
// and each older than expire_after expires (state expired, help.expired). Ages are measured from
// the raise with Config.Clock, so tests move time instead of waiting.
//
// Several instances may sweep one Redis: the sweep runs under a lease (a claim renewed at every
// sweep, lapsing when its instance stops), and every change is an atomic transition of the
// request (store.EscalateHelp, ExpireHelp), so a request is escalated and expired once, and an
// accept racing an expiry has exactly one winner.

// Notification types of escalation and expiry.
const (
	NoteHelpEscalated = "help.escalated"
	NoteHelpExpired   = "help.expired"
)

// Audit actions of the sweep (actor "earpiece").
const (
	auditHelpEscalate = "help_escalate"
	auditHelpExpire   = "help_expire"
)

// helpSweepLease is the claim the sweeping instance holds.
const helpSweepLease = "help-sweep"

// sweepActor is the audit actor of what earpiece does on its own.
const sweepActor = "earpiece"

// runHelpSweep sweeps every HelpSweep until ctx is done, then gives up the lease.
func (a *App) runHelpSweep(ctx context.Context) {
	t := time.NewTicker(a.cfg.HelpSweep)
	defer t.Stop()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
		defer cancel()
		if err := a.store.Release(cctx, helpSweepLease, a.cfg.Instance); err != nil && !errors.Is(err, store.ErrNotOwner) {
			a.log.Debug().Err(err).Msg("help sweep: releasing the lease")
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.sweepHelp(ctx)
		}
	}
}

// sweepHelp escalates and expires what is due, if this instance holds the lease.
func (a *App) sweepHelp(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	ok, err := a.store.Claim(cctx, helpSweepLease, a.cfg.Instance, 3*a.cfg.HelpSweep)
	cancel()
	if err != nil {
		a.log.Warn().Err(err).Msg("help sweep: taking the lease")
		return
	}
	if !ok {
		return // another instance sweeps
	}
	for _, t := range a.dir.Current().Tenants() {
		if ctx.Err() != nil {
			return
		}
		a.sweepTenant(ctx, t)
	}
}

// sweepTenant escalates and expires the tenant's open requests that are due.
func (a *App) sweepTenant(ctx context.Context, t *config.Tenant) {
	cctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	active, err := a.store.ActiveHelp(cctx, t.ID)
	cancel()
	if err != nil {
		a.log.Warn().Err(err).Str("tenant", t.ID).Msg("help sweep: listing help requests")
		return
	}
	now := a.cfg.Clock()
	for _, h := range active {
		if h.State != store.HelpOpen {
			continue
		}
		switch age := now.Sub(h.CreatedAt); {
		case age >= t.HelpRequests.ExpireAfter:
			a.timeoutHelp(ctx, h, auditHelpExpire, NoteHelpExpired, a.store.ExpireHelp)
		case age >= t.HelpRequests.EscalateAfter && !h.Escalated:
			a.timeoutHelp(ctx, h, auditHelpEscalate, NoteHelpEscalated, a.store.EscalateHelp)
		}
	}
}

// timeoutHelp audits, then applies one transition of the sweep and notifies it. A request that
// changed in between (accepted, cancelled, the call ended, another instance was first) is left
// as it is, with a refused entry after the allowed one.
func (a *App) timeoutHelp(ctx context.Context, h store.HelpRequest, action, note string,
	change func(ctx context.Context, tenant, id string, at time.Time) (store.HelpRequest, error)) {
	log := a.log.With().Str("tenant", h.Tenant).Str("agent", h.Agent).Str("help_request", h.ID).Str("action", action).Logger()
	entry := func(outcome, reason string) store.AuditEntry {
		return store.AuditEntry{Tenant: h.Tenant, Actor: sweepActor, Action: action, Target: h.Agent,
			Outcome: outcome, Reason: reason, Extra: map[string]string{"help_request": h.ID, "call_id": h.CallID}}
	}
	if err := a.audit(ctx, entry("allowed", "")); err != nil {
		// Not done without its audit entry: the next sweep tries again.
		log.Error().Err(err).Msg("help sweep: not audited")
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
	defer cancel()
	got, err := change(cctx, h.Tenant, h.ID, a.cfg.Clock())
	switch {
	case errors.Is(err, store.ErrState), errors.Is(err, store.ErrNotFound):
		if aerr := a.audit(ctx, entry(store.OutcomeRefused, RefuseHelpState)); aerr != nil {
			log.Error().Err(aerr).Msg("help sweep: refusal not audited")
		}
		return
	case err != nil:
		log.Warn().Err(err).Msg("help sweep")
		return
	}
	log.Info().Msg("help request " + note[len("help."):])
	a.notify(got.Tenant, note, got)
}
