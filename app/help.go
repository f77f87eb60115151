package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// Help requests: an agent on a live call asks for help (API, or a key in the call); the
// supervisors who may supervise that agent see it (list, notifications, the calls list's
// needs_help flag); one of them accepts it — by API, optionally joining the call at once, or by
// dialing the tenant's help code, which joins them in whisper to the oldest open request they may
// accept. Exactly one accept wins (an atomic transition in the store). The agent closes the
// request, or withdraws it before anyone accepted; the end of the call closes it with reason
// call_ended. Every action is audited before it takes effect; if it cannot be audited it is not
// done.

// Notification types of help requests.
const (
	NoteHelpRaised    = "help.raised"
	NoteHelpAccepted  = "help.accepted"
	NoteHelpCancelled = "help.cancelled"
	NoteHelpClosed    = "help.closed"
)

// Audit actions of help requests.
const (
	auditHelpRaise  = "help_raise"
	auditHelpAccept = "help_accept"
	auditHelpClose  = "help_close"
	auditHelpCancel = "help_cancel"
)

// Refusal codes of help requests.
const (
	RefuseHelpExists    = "help_already_open"
	RefuseHelpState     = "help_not_open"
	RefuseNothingToHelp = "nothing_to_accept"
)

// MaxHelpReason bounds a help request's reason.
const MaxHelpReason = 500

const helpPrefix = "help-"

// RaiseRequest asks for help on the agent's current call.
type RaiseRequest struct {
	Agent  string // the agent's extension: required with an admin key, else the key's own
	Reason string // optional, up to MaxHelpReason bytes
	Via    string // "api" (default) or "phone"

	call ari.ChannelID // the agent's channel the key was pressed on (in-call key); "" = find it
}

// AcceptRequest accepts a help request.
type AcceptRequest struct {
	Supervisor string        // "" = the principal's own extension (admin keys must name one)
	Mode       dialplan.Mode // ModeUnknown: accept only; else also join the call in this mode
}

// HelpFilter selects help requests for List.
type HelpFilter struct {
	Status   string    // "" or one of the store.Help* states
	Agent    string    // "" or an extension
	From, To time.Time // raised in [From, To); zero ends are open
}

// HelpAccepted is the answer to an accept: the request, and the supervision started with it.
type HelpAccepted struct {
	Help    store.HelpRequest
	Session *store.Session // nil when the accept named no mode
}

func actorOf(p Principal) string {
	if p.Extension != "" {
		return p.Extension
	}
	return "key:" + p.KeyName
}

// helpAgent is the agent a raise, close or cancel acts for: an admin key names it; any other
// key acts as its own extension only.
func helpAgent(p Principal, agent string) (string, error) {
	if p.Role == config.RoleAdmin {
		if agent == "" {
			e := apiError(ErrInvalid, "invalid_field", "agent: required with an admin key")
			e.Field = "agent"
			return "", e
		}
		return agent, nil
	}
	if agent != "" && agent != p.Extension {
		return "", apiError(ErrForbidden, "not_own_extension", "an agent key acts only as its own extension")
	}
	return p.Extension, nil
}

// mayHelp reports whether p may see (and, for supervisors, accept) agent's requests: admins all
// of their tenant's, supervisors those of the agents they may supervise, agents their own.
func (a *App) mayHelp(p Principal, agent string) bool {
	switch p.Role {
	case config.RoleAdmin:
		return true
	case config.RoleSupervisor:
		return a.dir.Current().CanSupervise(p.Tenant, p.Extension, agent) == nil
	default:
		return p.Extension == agent
	}
}

func (a *App) helpAudit(ctx context.Context, p Principal, action, outcome, reason string, h store.HelpRequest, extra map[string]string) error {
	if extra == nil {
		extra = map[string]string{}
	}
	extra["help_request"] = h.ID
	if h.CallID != "" {
		extra["call_id"] = h.CallID
	}
	if p.KeyName != "" {
		extra["key"] = p.KeyName
	}
	return a.audit(ctx, store.AuditEntry{Tenant: p.Tenant, Actor: actorOf(p), Action: action, Target: h.Agent,
		Outcome: outcome, Reason: reason, Extra: extra})
}

// helpRefused audits a refused help action (best effort: the refusal stands either way) and
// returns err.
func (a *App) helpRefused(ctx context.Context, p Principal, action string, h store.HelpRequest, err error) error {
	code := RefuseAsterisk
	var ae *Error
	if errors.As(err, &ae) {
		code = ae.Code
	}
	if aerr := a.helpAudit(ctx, p, action, "refused", code, h, nil); aerr != nil {
		a.log.Error().Err(aerr).Msg("help refusal not audited")
	}
	return err
}

