package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/store"
)

// do carries out one action of the machine and returns the event it results in, if any. Every
// ARI and Redis call runs under CallTimeout and never under a context that shutdown cancels, so
// a teardown is never skipped half-way.
func (s *session) do(ctx context.Context, act action) event {
	if s.app.ha.fenced.Load() && effectful(act) {
		return nil // lease.go: no longer this instance's to act on
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.app.cfg.CallTimeout)
	defer cancel()
	for _, step := range []func(ctx, cctx context.Context, act action) (event, bool){s.doJoin, s.doTalker, s.doMode, s.doTalk, s.doEnd} {
		if fb, ok := step(ctx, cctx, act); ok {
			return fb
		}
	}
	s.log.Error().Str("action", fmt.Sprintf("%T", act)).Msg("no handler for action") // a programming error
	return nil
}

// doJoin carries out the steps of a join and the talker slot.
func (s *session) doJoin(ctx, cctx context.Context, act action) (event, bool) {
	a := s.app
	switch act := act.(type) {
	case actFindCall:
		ch, err := a.activeCall(cctx, s.agent)
		if err != nil {
			return evRefused{r: asRefusal(err)}, true
		}
		s.log = s.log.With().Str("agent_channel", string(ch)).Logger()
		return evCallFound{channel: ch}, true
	case actAcceptHelp:
		h, err := a.acceptOldestHelp(cctx, s.tenant, s.supervisor)
		if err != nil {
			return evRefused{r: asRefusal(err)}, true
		}
		ag, ok := a.dir.Current().Extension(s.tenant.ID, h.Agent)
		if !ok {
			return evRefused{r: &refusal{RefuseUnknownExtension, fmt.Errorf("agent %q of help request %s", h.Agent, h.ID)}}, true
		}
		s.agent, s.helpID = ag, h.ID
		s.log = s.log.With().Str("agent", ag.Number).Str("help_request", h.ID).Logger()
		return evHelpAccepted{}, true
	case actAuditJoin:
		// Audit before acting: if it cannot be recorded, it is not done. The join's first
		// Redis write: bounded by JoinStoreTimeout, so a Redis just gone refuses it fast.
		if err := a.auditWithin(cctx, s.joinAudit(act.mode), a.cfg.JoinStoreTimeout); err != nil {
			return evRefused{r: &refusal{RefuseStoreUnavailable, err}}, true
		}
		return evStepDone{step: stepAuditJoin}, true
	case actCreateRecord:
		if err := a.store.CreateSession(cctx, s.newRecord(act.mode)); err != nil {
			return evRefused{r: &refusal{RefuseStoreUnavailable, fmt.Errorf("recording session: %w", err)}}, true
		}
		if s.helpID != "" && s.origin != "api" {
			if _, err := a.store.SetHelpSession(cctx, s.tenant.ID, s.helpID, s.id); err != nil {
				s.log.Warn().Err(err).Msg("recording the help request's session")
			}
		}
		return evStepDone{step: stepRecord}, true
	case actMarkActive:
		if _, err := a.updateRecord(cctx, s.id, func(r *store.Session) error {
			r.State, r.UpdatedAt, r.SnoopChannel = store.StateActive, a.cfg.Clock(), string(act.snoop)
			return nil
		}); err != nil {
			s.log.Warn().Err(err).Msg("recording active")
		}
		return nil, true
	case actMarkJoining:
		s.answeredAt = time.Now()
		if _, err := a.updateRecord(cctx, s.id, func(r *store.Session) error {
			r.State, r.UpdatedAt = store.StateJoining, a.cfg.Clock()
			return nil
		}); err != nil {
			s.log.Warn().Err(err).Msg("recording joining")
		}
		return nil, true
	case actCreateBridge:
		if _, err := a.ari.CreateBridge(cctx, ari.CreateBridgeRequest{
			BridgeID: bridgeID(s.id),
			Types:    []string{"mixing", "dtmf_events"},
			// Named so a restarted instance recognises its sessions' bridges (reconcile).
			Name: BridgeNamePrefix + s.id,
		}); err != nil {
			return evRefused{r: &refusal{RefuseAsterisk, fmt.Errorf("create bridge %s: %w", bridgeID(s.id), err)}}, true
		}
		a.met.joinPrepared(a.cfg.Clock().Sub(s.started))
		return evStepDone{step: stepBridge}, true
	case actJoinSupervisor:
		if act.answer {
			if err := a.ari.Answer(cctx, s.supChan); err != nil {
				return evFailed{err: fmt.Errorf("answer supervisor: %w", err)}, true
			}
		}
		if err := a.ari.AddChannel(cctx, bridgeID(s.id), ari.AddChannelRequest{
			Channels: []ari.ChannelID{s.supChan}, AbsorbDTMF: true, Role: "supervisor",
		}); err != nil {
			return evFailed{err: fmt.Errorf("add supervisor to bridge: %w", err)}, true
		}
		// Mirrored on Asterisk so a restarted instance can tell whose channel this is.
		if err := a.ari.SetVar(cctx, s.supChan, VarSession, s.id); err != nil {
			s.log.Debug().Err(err).Msg("set session variable")
		}
		return evStepDone{step: stepSupervisor}, true
	case actStarted:
		a.met.sessionStarted(s.origin)
		if at := s.answeredAt; !at.IsZero() {
			a.met.joined(s.origin, time.Since(at))
		}
		s.log.Info().Msg("supervision active")
		s.announce(ctx)
		a.notify(s.tenant.ID, NoteSupervisionStarted, map[string]string{
			"session_id": s.id, "supervisor": s.supervisor.Number, "agent": s.agent.Number,
			"call_id": string(s.m.agentChan), "mode": act.mode.String(), "origin": s.origin,
		})
		return nil, true
	}
	return nil, false
}

