package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// session is one supervisor supervising one call. Its fields are owned by its goroutine (run);
// other goroutines only post to its mailbox.
type session struct {
	app *App
	id  string
	log zerolog.Logger

	tenant     *config.Tenant
	supervisor *config.Extension
	agent      *config.Extension
	rules      dialplan.Rules
	origin     string

	supChan   ari.ChannelID
	agentChan ari.ChannelID
	bridge    ari.BridgeID

	m           machine
	bridgeMade  bool
	supAnswered bool
	supGone     bool
	talker      bool                   // holds the call's talker slot (whisper/barge)
	made        map[ari.ChannelID]bool // snoops created and not yet seen gone
	dropped     map[ari.ChannelID]bool // snoops we hung up ourselves
	snoopTimer  *time.Timer
	joined      bool // the supervisor reached the bridge (the session counts as started)

	// view is what other goroutines read of the session (see publish).
	view atomic.Pointer[sessionView]
	// modeWaiters are API mode requests waiting for their mode to be audible.
	modeWaiters []*modeCmd

	mbox mailbox
	done chan struct{}
}

// mailbox is an unbounded FIFO of events for one session: the dispatcher never blocks on a slow
// session and never drops an event. A session sees few events (a handful per mode switch).
type mailbox struct {
	mu     sync.Mutex
	q      []any
	signal chan struct{}
}

func (b *mailbox) init() { b.signal = make(chan struct{}, 1) }