func storeFailure(err error) error {
	return apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", err)
}

// Raise opens a help request on the agent's current call.
func (a *App) Raise(ctx context.Context, p Principal, req RaiseRequest) (store.HelpRequest, error) {
	if len(req.Reason) > MaxHelpReason {
		e := apiError(ErrInvalid, "invalid_field", fmt.Sprintf("reason: longer than %d bytes", MaxHelpReason))
		e.Field = "reason"
		return store.HelpRequest{}, e
	}
	agent, err := helpAgent(p, req.Agent)
	if err != nil {
		return store.HelpRequest{}, err
	}
	h := store.HelpRequest{ID: helpPrefix + uuid.NewString(), Tenant: p.Tenant, Agent: agent, Reason: req.Reason,
		RaisedBy: actorOf(p), Via: req.Via, CreatedAt: a.cfg.Clock()}
	if h.Via == "" {
		h.Via = "api"
	}
	ext, ok := a.dir.Current().Extension(p.Tenant, agent)
	if !ok {
		return store.HelpRequest{}, a.helpRefused(ctx, p, auditHelpRaise, h,
			apiError(ErrNotFound, RefuseUnknownExtension, fmt.Sprintf("agent: no extension %q", agent)))
	}
	cctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	ch := req.call
	if ch == "" {
		if ch, err = a.activeCall(cctx, ext); err != nil {
			return store.HelpRequest{}, a.helpRefused(ctx, p, auditHelpRaise, h, asAPIError(err))
		}
	}
	h.CallID = string(ch)
	switch _, err := a.store.HelpOfCall(cctx, p.Tenant, h.CallID); {
	case err == nil:
		return store.HelpRequest{}, a.helpRefused(ctx, p, auditHelpRaise, h,
			apiError(ErrConflict, RefuseHelpExists, "the agent already has an open help request on this call"))
	case !errors.Is(err, store.ErrNotFound):
		return store.HelpRequest{}, storeFailure(err)
	}
	if err := a.helpAudit(ctx, p, auditHelpRaise, "allowed", "", h, map[string]string{"via": h.Via}); err != nil {
		return store.HelpRequest{}, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "audit trail unavailable", err)
	}
	created, err := a.store.CreateHelp(cctx, h)
	switch {
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict):
		// The refusal is audited with the request as it was asked for (agent, call, via).
		return store.HelpRequest{}, a.helpRefused(ctx, p, auditHelpRaise, h,
			apiError(ErrConflict, RefuseHelpExists, "the agent already has an open help request on this call"))
	case err != nil:
		return store.HelpRequest{}, storeFailure(err)
	}
	h = created
	a.log.Info().Str("tenant", h.Tenant).Str("agent", h.Agent).Str("help_request", h.ID).Msg("help raised")
	a.notify(h.Tenant, NoteHelpRaised, h)
	return h, nil
}

// HelpRequest returns one request the principal may see.
func (a *App) HelpRequest(ctx context.Context, p Principal, id string) (store.HelpRequest, error) {
	h, err := a.store.GetHelp(ctx, p.Tenant, id)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		return store.HelpRequest{}, apiError(ErrNotFound, "not_found", "no help request "+id)
	case err != nil:
		return store.HelpRequest{}, storeFailure(err)
	}
	if !a.mayHelp(p, h.Agent) {
		return store.HelpRequest{}, apiError(ErrForbidden, "not_allowed", "this help request is of an agent you may not supervise")
	}
	return p.HelpFor(h), nil // eventview.go: an agent never sees the supervision an accept started
}

// HelpRequests lists the requests the principal may see, oldest first.
func (a *App) HelpRequests(ctx context.Context, p Principal, f HelpFilter) ([]store.HelpRequest, error) {
	switch f.Status {
	case "", store.HelpOpen, store.HelpInProgress, store.HelpClosed, store.HelpCancelled, store.HelpExpired:
	default:
		e := apiError(ErrInvalid, "invalid_field", "status: want open, in_progress, closed, cancelled or expired")
		e.Field = "status"
		return nil, e
	}
	all, err := a.store.ListHelp(ctx, p.Tenant, f.From, f.To)
	if err != nil {
		return nil, storeFailure(err)
	}
	all = slices.DeleteFunc(all, func(h store.HelpRequest) bool {
		return (f.Status != "" && h.State != f.Status) || (f.Agent != "" && h.Agent != f.Agent) || !a.mayHelp(p, h.Agent)
	})
	for i := range all {
		all[i] = p.HelpFor(all[i])
	}
	return all, nil
}