// doTalker claims and releases the call's talker slot.
func (s *session) doTalker(_, cctx context.Context, act action) (event, bool) {
	a := s.app
	switch act := act.(type) {
	case actClaimTalker:
		code := ""
		ok, err := false, error(nil)
		if a.storeDown() || a.journal.hasSession(s.id) {
			// Redis is down, or it is back and this session's journaled release of the slot
			// (below) is not replayed yet: claiming now would be undone by it.
			err = fmt.Errorf("claim talker: %w", store.ErrUnavailable)
		} else {
			ok, err = a.store.Claim(cctx, talkerKey(s.m.agentChan), s.id, a.cfg.ClaimTTL)
		}
		switch {
		case err != nil:
			code = RefuseStoreUnavailable
			// The claim may have been made with its answer lost: give it back (the release
			// checks the owner, so it never frees another session's slot), now or from the
			// journal once Redis answers.
			a.writeOrJournal(cctx, JournalEntry{Op: journalRelease, Session: s.id, Tenant: s.tenantID(),
				Key: talkerKey(s.m.agentChan), Owner: s.id})
		case !ok:
			code = RefuseTalkerBusy
		}
		if act.req.mode.Valid() {
			return evTalker{req: act.req, code: code}, true
		}
		switch code {
		case RefuseStoreUnavailable:
			return evRefused{r: &refusal{code, fmt.Errorf("claiming talker slot: %w", err)}}, true
		case RefuseTalkerBusy:
			return evRefused{r: &refusal{code, errors.New("another supervisor is already talking on this call")}}, true
		}
		return evStepDone{step: stepTalker}, true
	case actReleaseTalker:
		if s.m.state == store.StateEnded {
			// The teardown's release: made now or journaled, never lost.
			a.writeOrJournal(cctx, JournalEntry{Op: journalRelease, Session: s.id, Tenant: s.tenantID(),
				Key: talkerKey(s.m.agentChan), Owner: s.id})
			return evTalkerReleased{}, true
		}
		if err := a.store.Release(cctx, talkerKey(s.m.agentChan), s.id); err != nil {
			s.log.Warn().Err(err).Msg("releasing talker slot")
			return nil, true
		}
		return evTalkerReleased{}, true
	}
	return nil, false
}