func (b *mailbox) put(v any) {
	b.mu.Lock()
	b.q = append(b.q, v)
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

func (b *mailbox) take() []any {
	b.mu.Lock()
	q := b.q
	b.q = nil
	b.mu.Unlock()
	return q
}

func (s *session) post(v any) { s.mbox.put(v) }

// refusal is a reason a supervisor is turned away; code is stable (audit, API, metrics).
type refusal struct {
	code string
	err  error
}

func (r *refusal) Error() string { return r.code + ": " + r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(code string, err error) error { return &refusal{code: code, err: err} }

// Refusal codes.
const (
	RefuseUnknownCaller    = "unknown_caller"
	RefuseTenantMismatch   = "tenant_mismatch"
	RefuseUnknownCode      = "unknown_code"
	RefuseInvalidTarget    = "invalid_target"
	RefuseTenantDisabled   = "tenant_disabled"
	RefuseUnknownExtension = "unknown_extension"
	RefuseNotSupervisor    = "not_supervisor"
	RefuseSelf             = "self"
	RefuseNotAllowed       = "not_allowed"
	RefuseNoActiveCall     = "no_active_call"
	RefuseTalkerBusy       = "talker_busy"
	RefuseStoreUnavailable = "store_unavailable"
	RefuseAsterisk         = "asterisk_error"
)

// refusalCode maps an authorization error to its refusal code.
func refusalCode(err error) string {
	switch {
	case errors.Is(err, config.ErrTenantDisabled):
		return RefuseTenantDisabled
	case errors.Is(err, config.ErrUnknownExtension):
		return RefuseUnknownExtension
	case errors.Is(err, config.ErrNotSupervisor):
		return RefuseNotSupervisor
	case errors.Is(err, config.ErrSelf):
		return RefuseSelf
	default:
		return RefuseNotAllowed
	}
}

// startFeature handles a supervisor's channel entering Stasis from a feature code: args are
// feature,<tenant>,<dialed>.
func (a *App) startFeature(ctx context.Context, e *ari.StasisStart) {
	s := &session{
		app:     a,
		id:      newSessionID(),
		origin:  "feature_code",
		supChan: ari.ChannelID(e.Channel.ID),
		made:    make(map[ari.ChannelID]bool),
		dropped: make(map[ari.ChannelID]bool),
		done:    make(chan struct{}),
	}
	s.mbox.init()
	s.log = a.log.With().Str("session", s.id).Str("channel", string(e.Channel.ID)).Logger()
	var tenantArg, dialed string
	if len(e.Args) >= 3 {
		tenantArg, dialed = e.Args[1], e.Args[2]
	}
	endpoint := endpointOf(e.Channel.Name)
	if !a.addSession(s, func(ctx context.Context) { s.runFeature(ctx, endpoint, tenantArg, dialed) }) {
		a.spawn(func() { a.bestEffortHangup(ctx, s.supChan) })
	}
}

// runFeature is the session goroutine of a feature-code session.
func (s *session) runFeature(ctx context.Context, endpoint, tenantArg, dialed string) {
	defer close(s.done)
	a := s.app
	start := a.cfg.Clock()
	mode, err := s.prepareFeature(ctx, endpoint, tenantArg, dialed)
	if err != nil {
		s.refuseAndHangup(ctx, err, dialed)
		return
	}
	a.met.joinPrepared(a.cfg.Clock().Sub(start))
	s.loop(ctx, mode)
}

// prepareFeature identifies and authorizes the supervisor, finds the agent's call, writes the
// audit entry and the session record, and makes the bridge. Everything it returns an error for
// is a refusal; nothing is left behind on Asterisk (the bridge is the last step).
func (s *session) prepareFeature(ctx context.Context, endpoint, tenantArg, dialed string) (dialplan.Mode, error) {
	a := s.app
	tenant, sup, ok := a.dir.TenantByEndpoint(endpoint)
	if !ok {
		return 0, refuse(RefuseUnknownCaller, fmt.Errorf("endpoint %q is in no tenant", endpoint))
	}
	s.tenant, s.supervisor = tenant, sup
	s.log = s.log.With().Str("tenant", tenant.ID).Str("supervisor", sup.Number).Logger()
	if tenantArg != tenant.ID {
		return 0, refuse(RefuseTenantMismatch, fmt.Errorf("dialplan says tenant %q, caller %s belongs to %q", tenantArg, endpoint, tenant.ID))
	}
	s.rules = tenant.DialingRules
	mode, target, err := s.rules.Parse(dialed)
	if err != nil {
		if errors.Is(err, dialplan.ErrInvalidTarget) {
			return 0, refuse(RefuseInvalidTarget, err)
		}
		return 0, refuse(RefuseUnknownCode, err)
	}
	if err := a.dir.CanSupervise(tenant.ID, sup.Number, target); err != nil {
		return 0, refuse(refusalCode(err), err)
	}
	agent, _ := a.dir.Extension(tenant.ID, target)
	s.agent = agent
	s.log = s.log.With().Str("agent", agent.Number).Str("join_mode", mode.String()).Logger()
	err = s.prepareJoin(ctx, mode)
	if err == nil {
		s.m.want = mode
		s.publish(store.StateJoining)
	}
	return mode, err
}

// prepareJoin finds the agent's active call, audits, records the session, takes the talker slot
// when mode talks, and creates the bridge. Shared by feature-code and API sessions.
func (s *session) prepareJoin(ctx context.Context, mode dialplan.Mode) error {
	a := s.app
	cctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	agentChan, err := a.activeCall(cctx, s.agent)
	if err != nil {
		return err
	}
	s.agentChan = agentChan
	s.log = s.log.With().Str("agent_channel", string(agentChan)).Logger()
	// Audit before acting: if it cannot be recorded, it is not done.
	if err := a.audit(ctx, s.auditEntry("join", "allowed", "", map[string]string{"mode": mode.String()})); err != nil {
		return refuse(RefuseStoreUnavailable, err)
	}
	now := a.cfg.Clock()
	rec := store.Session{
		ID: s.id, Tenant: s.tenant.ID, Supervisor: s.supervisor.Number, Agent: s.agent.Number,
		CallID: string(agentChan), Origin: s.origin, Mode: mode.String(), State: store.StateJoining,
		SupervisorChannel: string(s.supChan), AgentChannel: string(agentChan),
		BridgeID: string(bridgeID(s.id)), Instance: a.cfg.Instance,
		StartedAt: now, UpdatedAt: now,
	}
	if err := a.store.CreateSession(cctx, rec); err != nil {
		return refuse(RefuseStoreUnavailable, fmt.Errorf("recording session: %w", err))
	}
	return s.makeBridge(cctx, mode)
}

// makeBridge takes the talker slot when mode talks and creates the session's bridge, named so a
// restarted instance recognises it. Shared by feature-code and API sessions.
func (s *session) makeBridge(ctx context.Context, mode dialplan.Mode) error {
	if talks(mode) {
		if err := s.takeTalker(ctx); err != nil {
			return err
		}
	}
	s.bridge = bridgeID(s.id)
	if _, err := s.app.ari.CreateBridge(ctx, ari.CreateBridgeRequest{
		BridgeID: s.bridge,
		Types:    []string{"mixing", "dtmf_events"},
		Name:     BridgeNamePrefix + s.id,
	}); err != nil {
		return refuse(RefuseAsterisk, fmt.Errorf("create bridge %s: %w", s.bridge, err))
	}
	s.bridgeMade = true
	return nil
}

func bridgeID(session string) ari.BridgeID { return ari.BridgeID(bridgePrefix + session) }

// talks reports whether someone on the call hears the supervisor in mode m.
func talks(m dialplan.Mode) bool {
	switch m {
	case dialplan.Whisper, dialplan.Barge:
		return true
	case dialplan.Spy, dialplan.ModeUnknown:
		return false
	default:
		return false
	}
}

// whisperDir is the snoop's whisper direction for mode m (ASTERISK-FACTS "who hears whom"):
// out is what the agent hears, both reaches the customer too.
func whisperDir(m dialplan.Mode) ari.Direction {
	switch m {
	case dialplan.Whisper:
		return ari.DirOut
	case dialplan.Barge:
		return ari.DirBoth
	case dialplan.Spy, dialplan.ModeUnknown:
		return ari.DirNone
	default:
		return ari.DirNone
	}
}

// Only one supervisor talks (whisper or barge) on a call at a time: two coaches talking over
// each other into an agent's ear help nobody. Any number may listen. The slot is a claim in the
// store, so it holds across app instances.
func talkerKey(agentChan ari.ChannelID) string { return "talker:" + string(agentChan) }

func (s *session) takeTalker(ctx context.Context) error {
	if s.talker {
		return nil
	}
	ok, err := s.app.store.Claim(ctx, talkerKey(s.agentChan), s.id, s.app.cfg.ClaimTTL)
	if err != nil {
		return refuse(RefuseStoreUnavailable, fmt.Errorf("claiming talker slot: %w", err))
	}
	if !ok {
		return refuse(RefuseTalkerBusy, errors.New("another supervisor is already talking on this call"))
	}
	s.talker = true
	return nil
}

func (s *session) releaseTalker(ctx context.Context) {
	if !s.talker {
		return
	}
	if err := s.app.store.Release(ctx, talkerKey(s.agentChan), s.id); err != nil {
		s.log.Warn().Err(err).Msg("releasing talker slot")
		return
	}
	s.talker = false
}

func (s *session) auditEntry(action, outcome, reason string, extra map[string]string) store.AuditEntry {
	e := store.AuditEntry{Action: action, Outcome: outcome, Reason: reason, Session: s.id, Extra: extra}
	if s.tenant != nil {
		e.Tenant = s.tenant.ID
	}
	if s.supervisor != nil {
		e.Actor = s.supervisor.Number
	} else {
		e.Actor = string(s.supChan)
	}
	if s.agent != nil {
		e.Target = s.agent.Number
	}
	return e
}

// refuseAndHangup tells a refused supervisor so by ear (congestion), audits why, removes what
// was made, and hangs up.
func (s *session) refuseAndHangup(ctx context.Context, err error, dialed string) {
	a := s.app
	code := RefuseAsterisk
	var r *refusal
	if errors.As(err, &r) {
		code = r.code
	}
	s.log.Info().Str("reason", code).Err(err).Msg("supervision refused")
	a.met.refused(code)
	e := s.auditEntry("join", "refused", code, map[string]string{"dialed": dialed, "detail": err.Error()})
	if e.Tenant == "" {
		e.Tenant = "_unknown"
	}
	if aerr := a.audit(ctx, e); aerr != nil {
		s.log.Error().Err(aerr).Msg("refusal not audited")
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
	defer cancel()
	s.cleanup(cctx)
	if s.bridgeMade || s.agentChan != "" {
		a.endRecord(cctx, s.id, "refused")
	}
	s.toneThenHangup(ctx, toneRefused, a.cfg.RefusalTone)
}

// toneThenHangup answers the supervisor if needed, plays tone for d (or until they hang up), and
// hangs up.
func (s *session) toneThenHangup(ctx context.Context, tone string, d time.Duration) {
	a := s.app
	if s.supGone {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout+d)
	defer cancel()
	if !s.supAnswered {
		if err := a.ari.Answer(cctx, s.supChan); err != nil {
			s.log.Debug().Err(err).Msg("answer for tone")
		}
		s.supAnswered = true
	}
	if _, err := a.ari.Play(cctx, s.supChan, ari.PlayRequest{Media: []string{tone}}); err != nil {
		s.log.Debug().Err(err).Msg("play tone")
	} else {
		s.waitSupervisorGone(d)
	}
	if s.supGone {
		return
	}
	if err := a.ari.Hangup(cctx, s.supChan, "normal"); err != nil && !errors.Is(err, ari.ErrNotFound) {
		s.log.Warn().Err(err).Msg("hangup supervisor")
	}
}

// waitSupervisorGone waits up to d, returning early if the supervisor leaves (events other than
// the supervisor leaving are dropped: the session is over).
func (s *session) waitSupervisorGone(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-s.mbox.signal:
			for _, v := range s.mbox.take() {
				if s.isSupervisorGone(v) {
					s.supGone = true
					return
				}
			}
		}
	}
}

func (s *session) isSupervisorGone(v any) bool {
	switch e := v.(type) {
	case *ari.StasisEnd:
		return ari.ChannelID(e.Channel.ID) == s.supChan
	case *ari.ChannelDestroyed:
		return ari.ChannelID(e.Channel.ID) == s.supChan
	case *ari.ChannelHangupRequest:
		return ari.ChannelID(e.Channel.ID) == s.supChan
	}
	return false
}

// cleanup removes every snoop still there and the bridge. It runs with a context that shutdown
// cannot cancel.
func (s *session) cleanup(ctx context.Context) {
	a := s.app
	s.dropSnoops(ctx)
	if s.bridgeMade {
		if err := a.ari.DestroyBridge(ctx, s.bridge); err != nil && !errors.Is(err, ari.ErrNotFound) {
			s.log.Warn().Err(err).Str("bridge", string(s.bridge)).Msg("destroy bridge")
		}
		s.bridgeMade = false
	}
	s.releaseTalker(ctx)
}

// dropSnoops hangs up every snoop the session made that is still there.
func (s *session) dropSnoops(ctx context.Context) {
	for id := range s.made {
		s.dropped[id] = true
		if err := s.app.ari.Hangup(ctx, id, "normal"); err != nil && !errors.Is(err, ari.ErrNotFound) {
			s.log.Warn().Err(err).Str("snoop", string(id)).Msg("hangup snoop")
		}
		delete(s.made, id)
	}
}

// loop drives the machine from the mailbox until the session ends.
func (s *session) loop(ctx context.Context, mode dialplan.Mode) {
	s.m = machine{snoopPrefix: snoopPrefix + s.id[len(sessionPrefix):] + "-"}
	s.apply(ctx, evStart{mode: mode})
	for s.m.phase != phaseEnding {
		var timeout <-chan time.Time
		if s.snoopTimer != nil {
			timeout = s.snoopTimer.C
		}
		select {
		case <-s.mbox.signal:
			for _, v := range s.mbox.take() {
				if s.m.phase == phaseEnding {
					break
				}
				if cmd, ok := v.(*modeCmd); ok {
					s.onModeCmd(ctx, cmd)
				} else if e := s.translate(v); e != nil {
					s.apply(ctx, e)
				}
				s.answerWaiters()
			}
		case <-timeout:
			s.snoopTimer = nil
			s.apply(ctx, evFailed{snoop: s.m.pending, err: errors.New("snoop did not start in time")})
		case <-ctx.Done():
			s.apply(ctx, evLeave{reason: ReasonShutdown})
		}
	}
}

// onModeCmd handles an API mode request: refused at once, or queued until audible.
func (s *session) onModeCmd(ctx context.Context, cmd *modeCmd) {
	if s.m.phase != phaseActive {
		cmd.reply <- apiError(ErrConflict, "not_active", "the supervision is not active yet")
		return
	}
	if cmd.mode != s.m.want {
		e, err := s.wantMode(cmd.mode, "api")
		if err != nil {
			cmd.reply <- asAPIError(err)
			return
		}
		if e != nil {
			s.apply(ctx, e)
		}
	}
	s.modeWaiters = append(s.modeWaiters, cmd)
}

// answerWaiters replies to API mode requests whose mode is now audible, or that a later request
// or a failed switch overtook.
func (s *session) answerWaiters() {
	keep := s.modeWaiters[:0]
	for _, w := range s.modeWaiters {
		switch {
		case s.m.pending == "" && s.m.mode == w.mode:
			w.reply <- nil
		case s.m.want != w.mode:
			w.reply <- apiError(ErrConflict, "superseded", "another mode was asked for, or the switch failed")
		default:
			keep = append(keep, w)
		}
	}
	s.modeWaiters = keep
}

// translate turns an ARI event or a command into a machine event (nil: nothing to do).
func (s *session) translate(v any) event {
	switch e := v.(type) {
	case event:
		return e
	case *ari.StasisStart:
		id := ari.ChannelID(e.Channel.ID)
		if id == s.m.pending {
			return evSnoopUp{id: id}
		}
	case *ari.StasisEnd, *ari.ChannelDestroyed, *ari.ChannelHangupRequest:
		id := channelOf(v.(ari.Event))
		if id == s.supChan {
			if s.supGone {
				return nil
			}
			s.supGone = true
			return evSupervisorGone{}
		}
		if s.dropped[id] {
			// A snoop's last event is its StasisEnd: Asterisk sends no ChannelDestroyed for it.
			if _, ok := v.(*ari.ChannelHangupRequest); !ok {
				s.app.unregister(id)
				delete(s.dropped, id)
			}
			return nil
		}
		if _, ok := v.(*ari.ChannelHangupRequest); ok {
			return nil // wait for the snoop's StasisEnd
		}
		delete(s.made, id)
		return evSnoopGone{id: id}
	case *ari.ChannelDtmfReceived:
		if ari.ChannelID(e.Channel.ID) != s.supChan {
			return nil
		}
		s.log.Debug().Str("digit", e.Digit).Msg("dtmf")
		m, ok := s.rules.ModeForDigit(e.Digit)
		if !ok {
			return nil // other digits are ignored (absorbed: they never reach the call)
		}
		ev, _ := s.wantMode(m, "dtmf")
		return ev
	}
	return nil
}

// wantMode audits a mode change and takes the talker slot before it is asked of the machine;
// a refused change is heard as a short congestion burst, leaves the mode as it is, and is
// returned as the error.
func (s *session) wantMode(m dialplan.Mode, via string) (event, error) {
	if s.m.phase != phaseActive || m == s.m.want {
		return nil, nil
	}
	a := s.app
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CallTimeout)
	defer cancel()
	extra := map[string]string{"from": s.m.want.String(), "to": m.String(), "via": via}
	if talks(m) {
		if err := s.takeTalker(ctx); err != nil {
			var r *refusal
			code := RefuseStoreUnavailable
			if errors.As(err, &r) {
				code = r.code
			}
			if aerr := a.audit(ctx, s.auditEntry("mode_change", "refused", code, extra)); aerr != nil {
				s.log.Error().Err(aerr).Msg("refused mode change not audited")
			}
			a.met.refused(code)
			s.log.Info().Str("reason", code).Str("to", m.String()).Msg("mode change refused")
			s.briefTone(ctx)
			return nil, err
		}
	}
	if err := a.audit(ctx, s.auditEntry("mode_change", "allowed", "", extra)); err != nil {
		s.log.Error().Err(err).Msg("mode change not audited: refused")
		a.met.refused(RefuseStoreUnavailable)
		s.briefTone(ctx)
		return nil, refuse(RefuseStoreUnavailable, err)
	}
	return evModeWanted{mode: m}, nil
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

// apply runs next and carries out its actions; action results are fed back in.
func (s *session) apply(ctx context.Context, e event) {
	queue := []event{e}
	for len(queue) > 0 {
		var acts []action
		s.m, acts = next(s.m, queue[0])
		queue = queue[1:]
		for _, act := range acts {
			if fb := s.do(ctx, act); fb != nil {
				queue = append(queue, fb)
			}
		}
	}
}

// do carries out one action and returns the event it results in, if any.
func (s *session) do(ctx context.Context, act action) event {
	a := s.app
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
	defer cancel()
	switch act := act.(type) {
	case actSnoop:
		a.register(act.id, s)
		if a.hooks.beforeSnoop != nil {
			a.hooks.beforeSnoop(s, act.id)
		}
		_, err := a.ari.Snoop(cctx, s.agentChan, ari.SnoopRequest{
			SnoopID: act.id, Spy: ari.DirBoth, Whisper: whisperDir(act.mode),
			App: a.cfg.AppName, AppArgs: argSnoop + "," + s.id,
		})
		if err != nil {
			a.unregister(act.id)
			s.log.Warn().Err(err).Str("snoop", string(act.id)).Msg("snoop")
			return evFailed{snoop: act.id, err: err}
		}
		s.log.Debug().Str("snoop", string(act.id)).Msg("snoop made")
		s.made[act.id] = true
		s.snoopTimer = time.NewTimer(a.cfg.SnoopTimeout)
		return nil

	case actBridgeSnoop:
		s.stopSnoopTimer()
		if err := a.ari.AddChannel(cctx, s.bridge, ari.AddChannelRequest{Channels: []ari.ChannelID{act.id}}); err != nil {
			s.log.Warn().Err(err).Str("snoop", string(act.id)).Msg("add snoop to bridge")
			return evFailed{snoop: act.id, err: err}
		}
		s.log.Debug().Str("snoop", string(act.id)).Msg("snoop bridged")
		return evSnoopBridged{id: act.id}

	case actJoinSupervisor:
		if !s.supAnswered {
			if err := a.ari.Answer(cctx, s.supChan); err != nil {
				return evFailed{err: fmt.Errorf("answer supervisor: %w", err)}
			}
			s.supAnswered = true
		}
		if err := a.ari.AddChannel(cctx, s.bridge, ari.AddChannelRequest{
			Channels: []ari.ChannelID{s.supChan}, AbsorbDTMF: true, Role: "supervisor",
		}); err != nil {
			return evFailed{err: fmt.Errorf("add supervisor to bridge: %w", err)}
		}
		s.joined = true
		// Mirrored on Asterisk so a restarted instance can tell whose channel this is.
		if err := a.ari.SetVar(cctx, s.supChan, VarSession, s.id); err != nil {
			s.log.Debug().Err(err).Msg("set session variable")
		}
		a.met.sessionStarted(s.origin)
		s.log.Info().Msg("supervision active")
		s.announce(ctx)
		a.notify(s.tenant.ID, NoteSupervisionStarted, map[string]string{
			"session_id": s.id, "supervisor": s.supervisor.Number, "agent": s.agent.Number,
			"call_id": string(s.agentChan), "mode": s.m.mode.String(), "origin": s.origin,
		})
		return nil

	case actDropSnoop:
		s.dropped[act.id] = true
		delete(s.made, act.id)
		if err := a.ari.Hangup(cctx, act.id, "normal"); err != nil && !errors.Is(err, ari.ErrNotFound) {
			s.log.Warn().Err(err).Str("snoop", string(act.id)).Msg("hangup old snoop")
		}
		return nil

	case actModeChanged:
		s.modeChanged(cctx, act.from, act.to)
		return nil

	case actTeardown:
		s.teardown(ctx, act)
		return nil
	}
	return nil
}

func (s *session) stopSnoopTimer() {
	if s.snoopTimer != nil {
		s.snoopTimer.Stop()
		s.snoopTimer = nil
	}
}

// modeChanged records a mode now audible: the store (which keeps time per mode), the talker
// slot, metrics.
func (s *session) modeChanged(ctx context.Context, from, to dialplan.Mode) {
	a := s.app
	now := a.cfg.Clock()
	s.publish(store.StateActive)
	if from.Valid() {
		a.met.modeSwitched(from, to)
		s.log.Info().Str("from", from.String()).Str("mode", to.String()).Msg("mode switched")
		a.notify(s.tenant.ID, NoteSupervisionMode, map[string]string{
			"session_id": s.id, "supervisor": s.supervisor.Number, "agent": s.agent.Number,
			"from": from.String(), "mode": to.String(),
		})
	}
	_, err := a.store.UpdateSession(ctx, s.id, func(r *store.Session) error {
		r.SwitchMode(to.String(), now)
		r.State, r.UpdatedAt = store.StateActive, now
		if s.m.snoop != "" {
			r.SnoopChannel = string(s.m.snoop)
		}
		return nil
	})
	if err != nil {
		s.log.Warn().Err(err).Msg("recording mode")
	}
	if !talks(to) {
		s.releaseTalker(ctx)
	}
}

// teardown ends the session. It runs under its own timeout, never the caller's context, so a
// shutdown or an error cannot skip it.
func (s *session) teardown(ctx context.Context, act actTeardown) {
	a := s.app
	s.stopSnoopTimer()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
	defer cancel()
	// Snoops go first, so a supervisor hearing the end tone is no longer connected to the call.
	s.dropSnoops(cctx)
	if act.hangupSupervisor && !s.supGone {
		if act.tone != "" {
			s.toneThenHangup(ctx, act.tone, a.cfg.EndTone)
		} else if err := a.ari.Hangup(cctx, s.supChan, "normal"); err != nil && !errors.Is(err, ari.ErrNotFound) {
			s.log.Warn().Err(err).Msg("hangup supervisor")
		}
	}
	s.cleanup(cctx)
	s.auditEnd(cctx, act.reason)
	s.publish(store.StateEnded)
	a.endRecord(cctx, s.id, act.reason)
	if s.joined {
		a.met.sessionEnded(act.reason)
	}
	s.log.Info().Str("reason", act.reason).Msg("supervision ended")
}
