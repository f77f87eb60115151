package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// API-started sessions ("call me and join"): earpiece originates a call to the supervisor's phone
// into the Stasis app; when it is answered, the supervisor joins the call exactly as from a
// feature code, DTMF switching included. Status: ringing -> joining -> active -> ended.

// sessionView is what other goroutines may read of a session (calls list, API lookups); the
// session goroutine replaces it whole.
type sessionView struct {
	tenant, supervisor, agentChan, mode, state string
}

func (s *session) publish(state string) {
	v := &sessionView{state: state, mode: s.m.want.String()}
	if s.m.mode.Valid() {
		v.mode = s.m.mode.String()
	}
	if s.tenant != nil {
		v.tenant = s.tenant.ID
	}
	if s.supervisor != nil {
		v.supervisor = s.supervisor.Number
	}
	v.agentChan = string(s.agentChan)
	s.view.Store(v)
}

// Calls lists the principal's tenant's calls in progress.
func (a *App) Calls(_ context.Context, p Principal) ([]Call, error) {
	if !p.Role.MaySupervise() {
		return nil, apiError(ErrForbidden, "forbidden", "agents cannot list calls")
	}
	return a.callsFor(p.Tenant), nil
}

// authorizeJoin decides who supervises whom for an API join (SPEC §4): a supervisor key acts as
// its own extension under the hunt-group rules; an admin key may name any extension of its tenant
// as the supervisor.
func (a *App) authorizeJoin(p Principal, supervisor, agent string) (*config.Tenant, *config.Extension, *config.Extension, error) {
	tenant, ok := a.dir.Tenant(p.Tenant)
	if !ok {
		return nil, nil, nil, apiError(ErrForbidden, "unknown_tenant", "unknown tenant")
	}
	switch p.Role {
	case config.RoleSupervisor:
		if supervisor == "" {
			supervisor = p.Extension
		}
		if supervisor != p.Extension {
			return nil, nil, nil, apiError(ErrForbidden, "forbidden", "a supervisor key acts only as its own extension")
		}
		if err := a.dir.CanSupervise(tenant.ID, supervisor, agent); err != nil {
			return nil, nil, nil, apiError(refusalKind(err), refusalCode(err), err.Error())
		}
	case config.RoleAdmin:
		if supervisor == "" {
			return nil, nil, nil, apiError(ErrInvalid, "invalid_field", "supervisor: required with an admin key")
		}
		if supervisor == agent {
			return nil, nil, nil, apiError(ErrForbidden, RefuseSelf, "supervisor and agent are the same extension")
		}
		if _, ok := a.dir.Extension(tenant.ID, supervisor); !ok {
			return nil, nil, nil, apiError(ErrInvalid, RefuseUnknownExtension, fmt.Sprintf("supervisor: no extension %q", supervisor))
		}
		if err := a.dir.CanSuperviseAsAdmin(tenant.ID, agent); err != nil {
			return nil, nil, nil, apiError(refusalKind(err), refusalCode(err), err.Error())
		}
	default:
		return nil, nil, nil, apiError(ErrForbidden, "forbidden", "agents cannot supervise")
	}
	sup, _ := a.dir.Extension(tenant.ID, supervisor)
	ag, _ := a.dir.Extension(tenant.ID, agent)
	return tenant, sup, ag, nil
}

func refusalKind(err error) error {
	if errors.Is(err, config.ErrUnknownExtension) {
		return ErrNotFound
	}
	return ErrForbidden
}

