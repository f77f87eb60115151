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
// other goroutines only post to its mailbox and read its published view.
type session struct {
	app *App
	id  string
	log zerolog.Logger

	origin  string // "feature_code" or "api"
	keyName string // the API key that started it ("" for feature codes)
	dialed  string // what the supervisor dialed (feature codes; audited with refusals)
	helpID  string // the help request this session answers ("" for none)
	started time.Time
	// answeredAt is when the supervisor answered (join latency is measured from it); askedAt
	// when the oldest mode request not yet heard came (switch latency), zero when none.
	answeredAt, askedAt time.Time
	tenant              *config.Tenant
	supervisor          *config.Extension
	agent               *config.Extension
	rules               dialplan.Rules
	supChan             ari.ChannelID

	m   machine
	cfg machineConfig

	timers     [timerCount]*time.Timer // by timer kind; nil when not running
	waiters    map[int]chan error
	nextWaiter int
	view       atomic.Pointer[sessionView]
	mbox       mailbox
	done       chan struct{}
}

// message is what a session's mailbox carries: an ARI event about one of its channels, an event
// the app posts (evLeave, evOriginateFailed), or an API mode request. Exactly one field is set.
type message struct {
	ari ari.Event
	ev  event
	cmd *modeCmd
}

// modeCmd asks a session for a mode; reply gets nil once the mode is audible, or the refusal.
type modeCmd struct {
	mode  dialplan.Mode
	reply chan error
}

// mailbox is an unbounded FIFO of messages for one session: the dispatcher never blocks on a
// slow session and never drops an event. A session sees few messages (a handful per switch).
type mailbox struct {
	mu     sync.Mutex
	q      []message
	signal chan struct{}
}