// Accept accepts an open request as the supervisor (exactly one accept wins; the others get
// ErrConflict). With a mode it then starts a supervision as Join does, carrying the request's id;
// the accept stands if that join fails (the error is returned, the request is in progress).
func (a *App) Accept(ctx context.Context, p Principal, id string, req AcceptRequest) (HelpAccepted, error) {
	if req.Mode != dialplan.ModeUnknown && !req.Mode.Valid() {
		return HelpAccepted{}, apiError(ErrInvalid, "invalid_field", "mode: want spy, whisper or barge")
	}
	h, err := a.store.GetHelp(ctx, p.Tenant, id)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		return HelpAccepted{}, apiError(ErrNotFound, "not_found", "no help request "+id)
	case err != nil:
		return HelpAccepted{}, storeFailure(err)
	}
	_, sup, _, err := a.authorizeJoin(p, req.Supervisor, h.Agent)
	if err != nil {
		return HelpAccepted{}, a.helpRefused(ctx, p, auditHelpAccept, h, err)
	}
	extra := map[string]string{"via": "api", "supervisor": sup.Number}
	if req.Mode.Valid() {
		extra["mode"] = req.Mode.String()
	}
	if err := a.helpAudit(ctx, p, auditHelpAccept, "allowed", "", h, extra); err != nil {
		return HelpAccepted{}, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "audit trail unavailable", err)
	}
	h, err = a.acceptHelp(ctx, h, sup.Number)
	if err != nil {
		return HelpAccepted{}, a.helpRefused(ctx, p, auditHelpAccept, h, err)
	}
	out := HelpAccepted{Help: h}
	if req.Mode.Valid() {
		sess, err := a.Join(ctx, p, JoinRequest{CallID: h.CallID, Supervisor: sup.Number, Mode: req.Mode, HelpRequest: h.ID})
		if err != nil {
			return out, err
		}
		out.Session = &sess
		if hh, err := a.store.SetHelpSession(ctx, h.Tenant, h.ID, sess.ID); err == nil {
			out.Help = hh
		} else {
			a.log.Warn().Err(err).Str("help_request", h.ID).Msg("recording the help request's session")
		}
	}
	return out, nil
}

// acceptHelp is the atomic transition and its notification, shared by API and phone accepts.
func (a *App) acceptHelp(ctx context.Context, h store.HelpRequest, supervisor string) (store.HelpRequest, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
	defer cancel()
	got, err := a.store.AcceptHelp(cctx, h.Tenant, h.ID, supervisor, a.cfg.Clock())
	switch {
	case errors.Is(err, store.ErrState):
		msg := "the help request is " + got.State
		if got.HelpProvidedBy != "" {
			msg += ", accepted by " + got.HelpProvidedBy
		}
		return got, apiError(ErrConflict, RefuseHelpState, msg)
	case errors.Is(err, store.ErrConflict):
		return h, apiError(ErrConflict, RefuseHelpState, "the help request is being changed by someone else")
	case errors.Is(err, store.ErrNotFound):
		return h, apiError(ErrNotFound, "not_found", "no help request "+h.ID)
	case err != nil:
		return h, storeFailure(err)
	}
	a.log.Info().Str("tenant", got.Tenant).Str("agent", got.Agent).Str("help_request", got.ID).Str("supervisor", supervisor).Msg("help accepted")
	a.notify(got.Tenant, NoteHelpAccepted, got)
	return got, nil
}

// CloseHelp closes the agent's request (the agent's key, or an admin key).
func (a *App) CloseHelp(ctx context.Context, p Principal, id string) (store.HelpRequest, error) {
	return a.finishHelp(ctx, p, id, auditHelpClose)
}

// CancelHelp withdraws the agent's open request before anyone accepted it.
func (a *App) CancelHelp(ctx context.Context, p Principal, id string) (store.HelpRequest, error) {
	return a.finishHelp(ctx, p, id, auditHelpCancel)
}

func (a *App) finishHelp(ctx context.Context, p Principal, id, action string) (store.HelpRequest, error) {
	h, err := a.store.GetHelp(ctx, p.Tenant, id)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		return store.HelpRequest{}, apiError(ErrNotFound, "not_found", "no help request "+id)
	case err != nil:
		return store.HelpRequest{}, storeFailure(err)
	}
	if p.Role != config.RoleAdmin && p.Extension != h.Agent {
		return store.HelpRequest{}, a.helpRefused(ctx, p, action, h,
			apiError(ErrForbidden, "not_own_request", "only the agent who asked for help (or an admin) may do this"))
	}
	if err := a.helpAudit(ctx, p, action, "allowed", "", h, nil); err != nil {
		return store.HelpRequest{}, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "audit trail unavailable", err)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
	defer cancel()
	var note string
	if action == auditHelpCancel {
		h, err = a.store.CancelHelp(cctx, p.Tenant, id, a.cfg.Clock())
		note = NoteHelpCancelled
	} else {
		h, err = a.store.CloseHelp(cctx, p.Tenant, id, store.HelpReasonAgent, a.cfg.Clock())
		note = NoteHelpClosed
	}
	switch {
	case errors.Is(err, store.ErrState), errors.Is(err, store.ErrConflict):
		return store.HelpRequest{}, a.helpRefused(ctx, p, action, h, apiError(ErrConflict, RefuseHelpState, "the help request is "+h.State))
	case err != nil:
		return store.HelpRequest{}, storeFailure(err)
	}
	a.notify(h.Tenant, note, h)
	return p.HelpFor(h), nil
}