// Join calls the supervisor's phone and, when it is answered, joins them to the agent's call in
// req.Mode. It returns the session in state "ringing".
func (a *App) Join(ctx context.Context, p Principal, req JoinRequest) (store.Session, error) {
	if !req.Mode.Valid() {
		return store.Session{}, apiError(ErrInvalid, "invalid_field", "mode: want spy, whisper or barge")
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
	s := &session{
		app: a, id: newSessionID(), origin: "api",
		tenant: tenant, supervisor: sup, agent: ag, rules: tenant.DialingRules,
		made: map[ari.ChannelID]bool{}, dropped: map[ari.ChannelID]bool{},
		done: make(chan struct{}), supAnswered: true,
	}
	s.mbox.init()
	s.supChan = ari.ChannelID(supLegPrefix + s.id[len(sessionPrefix):])
	s.log = a.log.With().Str("session", s.id).Str("tenant", tenant.ID).Str("supervisor", sup.Number).
		Str("agent", ag.Number).Str("channel", string(s.supChan)).Logger()

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
	s.agentChan = agentChan
	if err := a.audit(ctx, s.auditEntry("join", "allowed", "", map[string]string{"mode": req.Mode.String(), "via": "api", "key": p.KeyName})); err != nil {
		return store.Session{}, apiError(ErrUnavailable, RefuseStoreUnavailable, "audit trail unavailable")
	}
	now := a.cfg.Clock()
	rec := store.Session{
		ID: s.id, Tenant: tenant.ID, Supervisor: sup.Number, Agent: ag.Number, CallID: string(agentChan),
		Origin: s.origin, Mode: req.Mode.String(), State: store.StateRinging,
		SupervisorChannel: string(s.supChan), AgentChannel: string(agentChan),
		BridgeID: string(bridgeID(s.id)), Instance: a.cfg.Instance, StartedAt: now, UpdatedAt: now,
	}
	if err := a.store.CreateSession(cctx, rec); err != nil {
		return store.Session{}, apiError(ErrUnavailable, RefuseStoreUnavailable, "recording the session: "+err.Error())
	}
	s.m.want = req.Mode
	s.publish(store.StateRinging)
	// The route exists before the originate, so no event of the new channel arrives unrouted.
	if !a.addSession(s, func(ctx context.Context) { s.runAPI(ctx, req.Mode) }) {
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
		s.post(evOriginateFailed{err: err})
		return store.Session{}, apiError(ErrUnavailable, RefuseAsterisk, "calling the supervisor: "+err.Error())
	}
	a.notify(tenant.ID, NoteSupervisionRinging, rec)
	return rec, nil
}

// supLegPrefix starts the ids of supervisor legs the API originates.
const supLegPrefix = "ep-sup-"

// evOriginateFailed: the originate itself failed; the session ends at once.
type evOriginateFailed struct{ err error }

// runAPI is the session goroutine of an API-started session: it waits for the supervisor to
// answer (StasisStart) or for the call attempt to fail, then joins as a feature-code session does.
func (s *session) runAPI(ctx context.Context, mode dialplan.Mode) {
	defer close(s.done)
	a := s.app
	reason, ok := s.awaitAnswer(ctx)
	if !ok {
		s.log.Info().Str("reason", reason).Msg("supervisor did not answer")
		if !s.supGone {
			a.bestEffortHangup(ctx, s.supChan)
		}
		s.auditEnd(ctx, reason)
		a.endRecord(ctx, s.id, reason)
		return
	}
	s.publish(store.StateJoining)
	if _, err := a.store.UpdateSession(ctx, s.id, func(r *store.Session) error {
		r.State, r.UpdatedAt = store.StateJoining, a.cfg.Clock()
		return nil
	}); err != nil {
		s.log.Warn().Err(err).Msg("recording joining")
	}
	if err := s.prepareAPIJoin(ctx, mode); err != nil {
		s.refuseAndHangup(ctx, err, "")
		return
	}
	s.loop(ctx, mode)
}

// awaitAnswer waits for the originated leg's StasisStart (answered) or its end.
func (s *session) awaitAnswer(ctx context.Context) (string, bool) {
	timeout := time.NewTimer(s.app.cfg.RingTimeout + 5*time.Second)
	defer timeout.Stop()
	for {
		select {
		case <-ctx.Done():
			return ReasonShutdown, false
		case <-timeout.C:
			return ReasonNoAnswer, false
		case <-s.mbox.signal:
			for _, v := range s.mbox.take() {
				switch e := v.(type) {
				case *ari.StasisStart:
					if e.Channel.ID == s.supChan {
						return "", true
					}
				case *ari.ChannelDestroyed:
					if e.Channel.ID == s.supChan {
						s.supGone = true
						return hangupReason(e.Cause), false
					}
				case evOriginateFailed:
					s.supGone = true
					return ReasonError, false
				case evLeave:
					return e.reason, false
				case *modeCmd:
					e.reply <- apiError(ErrConflict, "not_active", "the supervisor has not answered yet")
				}
			}
		}
	}
}

// hangupReason maps a Q.850 cause of an unanswered supervisor leg to an end reason.
func hangupReason(cause int) string {
	switch cause {
	case 17: // user busy (SIP 486)
		return ReasonBusy
	case 18, 19: // no user responding, no answer (timeout, 408, 480)
		return ReasonNoAnswer
	case 21: // call rejected (SIP 603)
		return ReasonRejected
	default:
		return ReasonNoAnswer
	}
}

// prepareAPIJoin re-checks the call (it may have ended while the phone rang), takes the talker
// slot if needed, and makes the bridge.
func (s *session) prepareAPIJoin(ctx context.Context, mode dialplan.Mode) error {
	a := s.app
	cctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	agentChan, err := a.activeCall(cctx, s.agent)
	if err != nil {
		return err
	}
	if agentChan != s.agentChan {
		return refuse(RefuseNoActiveCall, errors.New("the agent's call ended while the supervisor's phone rang"))
	}
	return s.makeBridge(cctx, mode)
}

func (s *session) auditEnd(ctx context.Context, reason string) {
	outcome := "ok"
	if reason == ReasonError {
		outcome = "failed"
	}
	var extra map[string]string
	if s.m.mode.Valid() {
		extra = map[string]string{"mode": s.m.mode.String()}
	}
	if err := s.app.audit(ctx, s.auditEntry("end", outcome, reason, extra)); err != nil {
		s.log.Error().Err(err).Msg("end not audited")
	}
}

func (a *App) endRecord(ctx context.Context, id, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
	defer cancel()
	rec, err := a.store.EndSession(ctx, id, reason, a.cfg.Clock())
	if err != nil {
		a.log.Warn().Err(err).Str("session", id).Msg("ending session record")
		return
	}
	a.notify(rec.Tenant, NoteSupervisionEnded, rec)
}

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

// asAPIError turns a refusal into an API error.
func asAPIError(err error) error {
	var r *refusal
	if !errors.As(err, &r) {
		return apiError(ErrUnavailable, RefuseAsterisk, err.Error())
	}
	switch r.code {
	case RefuseNoActiveCall:
		return apiError(ErrConflict, r.code, r.err.Error())
	case RefuseTalkerBusy:
		return apiError(ErrConflict, r.code, r.err.Error())
	case RefuseStoreUnavailable, RefuseAsterisk:
		return apiError(ErrUnavailable, r.code, r.err.Error())
	default:
		return apiError(ErrForbidden, r.code, r.err.Error())
	}
}

// Supervisions lists the tenant's live sessions.
func (a *App) Supervisions(ctx context.Context, p Principal) ([]store.Session, error) {
	if !p.Role.MaySupervise() {
		return nil, apiError(ErrForbidden, "forbidden", "agents cannot list supervisions")
	}
	ss, err := a.store.ListSessions(ctx, p.Tenant)
	if err != nil {
		return nil, apiError(ErrUnavailable, RefuseStoreUnavailable, err.Error())
	}
	if p.Role == config.RoleSupervisor {
		own := ss[:0]
		for _, s := range ss {
			if s.Supervisor == p.Extension {
				own = append(own, s)
			}
		}
		ss = own
	}
	return ss, nil
}

// Supervision returns one session (live or ended) of the principal's tenant.
func (a *App) Supervision(ctx context.Context, p Principal, id string) (store.Session, error) {
	rec, err := a.store.GetSession(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Session{}, apiError(ErrNotFound, "not_found", "no supervision "+id)
	case err != nil:
		return store.Session{}, apiError(ErrUnavailable, RefuseStoreUnavailable, err.Error())
	case rec.Tenant != p.Tenant:
		// Another tenant's session does not exist for this principal.
		return store.Session{}, apiError(ErrNotFound, "not_found", "no supervision "+id)
	case !p.Role.MaySupervise(), p.Role == config.RoleSupervisor && rec.Supervisor != p.Extension:
		return store.Session{}, apiError(ErrForbidden, "forbidden", "not your supervision")
	}
	return rec, nil
}

// modeCmd asks a session for a mode; reply gets nil once the mode is audible, or the refusal.
type modeCmd struct {
	mode  dialplan.Mode
	reply chan error
}

// localSession returns the session this instance runs with id.
func (a *App) localSession(id string) (*session, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[id]
	return s, ok
}

// SetMode switches a live session's mode (make-before-break, as with DTMF) and returns it once
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
		return store.Session{}, apiError(ErrConflict, "other_instance", "the supervision is run by instance "+rec.Instance)
	}
	cmd := &modeCmd{mode: mode, reply: make(chan error, 1)}
	s.post(cmd)
	select {
	case err := <-cmd.reply:
		if err != nil {
			return store.Session{}, err
		}
	case <-s.done:
		return store.Session{}, apiError(ErrConflict, "ended", "the supervision has ended")
	case <-ctx.Done():
		return store.Session{}, apiError(ErrUnavailable, "timeout", ctx.Err().Error())
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
		return store.Session{}, apiError(ErrConflict, "other_instance", "the supervision is run by instance "+rec.Instance)
	}
	s.post(evLeave{reason: ReasonAPI})
	select {
	case <-s.done:
	case <-ctx.Done():
		return store.Session{}, apiError(ErrUnavailable, "timeout", ctx.Err().Error())
	}
	return a.Supervision(ctx, p, id)
}

// notify hands a notification to the notifier (which never blocks).
func (a *App) notify(tenant, typ string, data any) {
	if a.cfg.Notifier == nil {
		return
	}
	a.cfg.Notifier.Notify(Notification{Type: typ, Tenant: tenant, Time: a.cfg.Clock(), Data: data})
}
