package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// API-started sessions ("call me and join"): earpiece originates a call to the supervisor's phone
// into the Stasis app; when it is answered, the supervisor joins the call exactly as from a
// feature code, DTMF switching included. Status: ringing -> joining -> active -> ended.

// Calls lists the principal's tenant's calls in progress.
func (a *App) Calls(ctx context.Context, p Principal) ([]Call, error) {
	if err := p.Authorize(PermSupervise); err != nil {
		return nil, err
	}
	a.standbyCalls(ctx) // lease_calls.go: a standby has no events to keep the index current
	calls := a.callsFor(p.Tenant)
	a.supervisorsFromStore(ctx, p.Tenant, calls) // lease_calls.go: every instance's
	if err := a.markHelp(ctx, p.Tenant, calls); err != nil {
		return nil, storeFailure(err)
	}
	return calls, nil
}

// Join calls the supervisor's phone and, when it is answered, joins them to the agent's call in
// req.Mode. It returns the session in state "ringing".
func (a *App) Join(ctx context.Context, p Principal, req JoinRequest) (store.Session, error) {
	if !req.Mode.Valid() {
		return store.Session{}, apiError(ErrInvalid, "invalid_field", "mode: want spy, whisper or barge")
	}
	if node, fwd := a.forwardTarget(ctx, ""); fwd {
		return a.forwardJoin(ctx, node, p, req) // lease_forward.go: the node's active joins
	}
	agent := req.Agent
	if req.CallID != "" {
		c, ok := a.callOf(p.Tenant, req.CallID, "")
		if !ok {
			return store.Session{}, apiError(ErrNotFound, "call_not_found", "no call "+req.CallID+" in progress")
		}
		agent = c.Agent
	}
	if agent == "" {
		return store.Session{}, apiError(ErrInvalid, "invalid_field", "call_id or agent: required")
	}
	tenant, sup, ag, err := a.authorizeJoin(p, req.Supervisor, agent)
	if err != nil {
		a.auditAPIRefusal(ctx, p, agent, err)
		return store.Session{}, err
	}
	s := a.newSession("api", "", true)
	s.tenant, s.supervisor, s.agent, s.rules, s.keyName = tenant, sup, ag, tenant.DialingRules, p.KeyName
	s.helpID = req.HelpRequest
	s.log = s.log.With().Str("tenant", tenant.ID).Str("supervisor", sup.Number).Str("agent", ag.Number).Logger()

	cctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	agentChan, err := a.activeCall(cctx, ag)
	if err != nil {
		a.auditAPIRefusal(ctx, p, agent, err)
		return store.Session{}, asAPIError(err)
	}
	if req.CallID != "" && string(agentChan) != req.CallID {
		return store.Session{}, apiError(ErrConflict, "call_changed", "the agent is now on another call")
	}
	s.m.agentChan, s.m.want = agentChan, req.Mode
	release, err := a.claimJoin(ctx, tenant.ID, sup.Number, agentChan, s.id)
	if err != nil {
		a.auditAPIRefusal(ctx, p, agent, err)
		return store.Session{}, err
	}
	// Audit before acting, then the record: the same entry and record a feature-code join writes,
	// here before the phone rings.
	if err := a.audit(ctx, s.joinAudit(req.Mode)); err != nil {
		release()
		return store.Session{}, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "audit trail unavailable", err)
	}
	rec := s.newRecord(req.Mode)
	err = a.store.CreateSession(cctx, rec)
	release() // from here on the live record says it
	if err != nil {
		return store.Session{}, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the session could not be recorded", err)
	}
	s.publish()
	// The route exists before the originate, so no event of the new channel arrives unrouted.
	if !a.addSession(s, func(ctx context.Context) { s.run(ctx, evRing{}) }) {
		a.endRecord(cctx, s.id, ReasonShutdown)
		return store.Session{}, apiError(ErrUnavailable, "shutting_down", "earpiece is shutting down")
	}
	name := ag.Name
	if name == "" {
		name = ag.Number
	}
	_, err = a.ari.Originate(cctx, ari.OriginateRequest{
		Endpoint:  sup.Endpoint,
		App:       a.cfg.AppName,
		AppArgs:   argAPI + "," + s.id,
		ChannelID: s.supChan,
		// The supervisor's phone shows whom they will supervise.
		CallerID: fmt.Sprintf("%q <%s>", "Supervise "+name+" ("+req.Mode.String()+")", ag.Number),
		Timeout:  a.cfg.RingTimeout,
	})
	if err != nil {
		s.postEvent(evOriginateFailed{err: err})
		return store.Session{}, apiFailure(ErrUnavailable, RefuseAsterisk, "the supervisor's phone could not be called", err)
	}
	a.notify(tenant.ID, NoteSupervisionRinging, ViewSession(rec, a.cfg.Clock()))
	return rec, nil
}