// closeHelpOfEndedCalls closes the active requests of calls that ended (reason call_ended). It
// runs on the calls index's goroutine.
func (a *App) closeHelpOfEndedCalls(ctx context.Context, ended []Call) {
	for _, c := range ended {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
		h, err := a.store.HelpOfCall(cctx, c.Tenant, c.ID)
		if err != nil {
			cancel()
			if !errors.Is(err, store.ErrNotFound) {
				a.log.Warn().Err(err).Str("call", c.ID).Msg("help request of an ended call")
			}
			continue
		}
		if err := a.audit(cctx, store.AuditEntry{Tenant: h.Tenant, Actor: "earpiece", Action: auditHelpClose, Target: h.Agent,
			Outcome: "allowed", Reason: store.HelpReasonCallEnded, Extra: map[string]string{"help_request": h.ID, "call_id": h.CallID}}); err != nil {
			// Not closed without its audit entry; the record's TTL bounds it.
			a.log.Error().Err(err).Str("help_request", h.ID).Msg("closing the help request of an ended call: not audited")
			cancel()
			continue
		}
		h, err = a.store.CloseHelp(cctx, h.Tenant, h.ID, store.HelpReasonCallEnded, a.cfg.Clock())
		cancel()
		if err != nil {
			if !errors.Is(err, store.ErrState) {
				a.log.Warn().Err(err).Str("help_request", h.ID).Msg("closing the help request of an ended call")
			}
			continue
		}
		a.notify(h.Tenant, NoteHelpClosed, h)
	}
}

// markHelp sets the calls' needs-help fields from the tenant's active requests.
func (a *App) markHelp(ctx context.Context, tenant string, calls []Call) error {
	active, err := a.store.ActiveHelp(ctx, tenant)
	if err != nil {
		return err
	}
	byCall := make(map[string]store.HelpRequest, len(active))
	for _, h := range active {
		byCall[h.CallID] = h
	}
	for i := range calls {
		if h, ok := byCall[calls[i].ID]; ok {
			calls[i].HelpRequest = h.ID
			calls[i].NeedsHelp = h.State == store.HelpOpen
		}
	}
	return nil
}

// acceptOldestHelp is the phone accept (the tenant's help code): the oldest open request the
// supervisor may accept is accepted by them, audited first. It returns the request, or a refusal
// (nothing_to_accept, store_unavailable).
func (a *App) acceptOldestHelp(ctx context.Context, tenant *config.Tenant, sup *config.Extension) (store.HelpRequest, error) {
	active, err := a.store.ActiveHelp(ctx, tenant.ID)
	if err != nil {
		return store.HelpRequest{}, refuse(RefuseStoreUnavailable, fmt.Errorf("listing help requests: %w", err))
	}
	p := Principal{Tenant: tenant.ID, Role: config.RoleSupervisor, Extension: sup.Number}
	for _, h := range active {
		if h.State != store.HelpOpen || a.dir.Current().CanSupervise(tenant.ID, sup.Number, h.Agent) != nil {
			continue
		}
		if err := a.helpAudit(ctx, p, auditHelpAccept, "allowed", "", h, map[string]string{"via": "phone", "mode": dialplan.Whisper.String()}); err != nil {
			return store.HelpRequest{}, refuse(RefuseStoreUnavailable, err)
		}
		got, err := a.acceptHelp(ctx, h, sup.Number)
		var ae *Error
		if errors.As(err, &ae) && ae.Code == RefuseHelpState {
			_ = a.helpAudit(ctx, p, auditHelpAccept, "refused", RefuseHelpState, h, map[string]string{"via": "phone"})
			continue // someone else was faster: try the next one
		}
		if err != nil {
			return store.HelpRequest{}, refuse(RefuseStoreUnavailable, err)
		}
		return got, nil
	}
	return store.HelpRequest{}, refuse(RefuseNothingToHelp, errors.New("no open help request you may accept"))
}