// doMode carries out snoops, mode changes and API replies.
func (s *session) doMode(ctx, cctx context.Context, act action) (event, bool) {
	a := s.app
	switch act := act.(type) {
	case actSnoop:
		// Routed before the call: the snoop's StasisStart can arrive before the REST answer.
		a.register(act.id, s)
		if a.hooks.beforeSnoop != nil {
			a.hooks.beforeSnoop(s, act.id)
		}
		if _, err := a.ari.Snoop(cctx, s.m.agentChan, ari.SnoopRequest{
			SnoopID: act.id, Spy: ari.DirBoth, Whisper: ari.DirNone,
			App: a.cfg.AppName, AppArgs: argSnoop + "," + s.id,
		}); err != nil {
			a.unregister(act.id)
			s.log.Warn().Err(err).Str("snoop", string(act.id)).Msg("snoop")
			return evFailed{snoop: act.id, err: err}, true
		}
		s.log.Debug().Str("snoop", string(act.id)).Msg("snoop made")
		return nil, true
	case actBridgeSnoop:
		if err := a.ari.AddChannel(cctx, bridgeID(s.id), ari.AddChannelRequest{Channels: []ari.ChannelID{act.id}}); err != nil {
			s.log.Warn().Err(err).Str("snoop", string(act.id)).Msg("add snoop to bridge")
			return evFailed{snoop: act.id, err: err}, true
		}
		s.log.Debug().Str("snoop", string(act.id)).Msg("snoop bridged")
		return evSnoopBridged{id: act.id}, true
	case actAuditMode:
		extra := map[string]string{"from": s.m.want.String(), "to": act.req.mode.String(), "via": act.req.via}
		if err := a.audit(cctx, s.auditEntry("mode_change", "allowed", "", extra)); err != nil {
			s.log.Error().Err(err).Msg("mode change not audited: refused")
			return evModeAudited{req: act.req}, true
		}
		if quieter(act.req.mode, s.m.mode) {
			// Recorded before any ear is muted, so an instance that adopts the session
			// mid-switch does not open again what was being closed.
			if _, err := a.updateRecord(cctx, s.id, func(r *store.Session) error {
				r.Want = act.req.mode.String()
				return nil
			}); err != nil {
				s.log.Warn().Err(err).Msg("recording the quieter mode asked for")
			}
		}
		return evModeAudited{req: act.req, ok: true}, true
	case actModeRefused:
		if !s.m.switching {
			s.askedAt = time.Time{}
		}
		extra := map[string]string{"from": s.m.want.String(), "to": act.req.mode.String(), "via": act.req.via}
		if err := a.audit(cctx, s.auditEntry("mode_change", "refused", act.code, extra)); err != nil {
			s.log.Error().Err(err).Msg("refused mode change not audited")
		}
		a.met.refused(act.code)
		s.log.Info().Str("reason", act.code).Str("to", act.req.mode.String()).Msg("mode change refused")
		s.briefTone(cctx)
		return nil, true
	case actDropSnoop:
		if err := a.ari.Hangup(cctx, act.id, "normal"); err != nil && !errors.Is(err, ari.ErrNotFound) {
			s.log.Warn().Err(err).Str("snoop", string(act.id)).Bool("critical", act.critical).Msg("hangup snoop")
			if act.critical {
				return evDropFailed{id: act.id}, true
			}
		}
		return nil, true
	case actForget:
		a.unregister(act.id)
		return nil, true
	case actModeChanged:
		s.modeChanged(cctx, act)
		return nil, true
	case actReply:
		s.reply(act)
		return nil, true
	}
	return nil, false
}

// doEnd carries out timers and the steps of an ending.
func (s *session) doEnd(ctx, cctx context.Context, act action) (event, bool) {
	a := s.app
	switch act := act.(type) {
	case actTimer:
		s.setTimer(act.timer, act.d)
		return nil, true
	case actTone:
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
		defer cancel()
		if act.answer {
			if err := a.ari.Answer(tctx, s.supChan); err != nil {
				s.log.Debug().Err(err).Msg("answer for tone")
			}
		}
		if _, err := a.ari.Play(tctx, s.supChan, ari.PlayRequest{Media: []string{act.tone}}); err != nil {
			// Nothing to wait for: end the tone at once.
			s.log.Debug().Err(err).Msg("play tone")
			return evTimeout{timer: timerTone}, true
		}
		return nil, true
	case actHangupSupervisor:
		if err := a.ari.Hangup(cctx, s.supChan, "normal"); err != nil && !errors.Is(err, ari.ErrNotFound) {
			s.log.Warn().Err(err).Msg("hangup supervisor")
		}
		return nil, true
	case actDestroyBridge:
		id := act.id
		if id == "" {
			id = bridgeID(s.id)
		}
		if err := a.ari.DestroyBridge(cctx, id); err != nil && !errors.Is(err, ari.ErrNotFound) {
			s.log.Warn().Err(err).Str("bridge", string(id)).Msg("destroy bridge")
		}
		return nil, true
	case actAuditEnd:
		s.auditEnd(cctx, act)
		return nil, true
	case actEndRecord:
		a.endRecord(cctx, s.id, act.reason)
		return nil, true
	case actEnded:
		if act.joined {
			a.met.sessionEnded(act.reason)
		}
		s.log.Info().Str("reason", act.reason).Msg("supervision ended")
		return nil, true
	}
	return nil, false
}

// modeChanged records a mode now audible: the store (which keeps time per mode), metrics and the
// notification.
func (s *session) modeChanged(ctx context.Context, act actModeChanged) {
	a := s.app
	now := a.cfg.Clock()
	defer func() {
		s.askedAt = time.Time{}
		if s.m.want != s.m.mode {
			s.askedAt = time.Now() // a switch asked meanwhile starts now
		}
	}()
	if act.from.Valid() {
		var took time.Duration
		if !s.askedAt.IsZero() && !act.fallback {
			took = time.Since(s.askedAt)
		}
		a.met.modeSwitched(act.from, act.to, took)
		s.log.Info().Str("from", act.from.String()).Str("mode", act.to.String()).Dur("took", took).Msg("mode switched")
		a.notify(s.tenant.ID, NoteSupervisionMode, map[string]string{
			"session_id": s.id, "supervisor": s.supervisor.Number, "agent": s.agent.Number,
			"from": act.from.String(), "mode": act.to.String(),
		})
	}
	if a.storeDown() {
		// Not waited for while Redis is known down: the record catches up at the next change
		// or its end (journaled).
		s.log.Warn().Str("mode", act.to.String()).Msg("mode not recorded: the state store is down")
		return
	}
	if _, err := a.updateRecord(ctx, s.id, func(r *store.Session) error {
		r.SwitchMode(act.to.String(), now)
		r.State, r.UpdatedAt = store.StateActive, now
		r.SnoopChannel = string(act.snoop)
		r.Talk = s.m.talk.record()
		r.Want = ""
		return nil
	}); err != nil {
		s.log.Warn().Err(err).Msg("recording mode")
	}
}