// RefuseAlreadySupervising: the supervisor already has a live session on the call (one session
// per supervisor and call: a second would ring the phone again and double the audio).
const RefuseAlreadySupervising = "already_supervising"

// claimJoin makes sure sup has no live session on the agent's call agentChan and holds that
// true until release is called (after the new session is recorded): the claim serialises
// concurrent joins of one supervisor to one call, across instances.
func (a *App) claimJoin(ctx context.Context, tenant, sup string, agentChan ari.ChannelID, owner string) (release func(), err error) {
	key := "join:" + tenant + ":" + sup + ":" + string(agentChan)
	// The join's first Redis write: refused at once while Redis is known down, and bounded by
	// JoinStoreTimeout (journal_replay.go).
	if a.storeDown() {
		return nil, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", store.ErrUnavailable)
	}
	cctx, cancel := context.WithTimeout(ctx, a.cfg.JoinStoreTimeout)
	ok, err := a.store.Claim(cctx, key, owner, 2*a.cfg.CallTimeout)
	cancel()
	if err != nil {
		return nil, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", err)
	}
	if !ok {
		return nil, apiError(ErrConflict, RefuseAlreadySupervising, "this supervisor is already joining this call")
	}
	release = func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
		defer cancel()
		if err := a.store.Release(rctx, key, owner); err != nil {
			a.log.Warn().Err(err).Str("tenant", tenant).Str("supervisor", sup).Msg("releasing a join claim")
		}
	}
	// One indexed read, however many sessions the tenant has live.
	s, err := a.store.LiveSessionFor(ctx, tenant, sup, string(agentChan))
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		release()
		return nil, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", err)
	default:
		ended, err := a.awaitEnd(ctx, s.ID)
		if err != nil {
			release()
			return nil, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", err)
		}
		if !ended {
			release()
			return nil, apiError(ErrConflict, RefuseAlreadySupervising,
				"this supervisor already supervises this call in session "+s.ID+"; change its mode or end it")
		}
	}
	return release, nil
}

// rejoinGrace is how long a join waits for the supervisor's other session on the call to end
// before refusing: a supervisor who hangs up and is joined again at once (a CRM's "rejoin")
// races the end of the first session, which takes a few milliseconds to be recorded.
const rejoinGrace = 2 * time.Second

// awaitEnd waits up to rejoinGrace for session id to end and reports whether it did.
func (a *App) awaitEnd(ctx context.Context, id string) (bool, error) {
	deadline := time.NewTimer(rejoinGrace)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		rec, err := a.store.GetSession(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return true, nil
		case err != nil:
			return false, err
		case !rec.Live():
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-deadline.C:
			return false, nil
		case <-tick.C:
		}
	}
}

// supLegPrefix starts the ids of supervisor legs the API originates.
const supLegPrefix = "ep-sup-"

func (a *App) auditAPIRefusal(ctx context.Context, p Principal, agent string, err error) {
	code := RefuseAsterisk
	var ae *Error
	var r *refusal
	switch {
	case errors.As(err, &ae):
		code = ae.Code
	case errors.As(err, &r):
		code = r.code
	}
	actor := p.Extension
	if actor == "" {
		actor = "key:" + p.KeyName
	}
	a.met.refused(code)
	if aerr := a.audit(ctx, store.AuditEntry{Tenant: p.Tenant, Actor: actor, Action: "join", Target: agent,
		Outcome: "refused", Reason: code, Extra: map[string]string{"via": "api", "detail": err.Error()}}); aerr != nil {
		a.log.Error().Err(aerr).Msg("refusal not audited")
	}
}