func (b *mailbox) put(v message) {
	b.mu.Lock()
	b.q = append(b.q, v)
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

func (b *mailbox) take() []message {
	b.mu.Lock()
	q := b.q
	b.q = nil
	b.mu.Unlock()
	return q
}

func (s *session) postARI(e ari.Event)  { s.mbox.put(message{ari: e}) }
func (s *session) postEvent(e event)    { s.mbox.put(message{ev: e}) }
func (s *session) postCmd(cmd *modeCmd) { s.mbox.put(message{cmd: cmd}) }

// newSession makes a session; the caller fills in who and what before it runs.
func (a *App) newSession(origin string, supChan ari.ChannelID, api bool) *session {
	id := newSessionID()
	if supChan == "" {
		supChan = ari.ChannelID(supLegPrefix + id[len(sessionPrefix):])
	}
	s := &session{
		app: a, id: id, origin: origin, supChan: supChan, started: a.cfg.Clock(),
		m:       newMachine(id, supChan, api),
		cfg:     a.machineConfig(),
		waiters: map[int]chan error{},
		done:    make(chan struct{}),
	}
	if !api {
		s.answeredAt = time.Now() // a feature code's channel is in Stasis: it called in
	}
	s.mbox.signal = make(chan struct{}, 1)
	s.log = a.log.With().Str("session", id).Str("channel", string(supChan)).Logger()
	return s
}

func (a *App) machineConfig() machineConfig {
	return machineConfig{
		RefusalTone: a.cfg.RefusalTone, EndTone: a.cfg.EndTone, SnoopTimeout: a.cfg.SnoopTimeout,
		// Asterisk ends an unanswered originate after RingTimeout itself; this is the backstop.
		RingTimeout: a.cfg.RingTimeout + 5*time.Second,
		FailGrace:   a.cfg.FailGrace,
	}
}

// refusal is a reason a supervisor is turned away; code is stable (audit, API, metrics).
type refusal struct {
	code string
	err  error
}

func (r *refusal) Error() string { return r.code + ": " + r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(code string, err error) error { return &refusal{code: code, err: err} }

// asRefusal returns err's refusal (an Asterisk error when it is none).
func asRefusal(err error) *refusal {
	var r *refusal
	if errors.As(err, &r) {
		return r
	}
	return &refusal{code: RefuseAsterisk, err: err}
}

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
	s := a.newSession("feature_code", ari.ChannelID(e.Channel.ID), false)
	var tenantArg string
	if len(e.Args) >= 3 {
		tenantArg, s.dialed = e.Args[1], e.Args[2]
	}
	endpoint := endpointOf(e.Channel.Name)
	if !a.addSession(s, func(ctx context.Context) { s.run(ctx, s.authorizeFeature(endpoint, tenantArg)) }) {
		a.spawn(func() { a.bestEffortHangup(ctx, s.supChan) })
	}
}

// authorizeFeature identifies and authorizes a feature-code supervisor (in-memory lookups only)
// and returns the session's first event: the start of the join, or the refusal.
func (s *session) authorizeFeature(endpoint, tenantArg string) event {
	a := s.app
	tenant, sup, ok := a.dir.Current().TenantByEndpoint(endpoint)
	if !ok {
		return evRefused{r: &refusal{RefuseUnknownCaller, fmt.Errorf("endpoint %q is in no tenant", endpoint)}}
	}
	s.tenant, s.supervisor = tenant, sup
	s.log = s.log.With().Str("tenant", tenant.ID).Str("supervisor", sup.Number).Logger()
	if tenantArg != tenant.ID {
		return evRefused{r: &refusal{RefuseTenantMismatch, fmt.Errorf("dialplan says tenant %q, caller %s belongs to %q", tenantArg, endpoint, tenant.ID)}}
	}
	s.rules = tenant.DialingRules
	if s.rules.IsHelpAccept(s.dialed) {
		if !sup.Role.MaySupervise() {
			return evRefused{r: &refusal{RefuseNotSupervisor, fmt.Errorf("%s has role %s", sup.Number, sup.Role)}}
		}
		// Which request (and so which agent) is decided by the store: the join's first step.
		return evStartHelp{}
	}
	mode, target, err := s.rules.Parse(s.dialed)
	if err != nil {
		if errors.Is(err, dialplan.ErrInvalidTarget) {
			return evRefused{r: &refusal{RefuseInvalidTarget, err}}
		}
		return evRefused{r: &refusal{RefuseUnknownCode, err}}
	}
	if err := a.dir.Current().CanSupervise(tenant.ID, sup.Number, target); err != nil {
		return evRefused{r: &refusal{refusalCode(err), err}}
	}
	s.agent, _ = a.dir.Current().Extension(tenant.ID, target)
	s.log = s.log.With().Str("agent", s.agent.Number).Str("join_mode", mode.String()).Logger()
	return evStart{mode: mode}
}

func bridgeID(session string) ari.BridgeID { return ari.BridgeID(bridgePrefix + session) }

// Only one supervisor talks (whisper or barge) on a call at a time: two coaches talking over
// each other into an agent's ear help nobody. Any number may listen. The slot is a claim in the
// store, so it holds across app instances.
func talkerKey(agentChan ari.ChannelID) string { return "talker:" + string(agentChan) }

// newRecord is the session's record as first written (feature-code and API joins alike).
func (s *session) newRecord(mode dialplan.Mode) store.Session {
	now := s.app.cfg.Clock()
	return store.Session{
		ID: s.id, Tenant: s.tenant.ID, Supervisor: s.supervisor.Number, Agent: s.agent.Number,
		CallID: string(s.m.agentChan), Origin: s.origin, Mode: mode.String(), State: s.m.state,
		SupervisorChannel: string(s.supChan), AgentChannel: string(s.m.agentChan),
		BridgeID: string(bridgeID(s.id)), Instance: s.app.cfg.Instance, Epoch: s.app.owner().Epoch,
		Node: s.app.node(), StartedAt: now, UpdatedAt: now,
		HelpRequest: s.helpID,
	}
}

// joinAudit is the audit entry of an allowed join.
func (s *session) joinAudit(mode dialplan.Mode) store.AuditEntry {
	extra := map[string]string{"mode": mode.String()}
	if s.origin == "api" {
		extra["via"], extra["key"] = "api", s.keyName
	}
	return s.auditEntry("join", "allowed", "", extra)
}

func (s *session) auditEntry(action, outcome, reason string, extra map[string]string) store.AuditEntry {
	e := store.AuditEntry{Action: action, Outcome: outcome, Reason: reason, Session: s.id, Extra: extra,
		Call: string(s.m.agentChan), Trigger: s.origin, KeyID: s.keyName}
	if s.helpID != "" {
		if e.Extra == nil {
			e.Extra = map[string]string{}
		}
		e.Extra["help_request"] = s.helpID
	}
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

// run is the session's goroutine: one loop, from the first event to the end, that turns every
// message, timer and result into an event for the machine and carries out its actions.
func (s *session) run(ctx context.Context, first event) {
	defer close(s.done)
	defer s.stopTimers()
	s.apply(ctx, first)
	stop := ctx.Done()
	var rest []message // messages of the last batch that came after the end
	for s.m.state != store.StateEnded {
		select {
		case <-s.mbox.signal:
			batch := s.mbox.take()
			for i, msg := range batch {
				if s.m.state == store.StateEnded {
					rest = batch[i:]
					break
				}
				if e := s.classify(msg); e != nil {
					s.apply(ctx, e)
				}
			}
		case <-s.timerC(timerRing):
			s.timers[timerRing] = nil
			s.apply(ctx, evTimeout{timer: timerRing})
		case <-s.timerC(timerSnoop):
			s.timers[timerSnoop] = nil
			s.apply(ctx, evTimeout{timer: timerSnoop})
		case <-s.timerC(timerTone):
			s.timers[timerTone] = nil
			s.apply(ctx, evTimeout{timer: timerTone})
		case <-s.timerC(timerFailGrace):
			s.timers[timerFailGrace] = nil
			s.apply(ctx, evTimeout{timer: timerFailGrace})
		case <-stop:
			stop = nil
			s.apply(ctx, evLeave{reason: ReasonShutdown})
		}
	}
	// Requests that arrived after the end are answered; nothing else is left to do.
	for _, msg := range append(rest, s.mbox.take()...) {
		if msg.cmd != nil {
			msg.cmd.reply <- apiError(ErrConflict, replyEnded, "the supervision has ended")
		}
	}
}

// classify turns a message into a machine event (nil: nothing for the machine). It reads only
// what the session knew before its loop started (its channel and dialing rules); an API request
// is given a waiter number, kept with its reply channel until the machine answers it.
func (s *session) classify(msg message) event {
	switch {
	case msg.ev != nil:
		return msg.ev
	case msg.cmd != nil:
		s.nextWaiter++
		s.waiters[s.nextWaiter] = msg.cmd.reply
		if msg.cmd.mode != s.m.want && msg.cmd.mode.Valid() {
			s.asked()
		}
		return evModeWanted{mode: msg.cmd.mode, via: "api", waiter: s.nextWaiter}
	}
	switch e := msg.ari.(type) {
	case *ari.StasisStart:
		return evChannelUp{id: ari.ChannelID(e.Channel.ID)}
	case *ari.StasisEnd:
		return evChannelEnd{id: ari.ChannelID(e.Channel.ID)}
	case *ari.ChannelDestroyed:
		return evChannelEnd{id: ari.ChannelID(e.Channel.ID), destroyed: true, cause: e.Cause}
	case *ari.ChannelHangupRequest:
		return evHangupRequest{id: ari.ChannelID(e.Channel.ID)}
	case *ari.ChannelDtmfReceived:
		if ari.ChannelID(e.Channel.ID) != s.supChan {
			return nil
		}
		s.log.Debug().Str("digit", e.Digit).Msg("dtmf")
		if m, ok := s.rules.ModeForDigit(e.Digit); ok {
			if m != s.m.want && m.Valid() {
				s.asked()
			}
			return evModeWanted{mode: m, via: "dtmf"}
		}
		// Other digits are ignored (absorbed by the bridge: they never reach the call).
	}
	return nil
}

// asked notes when a mode request came, unless an older one is still to be heard.
func (s *session) asked() {
	if s.askedAt.IsZero() {
		s.askedAt = time.Now()
	}
}

// apply runs next and carries out its actions; action results are fed back in, in order.
func (s *session) apply(ctx context.Context, e event) {
	queue := []event{e}
	for first := true; len(queue) > 0; first = false {
		var acts []action
		s.m, acts = next(s.cfg, s.m, queue[0])
		queue = queue[1:]
		if !s.allowed(ctx, acts, first) { // lease.go: fencing
			s.abandon()
			break
		}
		for _, act := range acts {
			if fb := s.do(ctx, act); fb != nil {
				queue = append(queue, fb)
			}
		}
	}
	s.publish()
}

func (s *session) timerC(t timer) <-chan time.Time {
	if s.timers[t] == nil {
		return nil
	}
	return s.timers[t].C
}

func (s *session) setTimer(t timer, d time.Duration) {
	if s.timers[t] != nil {
		s.timers[t].Stop()
		s.timers[t] = nil
	}
	if d > 0 {
		s.timers[t] = time.NewTimer(d)
	}
}

func (s *session) stopTimers() {
	for t := range s.timers {
		s.setTimer(timer(t), 0)
	}
}