// reply answers an API mode request.
func (s *session) reply(act actReply) {
	ch, ok := s.waiters[act.waiter]
	if !ok {
		return
	}
	delete(s.waiters, act.waiter)
	var err error
	switch act.code {
	case "":
	case replySuperseded:
		err = apiError(ErrConflict, replySuperseded, "another mode was asked for, or the switch failed")
	case replyNotActive:
		err = apiError(ErrConflict, replyNotActive, "the supervision is not active yet")
	case replyEnded:
		err = apiError(ErrConflict, replyEnded, "the supervision has ended")
	case replyInvalidMode:
		err = apiError(ErrInvalid, replyInvalidMode, "mode: want spy, whisper or barge")
	case RefuseTalkerBusy:
		err = apiError(ErrConflict, act.code, "another supervisor is already talking on this call")
	default:
		err = apiError(ErrUnavailable, act.code, "the mode change could not be recorded")
	}
	ch <- err
}

// auditEnd writes a session's last audit entry: a refused join, or its end.
func (s *session) auditEnd(ctx context.Context, act actAuditEnd) {
	a := s.app
	if r := act.refusal; r != nil {
		s.log.Info().Str("reason", r.code).Err(r.err).Msg("supervision refused")
		a.met.refused(r.code)
		extra := map[string]string{"dialed": s.dialed, "detail": r.err.Error()}
		if s.origin == "api" {
			extra = map[string]string{"via": "api", "detail": r.err.Error()}
		}
		e := s.auditEntry("join", "refused", r.code, extra)
		if e.Tenant == "" {
			e.Tenant = "_unknown"
		}
		a.auditOrJournal(ctx, e) // the refusal happened: written now or when Redis answers
		return
	}
	outcome := "ok"
	if act.reason == ReasonError {
		outcome = "failed"
	}
	var extra map[string]string
	if act.mode.Valid() {
		extra = map[string]string{"mode": act.mode.String()}
	}
	// The end happened: written now or, if Redis does not take it, when it answers again.
	a.auditOrJournal(ctx, s.auditEntry("end", outcome, act.reason, extra))
}

// briefTone plays half a second of congestion to the supervisor only (the playback is on their
// channel; the snoop's whisper carries the supervisor's voice, not what is played to them).
func (s *session) briefTone(ctx context.Context) {
	pb, err := s.app.ari.Play(ctx, s.supChan, ari.PlayRequest{Media: []string{toneRefused}})
	if err != nil {
		return
	}
	// Stopped from a goroutine of its own so the session goes on meanwhile; the app waits for it
	// (and cuts the wait short at shutdown: the supervisor is being hung up anyway).
	s.app.spawn(func() {
		select {
		case <-time.After(500 * time.Millisecond):
		case <-s.app.stopping():
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.app.cfg.CallTimeout)
		defer cancel()
		_ = s.app.ari.StopPlayback(cctx, ari.PlaybackID(pb.ID))
	})
}

// sessionView is what other goroutines may read of a session (calls list, API lookups); the
// session goroutine replaces it whole.
type sessionView struct {
	tenant, supervisor, agentChan, mode, state string
}

// publish makes the session's current state readable by other goroutines.
func (s *session) publish() {
	v := &sessionView{state: s.m.state, mode: s.m.want.String(), agentChan: string(s.m.agentChan)}
	if s.m.mode.Valid() {
		v.mode = s.m.mode.String()
	}
	if s.tenant != nil {
		v.tenant = s.tenant.ID
	}
	if s.supervisor != nil {
		v.supervisor = s.supervisor.Number
	}
	if old := s.view.Load(); old != nil && *old == *v {
		return
	}
	s.view.Store(v)
}

// endRecord ends a session's record and notifies its end, now or, if Redis does not take it,
// from the journal when it answers again (journal_replay.go).
func (a *App) endRecord(ctx context.Context, id, reason string) {
	a.writeOrJournal(ctx, JournalEntry{Op: journalEnd, Session: id, Reason: reason, At: a.cfg.Clock()})
}