// asAPIError turns a refusal into an API error. The message is fixed per code: a refusal's
// own text names Asterisk endpoints and ARI resources, which are earpiece's business (it goes
// to the audit trail and the log with the cause).
func asAPIError(err error) error {
	var r *refusal
	if !errors.As(err, &r) {
		return apiFailure(ErrUnavailable, RefuseAsterisk, "Asterisk is unavailable", err)
	}
	switch r.code {
	case RefuseNoActiveCall:
		return apiFailure(ErrConflict, r.code, "the agent is not on a call", r.err)
	case RefuseTalkerBusy:
		return apiFailure(ErrConflict, r.code, "another supervisor is already talking on this call", r.err)
	case RefuseStoreUnavailable:
		return apiFailure(ErrUnavailable, r.code, "the state store is unavailable", r.err)
	case RefuseAsterisk:
		return apiFailure(ErrUnavailable, r.code, "Asterisk is unavailable", r.err)
	default:
		return apiFailure(ErrForbidden, r.code, "refused: "+r.code, r.err)
	}
}

// Supervisions lists the tenant's live sessions.
func (a *App) Supervisions(ctx context.Context, p Principal) ([]store.Session, error) {
	if err := p.Authorize(PermSupervise); err != nil {
		return nil, err
	}
	ss, err := a.store.ListSessions(ctx, p.Tenant)
	if err != nil {
		return nil, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", err)
	}
	mine := ss[:0]
	for _, s := range ss {
		if p.AuthorizeSession(s) == nil {
			mine = append(mine, s)
		}
	}
	return mine, nil
}

// Supervision returns one session (live or ended) of the principal's tenant.
func (a *App) Supervision(ctx context.Context, p Principal, id string) (store.Session, error) {
	rec, err := a.store.GetSession(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Session{}, apiError(ErrNotFound, "not_found", "no supervision "+id)
	case err != nil:
		return store.Session{}, apiFailure(ErrUnavailable, RefuseStoreUnavailable, "the state store is unavailable", err)
	}
	if err := p.AuthorizeSession(rec); err != nil {
		return store.Session{}, err
	}
	return rec, nil
}

// localSession returns the session this instance runs with id.
func (a *App) localSession(id string) (*session, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[id]
	return s, ok
}

// SetMode switches a live session's mode (as a DTMF digit does) and returns it once
// the new mode is audible.
func (a *App) SetMode(ctx context.Context, p Principal, id string, mode dialplan.Mode) (store.Session, error) {
	if !mode.Valid() {
		return store.Session{}, apiError(ErrInvalid, "invalid_field", "mode: want spy, whisper or barge")
	}
	rec, err := a.Supervision(ctx, p, id)
	if err != nil {
		return store.Session{}, err
	}
	if !rec.Live() {
		return store.Session{}, apiError(ErrConflict, "ended", "the supervision has ended")
	}
	s, ok := a.localSession(id)
	if !ok {
		return a.modeElsewhere(ctx, p, rec, mode) // lease_forward.go
	}
	cmd := &modeCmd{mode: mode, reply: make(chan error, 1)}
	s.postCmd(cmd)
	select {
	case err := <-cmd.reply:
		if err != nil {
			return store.Session{}, err
		}
	case <-s.done:
		return store.Session{}, apiError(ErrConflict, "ended", "the supervision has ended")
	case <-ctx.Done():
		return store.Session{}, apiFailure(ErrUnavailable, "timeout", "timed out waiting for the session", ctx.Err())
	}
	return a.Supervision(ctx, p, id)
}

// Leave ends a session (the supervisor is hung up) and returns the ended record.
func (a *App) Leave(ctx context.Context, p Principal, id string) (store.Session, error) {
	rec, err := a.Supervision(ctx, p, id)
	if err != nil {
		return store.Session{}, err
	}
	if !rec.Live() {
		return rec, nil
	}
	s, ok := a.localSession(id)
	if !ok {
		return a.leaveElsewhere(ctx, p, rec) // lease_forward.go
	}
	s.postEvent(evLeave{reason: ReasonAPI})
	select {
	case <-s.done:
	case <-ctx.Done():
		return store.Session{}, apiFailure(ErrUnavailable, "timeout", "timed out waiting for the session", ctx.Err())
	}
	return a.Supervision(ctx, p, id)
}

// errOtherInstance refuses to act on a session another instance runs. Instance names are
// earpiece's business: the client learns only that it is another one.
func errOtherInstance(rec store.Session) error {
	return apiFailure(ErrConflict, "other_instance", "the supervision is run by another earpiece instance; retry there",
		fmt.Errorf("session %s is run by instance %s", rec.ID, rec.Instance))
}

// notify hands a notification to the notifier (which never blocks).
func (a *App) notify(tenant, typ string, data any) {
	if a.cfg.Notifier == nil {
		return
	}
	a.cfg.Notifier.Notify(Notification{Type: typ, Tenant: tenant, Time: a.cfg.Clock(), Data: data})
}
