package app

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// A supervision session's whole life as a pure function: next takes the session's state and one
// event and returns the new state and the actions to carry out. The session goroutine (loop in
// session.go) turns ARI events, API commands, timers and the results of its own actions into
// events and carries the actions out in order; next itself does no I/O, so every rule of a
// session — ringing, the join steps, the one-talker rule, refusals, switching through the talk paths,
// teardown — is table-tested without Asterisk or Redis (machine_test.go).
//
// Shape of a session on Asterisk: the supervisor's channel and ONE snoop on the agent's channel
// (spy=both, whisper=none) sit in a bridge of the session's own, so the supervisor hears both
// parties; that bridge never changes after the join. Who hears the supervisor is decided by the
// talk paths (talk.go), made the first time the supervisor talks: a spy session has no whisper
// path at all, so no later failure can make a silent monitor audible. Once they exist, a mode
// switch mutes or unmutes one or two of their ears, a single ARI call each: nothing is made or
// re-bridged on the switch's path, and nobody's audio is re-plumbed.
//
// One vocabulary: a session's state is the state stored on its record (store.StateRinging,
// StateJoining, StateActive, StateEnded); within a state, step says what the session is waiting
// for.

// step is what a session waits for within its state.
type step int

const (
	stepNone        step = iota
	stepRing             // ringing: the supervisor's phone rings (API sessions)
	stepFindCall         // joining: looking up the agent's active call
	stepAuditJoin        // joining: writing the join's audit entry (before anything is made)
	stepRecord           // joining: creating the session record
	stepTalker           // joining: claiming the call's talker slot (whisper/barge only)
	stepBridge           // joining: creating the session's bridge
	stepSnoop            // joining: the first snoop is made; waiting for its StasisStart
	stepBridgeSnoop      // joining: adding the first snoop to the bridge
	stepSupervisor       // joining: answering the supervisor and adding them to the bridge
	stepTone             // ending: the supervisor hears a tone before being hung up
	stepHelp             // joining: accepting the oldest open help request (the help code)
	// stepFailing: joining failed on Asterisk; waiting FailGrace for the supervisor's hangup,
	// which is what most such failures are (a CANCEL right after the INVITE).
	stepFailing
)

func (s step) String() string {
	switch s {
	case stepNone:
		return "none"
	case stepRing:
		return "ring"
	case stepFindCall:
		return "find_call"
	case stepAuditJoin:
		return "audit_join"
	case stepRecord:
		return "record"
	case stepTalker:
		return "talker"
	case stepBridge:
		return "bridge"
	case stepFailing:
		return "failing"
	case stepSnoop:
		return "snoop"
	case stepBridgeSnoop:
		return "bridge_snoop"
	case stepSupervisor:
		return "supervisor"
	case stepTone:
		return "tone"
	case stepHelp:
		return "help"
	default:
		return fmt.Sprintf("step(%d)", int(s))
	}
}

// machine is a session's state as next sees it. It is a value; next returns a new one (slices
// are copied before they change, so an older value stays as it was).
type machine struct {
	state string // store.State*: the record's state and the session's
	step  step

	// sup is the supervisor's channel; answered is true once it is answered (API legs are
	// answered when they enter Stasis); supGone once it hung up or left Stasis.
	sup      ari.ChannelID
	answered bool
	supGone  bool
	// api: the session was started by the API (the record exists before the phone rings, and the
	// call found after the answer must be the one the API named).
	api bool
	// agentChan is the agent's channel being supervised ("" until found).
	agentChan ari.ChannelID

	// What exists and must be undone at the end.
	record  bool // the session record exists in the store
	talker  bool // the call's talker slot is held
	bridge  bool // the session's bridge exists
	joined  bool // the supervisor reached the bridge (the session counted as started)
	live    []ari.ChannelID
	dropped []ari.ChannelID // snoops hung up by the session whose StasisEnd is still to come

	// mode is what people hear now; snoop is the listening snoop in the session bridge.
	mode  dialplan.Mode
	snoop ari.ChannelID
	// pending is the listening snoop being made for the join ("" when none).
	pending     ari.ChannelID
	pendingMode dialplan.Mode
	// talk is the supervisor's talk paths (talk.go), made the first time they talk.
	talk talkPaths
	// switching: a change of what people hear is under way (the talk paths being made, or ears
	// being set); mode is still the old one.
	switching bool
	// announced: the first mode heard was recorded (actModeChanged from ModeUnknown).
	announced bool
	// want is the last mode asked for (and audited); it differs from mode while a switch is
	// under way or queued behind one.
	want dialplan.Mode
	// waiters are API mode requests waiting until their mode is audible.
	waiters []waiter
	// seq numbers the session's snoops, so every snoop id is new (a reused snoopId is a 500).
	seq         int
	snoopPrefix string
	// talkPrefix starts the ids of the session's talk bridges.
	talkPrefix string

	// end is the teardown under way (state ended once it is done).
	end *ending
	// failed is the refusal a join that failed on Asterisk ends with unless the supervisor's
	// hangup comes within FailGrace (step stepFailing; nil there: a failed join, not a refusal).
	failed *refusal
}

// waiter is an API mode request that is answered once its mode is audible.
type waiter struct {
	id   int
	mode dialplan.Mode
}

// ending is how a session ends: why, and what the supervisor hears first.
type ending struct {
	reason string
	tone   string        // "" for none
	toneD  time.Duration // how long the tone plays
	hangup bool          // hang the supervisor up (false when they left)
	// refusal: the session never became active; the audit entry is a refused join.
	refusal *refusal
}

// Timers a session runs.
type timer int

const (
	timerRing      timer = iota // the supervisor's phone rings too long
	timerSnoop                  // a snoop's StasisStart does not come
	timerTone                   // the tone before a hangup has played long enough
	timerFailGrace              // a failed join waited long enough for the supervisor's hangup
	timerCount                  // how many kinds there are
)

// Session settings next needs.
type machineConfig struct {
	RefusalTone, EndTone, SnoopTimeout, RingTimeout time.Duration
	// FailGrace is how long a join that Asterisk failed waits for the supervisor's hangup
	// before it counts as a failure.
	FailGrace time.Duration
}

// event is an input of next.
type event interface{ isEvent() }

type (
	// evRing: an API session's originate was sent; its phone rings.
	evRing struct{}
	// evStart begins a feature-code join in mode (the supervisor is authorized).
	evStart struct{ mode dialplan.Mode }
	// evStartHelp begins a help-code join: accept the oldest open request the supervisor may
	// accept, then join its call in whisper.
	evStartHelp struct{}
	// evHelpAccepted: the help request was accepted; the session now knows its agent.
	evHelpAccepted struct{}
	// evRefused: the supervisor is turned away (authorization or a join step failed).
	evRefused struct{ r *refusal }
	// evStepDone: the action of the current join step succeeded.
	evStepDone struct{ step step }
	// evCallFound: the agent's active call.
	evCallFound struct{ channel ari.ChannelID }
	// evChannelUp: a channel entered Stasis (a snoop, or an API supervisor leg answering).
	evChannelUp struct{ id ari.ChannelID }
	// evChannelEnd: a channel left Stasis (StasisEnd) or was destroyed (ChannelDestroyed, with
	// its Q.850 cause).
	evChannelEnd struct {
		id        ari.ChannelID
		destroyed bool
		cause     int
	}
	// evHangupRequest: a channel is being hung up (it has not left yet).
	evHangupRequest struct{ id ari.ChannelID }
	// evOriginateFailed: calling the supervisor's phone failed at once.
	evOriginateFailed struct{ err error }
	// evSnoopBridged: a snoop was added to the bridge.
	evSnoopBridged struct{ id ari.ChannelID }
	// evModeWanted: the supervisor (DTMF) or the API (waiter > 0) asked for mode.
	evModeWanted struct {
		mode   dialplan.Mode
		via    string
		waiter int
	}
	// evTalker: the result of claiming the talker slot for a mode request.
	evTalker struct {
		req  evModeWanted
		code string // "" when claimed, else the refusal code
	}
	// evModeAudited: the result of auditing a mode change (ok false: it could not be recorded).
	evModeAudited struct {
		req evModeWanted
		ok  bool
	}
	// evTalkerReleased: the talker slot was given back.
	evTalkerReleased struct{}
	// evDropFailed: a critical snoop could not be hung up.
	evDropFailed struct{ id ari.ChannelID }
	// evLeave: the session is ended from outside (API, shutdown), with a reason.
	evLeave struct{ reason string }
	// evTimeout: a timer fired.
	evTimeout struct{ timer timer }
	// evFailed: a join step failed on Asterisk (snoop: the listening snoop's making or bridging).
	evFailed struct {
		snoop ari.ChannelID
		err   error
	}
)

func (evRing) isEvent()            {}
func (evStart) isEvent()           {}
func (evRefused) isEvent()         {}
func (evStartHelp) isEvent()       {}
func (evHelpAccepted) isEvent()    {}
func (evStepDone) isEvent()        {}
func (evCallFound) isEvent()       {}
func (evChannelUp) isEvent()       {}
func (evChannelEnd) isEvent()      {}
func (evHangupRequest) isEvent()   {}
func (evOriginateFailed) isEvent() {}
func (evSnoopBridged) isEvent()    {}
func (evModeWanted) isEvent()      {}
func (evTalker) isEvent()          {}
func (evModeAudited) isEvent()     {}
func (evTalkerReleased) isEvent()  {}
func (evDropFailed) isEvent()      {}
func (evLeave) isEvent()           {}
func (evTimeout) isEvent()         {}
func (evFailed) isEvent()          {}

// action is an output of next, carried out by the session goroutine in order. Actions whose
// result matters feed an event back (noted on each).
type action interface{ isAction() }

type (
	// actFindCall looks up the agent's active call -> evCallFound or evRefused.
	actFindCall struct{}
	// actAcceptHelp accepts (audited first) the oldest open help request the supervisor may
	// accept -> evHelpAccepted or evRefused.
	actAcceptHelp struct{}
	// actAuditJoin writes the join's audit entry -> evStepDone or evRefused.
	actAuditJoin struct{ mode dialplan.Mode }
	// actCreateRecord writes the session record -> evStepDone or evRefused.
	actCreateRecord struct{ mode dialplan.Mode }
	// actMarkJoining records that an answered API session is joining.
	actMarkJoining struct{}
	// actClaimTalker claims the call's talker slot: for the join (req zero) -> evStepDone or
	// evRefused; for a mode request -> evTalker.
	actClaimTalker struct{ req evModeWanted }
	// actReleaseTalker gives the talker slot back -> evTalkerReleased (nothing if it failed).
	actReleaseTalker struct{}
	// actCreateBridge creates the session's bridge -> evStepDone or evRefused.
	actCreateBridge struct{}
	// actSnoop creates the listening snoop id on the agent's channel (spy=both, whisper=none)
	// -> nothing (its StasisStart comes as evChannelUp) or evFailed. mode is always Spy: who
	// hears the supervisor is the talk paths' business.
	actSnoop struct {
		id   ari.ChannelID
		mode dialplan.Mode
	}
	// actBridgeSnoop adds snoop id to the bridge -> evSnoopBridged or evFailed.
	actBridgeSnoop struct{ id ari.ChannelID }
	// actJoinSupervisor answers the supervisor (if not yet) and adds them to the bridge ->
	// evStepDone or evFailed.
	actJoinSupervisor struct{ answer bool }
	// actStarted: the supervisor is in (metrics, notification, the announcement policy).
	actStarted struct{ mode dialplan.Mode }
	// actAuditMode writes a mode change's audit entry -> evModeAudited.
	actAuditMode struct{ req evModeWanted }
	// actModeRefused: a mode request was refused (audit, metrics, a brief tone to the supervisor).
	actModeRefused struct {
		req  evModeWanted
		code string
	}
	// actDropSnoop hangs up a snoop that is no longer wanted. critical: it may carry the
	// supervisor's voice, so a hangup that fails -> evDropFailed (the session then ends rather
	// than leave it).
	actDropSnoop struct {
		id       ari.ChannelID
		critical bool
	}
	// actForget stops routing a channel's events to the session (its last event came).
	actForget struct{ id ari.ChannelID }
	// actModeChanged records that mode is now audible (store, metrics, notification).
	// fallback: the talk paths failed and were dropped (not a switch anybody asked for).
	actModeChanged struct {
		from, to dialplan.Mode
		snoop    ari.ChannelID
		fallback bool
	}
	// actMarkActive records that the supervisor is in (state active, the listening snoop)
	// while a mode that talks waits for its talk paths.
	actMarkActive struct{ snoop ari.ChannelID }
	// actReply answers an API mode request (code "" = done).
	actReply struct {
		waiter int
		code   string
	}
	// actTimer starts (d > 0) or stops (d == 0) a timer.
	actTimer struct {
		timer timer
		d     time.Duration
	}
	// actTone answers the supervisor if needed and plays tone to them.
	actTone struct {
		tone   string
		answer bool
	}
	// actHangupSupervisor hangs the supervisor up.
	actHangupSupervisor struct{}
	// actDestroyBridge destroys the session's bridge (id "") or one of its talk bridges.
	actDestroyBridge struct{ id ari.BridgeID }
	// actAuditEnd writes the session's last audit entry: its end, or the refused join.
	actAuditEnd struct {
		reason  string
		mode    dialplan.Mode
		refusal *refusal
	}
	// actEndRecord ends the session record (and notifies its end).
	actEndRecord struct{ reason string }
	// actEnded: the session is over (metrics when it had started, the log line).
	actEnded struct {
		reason string
		joined bool
	}
)

func (actFindCall) isAction()         {}
func (actAuditJoin) isAction()        {}
func (actAcceptHelp) isAction()       {}
func (actCreateRecord) isAction()     {}
func (actMarkJoining) isAction()      {}
func (actMarkActive) isAction()       {}
func (actClaimTalker) isAction()      {}
func (actReleaseTalker) isAction()    {}
func (actCreateBridge) isAction()     {}
func (actSnoop) isAction()            {}
func (actBridgeSnoop) isAction()      {}
func (actJoinSupervisor) isAction()   {}
func (actStarted) isAction()          {}
func (actAuditMode) isAction()        {}
func (actModeRefused) isAction()      {}
func (actDropSnoop) isAction()        {}
func (actForget) isAction()           {}
func (actModeChanged) isAction()      {}
func (actReply) isAction()            {}
func (actTimer) isAction()            {}
func (actTone) isAction()             {}
func (actHangupSupervisor) isAction() {}
func (actDestroyBridge) isAction()    {}
func (actAuditEnd) isAction()         {}
func (actEndRecord) isAction()        {}
func (actEnded) isAction()            {}

// End reasons (also used by the API and in the audit trail).
const (
	ReasonSupervisorHangup = "supervisor_hangup"
	ReasonCallEnded        = "call_ended"
	ReasonAPI              = "api"
	ReasonError            = "error"
	ReasonShutdown         = "shutdown"
	ReasonNoAnswer         = "no_answer"
	ReasonBusy             = "busy"
	ReasonRejected         = "rejected"
	ReasonRefused          = "refused"
)

// Reply codes of API mode requests beyond the refusal codes.
const (
	replySuperseded  = "superseded"
	replyNotActive   = "not_active"
	replyEnded       = "ended"
	replyInvalidMode = "invalid_field"
)

// Tones played to the supervisor (tone: playbacks need no sound files; indications.conf).
const (
	toneRefused   = "tone:congestion"
	toneCallEnded = "tone:busy"
)

// newMachine is a session before its first event; sup is the supervisor's channel, answered
// whether it is answered already, api whether the API started it (and wrote its record).
func newMachine(sessionID string, sup ari.ChannelID, api bool) machine {
	m := machine{
		sup: sup, api: api, answered: api,
		snoopPrefix: snoopPrefix + sessionID[len(sessionPrefix):] + "-",
		talkPrefix:  bridgePrefix + sessionID + "-t",
		state:       store.StateJoining,
	}
	if api {
		m.state, m.record = store.StateRinging, true
	}
	return m
}

func (m *machine) newSnoopID() ari.ChannelID {
	m.seq++
	return ari.ChannelID(fmt.Sprintf("%s%d", m.snoopPrefix, m.seq))
}

// newTalkBridgeID numbers from the snoops' sequence, so a talk bridge made again (after a failure,
// or by an instance that adopted the session) never reuses an id (a reused bridge id is a 409).
func (m *machine) newTalkBridgeID() ari.BridgeID {
	m.seq++
	return ari.BridgeID(fmt.Sprintf("%s%d", m.talkPrefix, m.seq))
}

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

// next is the transition function. It never panics and ignores events that do not apply (a late
// StasisStart of a snoop already dropped, a digit during teardown...).
func next(cfg machineConfig, m machine, e event) (machine, []action) {
	// Channel endings are bookkeeping in every state: a dropped snoop's last event, or the
	// supervisor leaving.
	switch e := e.(type) {
	case evChannelEnd:
		return m.channelEnded(cfg, e)
	case evChannelUp:
		if e.id != "" && slices.Contains(m.dropped, e.id) {
			// Made after all (its REST call failed late, or it came up after being dropped):
			// hang it up again; its StasisEnd takes it off the list.
			return m, []action{actDropSnoop{id: e.id}}
		}
	case evHangupRequest:
		if e.id == m.sup && m.state != store.StateRinging {
			return m.supervisorLeft(cfg)
		}
		return m, nil // a snoop: wait for its StasisEnd
	case evLeave:
		if m.state == store.StateEnded || m.end != nil {
			return m, nil
		}
		return m.finish(cfg, ending{reason: e.reason, hangup: !m.supGone})
	case evEndNow: // an adopted session found broken (adopt.go)
		if m.state == store.StateEnded || m.end != nil {
			return m, nil
		}
		return m.finish(cfg, e.ending(cfg, m))
	}
	if m.end != nil {
		return m.ending(cfg, e)
	}
	switch m.state {
	case store.StateRinging:
		return m.ringing(cfg, e)
	case store.StateJoining:
		return m.joining(cfg, e)
	case store.StateActive:
		return m.active(cfg, e)
	}
	return m, nil
}

// channelEnded handles a channel's StasisEnd or ChannelDestroyed.
func (m machine) channelEnded(cfg machineConfig, e evChannelEnd) (machine, []action) {
	id := e.id
	switch {
	case id == "":
		return m, nil
	case id == m.sup:
		if m.supGone {
			return m, nil
		}
		if m.state == store.StateRinging {
			if !e.destroyed || m.end != nil {
				return m, nil
			}
			// The phone never answered: busy, rejected or no answer, by the cause.
			m.supGone = true
			return m.finish(cfg, ending{reason: hangupReason(e.cause)})
		}
		return m.supervisorLeft(cfg)
	case slices.Contains(m.dropped, id):
		// A snoop's last event is its StasisEnd: Asterisk sends no ChannelDestroyed for it.
		m.dropped = without(m.dropped, id)
		return m, []action{actForget{id: id}}
	case slices.Contains(m.live, id):
		m.live = without(m.live, id)
		if m.end != nil || m.state == store.StateEnded {
			return m, []action{actForget{id: id}}
		}
		if m.talk.isVoice(id) {
			// A voice snoop ends by itself when the supervisor's channel hangs up.
			acts := []action{actForget{id: id}}
			m2, more := m.finish(cfg, ending{reason: ReasonSupervisorHangup, hangup: !m.supGone})
			return m2, append(acts, more...)
		}
		// A snoop ends by itself when the snooped channel hangs up: the call is over.
		acts := []action{actForget{id: id}}
		m2, more := m.finish(cfg, ending{reason: ReasonCallEnded, tone: toneCallEnded, toneD: cfg.EndTone, hangup: true})
		return m2, append(acts, more...)
	}
	return m, nil
}

// supervisorLeft: the supervisor hung up or left Stasis.
func (m machine) supervisorLeft(cfg machineConfig) (machine, []action) {
	m.supGone = true
	if m.end != nil {
		// Hearing a tone before the hangup (finish either plays one or ends at once): nothing
		// left to hang up. The ending is copied, so older machine values keep theirs.
		end := *m.end
		end.hangup = false
		m.end = &end
		if m.step == stepTone {
			return m.ending(cfg, evTimeout{timer: timerTone})
		}
		return m, nil
	}
	if m.state == store.StateEnded {
		return m, nil
	}
	return m.finish(cfg, ending{reason: ReasonSupervisorHangup})
}

func (m machine) ringing(cfg machineConfig, e event) (machine, []action) {
	switch e := e.(type) {
	case evRing:
		m.step = stepRing
		return m, []action{actTimer{timer: timerRing, d: cfg.RingTimeout}}
	case evChannelUp:
		if e.id != m.sup {
			return m, nil
		}
		// Answered: join as a feature-code session does, checking the call is still the one
		// the API named.
		m.state, m.step = store.StateJoining, stepFindCall
		return m, []action{actTimer{timer: timerRing}, actMarkJoining{}, actFindCall{}}
	case evOriginateFailed:
		// The request may have failed after Asterisk made the channel (a timeout): hang it up,
		// so the phone does not go on ringing for a session that is over.
		return m.finish(cfg, ending{reason: ReasonError, hangup: true})
	case evTimeout:
		if e.timer == timerRing {
			return m.finish(cfg, ending{reason: ReasonNoAnswer, hangup: true})
		}
	case evModeWanted:
		if e.waiter > 0 {
			return m, []action{actReply{waiter: e.waiter, code: replyNotActive}}
		}
	}
	return m, nil
}

func (m machine) joining(cfg machineConfig, e event) (machine, []action) {
	switch e := e.(type) {
	case evStart:
		if m.api || m.step != stepNone || !e.mode.Valid() {
			return m, nil
		}
		m.want = e.mode
		m.step = stepFindCall
		return m, []action{actFindCall{}}
	case evStartHelp:
		if m.api || m.step != stepNone {
			return m, nil
		}
		m.step = stepHelp
		return m, []action{actAcceptHelp{}}
	case evHelpAccepted:
		if m.step != stepHelp {
			return m, nil
		}
		// A help-code join starts in whisper: the supervisor is there to coach.
		m.want, m.step = dialplan.Whisper, stepFindCall
		return m, []action{actFindCall{}}
	case evRefused:
		if e.r != nil && e.r.code == RefuseAsterisk {
			return m.failOnAsterisk(cfg, e.r)
		}
		return m.refuse(cfg, e.r)
	case evCallFound:
		if m.step != stepFindCall || e.channel == "" {
			return m, nil
		}
		if m.api {
			if e.channel != m.agentChan {
				return m.refuse(cfg, &refusal{code: RefuseNoActiveCall, err: errCallChanged})
			}
			// Audit and record were written by the API request before the phone rang.
			return m.claimOrBridge()
		}
		m.agentChan = e.channel
		m.step = stepAuditJoin
		return m, []action{actAuditJoin{mode: m.want}}
	case evStepDone:
		if e.step != m.step {
			return m, nil
		}
		return m.joinStepDone(cfg)
	case evChannelUp:
		if m.step != stepSnoop || e.id != m.pending {
			return m, nil
		}
		m.step = stepBridgeSnoop
		return m, []action{actTimer{timer: timerSnoop}, actBridgeSnoop{id: e.id}}
	case evSnoopBridged:
		if m.step != stepBridgeSnoop || e.id != m.pending {
			return m, nil
		}
		m.snoop, m.mode = m.pending, m.pendingMode
		m.pending, m.pendingMode = "", dialplan.ModeUnknown
		m.step = stepSupervisor
		return m, []action{actJoinSupervisor{answer: !m.answered}}
	case evTimeout:
		if e.timer == timerSnoop && m.step == stepSnoop {
			return m.failJoin(cfg)
		}
		if e.timer == timerFailGrace && m.step == stepFailing {
			if m.failed != nil {
				return m.refuse(cfg, m.failed)
			}
			return m.failJoin(cfg)
		}
	case evFailed:
		return m.failOnAsterisk(cfg, nil)
	case evModeWanted:
		if e.waiter > 0 {
			return m, []action{actReply{waiter: e.waiter, code: replyNotActive}}
		}
	}
	return m, nil
}

// joinStepDone advances a join whose current step's action succeeded.
func (m machine) joinStepDone(cfg machineConfig) (machine, []action) {
	switch m.step {
	case stepAuditJoin:
		m.step = stepRecord
		return m, []action{actCreateRecord{mode: m.want}}
	case stepRecord:
		m.record = true
		return m.claimOrBridge()
	case stepTalker:
		m.talker = true
		m.step = stepBridge
		return m, []action{actCreateBridge{}}
	case stepBridge:
		m.bridge = true
		m.step = stepSnoop
		m.pending, m.pendingMode = m.newSnoopID(), dialplan.Spy
		m.live = append(slices.Clone(m.live), m.pending)
		return m, []action{actSnoop{id: m.pending, mode: dialplan.Spy}, actTimer{timer: timerSnoop, d: cfg.SnoopTimeout}}
	case stepSupervisor:
		m.answered, m.joined = true, true
		m.state, m.step = store.StateActive, stepNone
		acts := []action{actStarted{mode: m.want}}
		if talks(m.want) {
			acts = append(acts, actMarkActive{snoop: m.snoop})
		} else {
			m.announced = true
			acts = append(acts, actModeChanged{from: dialplan.ModeUnknown, to: m.mode, snoop: m.snoop})
		}
		// A mode that talks is heard once the talk paths are made (afterSwitch starts them).
		m2, more := m.afterSwitch(cfg)
		return m2, append(acts, more...)
	}
	return m, nil
}

// errCallChanged: the agent's call ended (or changed) while an API supervisor's phone rang.
var errCallChanged = errors.New("the agent's call ended while the supervisor's phone rang")

// claimOrBridge continues a join after the record: the talker slot if the mode talks, then the
// bridge.
func (m machine) claimOrBridge() (machine, []action) {
	if talks(m.want) && !m.talker {
		m.step = stepTalker
		return m, []action{actClaimTalker{}}
	}
	m.step = stepBridge
	return m, []action{actCreateBridge{}}
}

// failOnAsterisk: a join step failed on Asterisk (r is the refusal it makes, nil for a failure
// after the bridge was made). A supervisor who hangs up during the join makes the steps on
// their channel fail, and the REST error may come before their channel's end on the events
// socket: wait FailGrace for that end (supervisorLeft then ends the session as
// supervisor_hangup) before counting it as a failure.
func (m machine) failOnAsterisk(cfg machineConfig, r *refusal) (machine, []action) {
	if m.step == stepFailing {
		return m, nil
	}
	if m.supGone || cfg.FailGrace <= 0 {
		if r != nil {
			return m.refuse(cfg, r)
		}
		return m.failJoin(cfg)
	}
	m.step, m.failed = stepFailing, r
	return m, []action{actTimer{timer: timerFailGrace, d: cfg.FailGrace}}
}

// failJoin: Asterisk failed the session after its bridge was made; the supervisor hears it.
func (m machine) failJoin(cfg machineConfig) (machine, []action) {
	return m.finish(cfg, ending{reason: ReasonError, tone: toneRefused, toneD: cfg.EndTone, hangup: !m.supGone})
}

// refuse turns the supervisor away: audited as a refused join, heard as congestion.
func (m machine) refuse(cfg machineConfig, r *refusal) (machine, []action) {
	if r == nil {
		r = &refusal{code: RefuseAsterisk, err: errors.New("refused")}
	}
	return m.finish(cfg, ending{reason: ReasonRefused, tone: toneRefused, toneD: cfg.RefusalTone, hangup: !m.supGone, refusal: r})
}

func (m machine) active(cfg machineConfig, e event) (machine, []action) {
	switch e := e.(type) {
	case evModeWanted:
		if !e.mode.Valid() {
			if e.waiter > 0 {
				return m, []action{actReply{waiter: e.waiter, code: replyInvalidMode}}
			}
			return m, nil
		}
		if e.mode == m.want {
			// Nothing to change: an API request is answered when the mode is audible.
			if e.waiter > 0 {
				m.waiters = append(slices.Clone(m.waiters), waiter{id: e.waiter, mode: e.mode})
				return m.answerWaiters()
			}
			return m, nil
		}
		if talks(e.mode) && !m.talker {
			return m, []action{actClaimTalker{req: e}}
		}
		return m, []action{actAuditMode{req: e}}
	case evTalker:
		if e.code != "" {
			return m.modeRefused(e.req, e.code)
		}
		m.talker = true
		return m, []action{actAuditMode{req: e.req}}
	case evModeAudited:
		if !e.ok {
			m, acts := m.modeRefused(e.req, RefuseStoreUnavailable)
			if m.talker && !talks(m.mode) && !talks(m.want) && !talks(m.pendingMode) {
				// The slot was claimed for this change only: give it back.
				acts = append(acts, actReleaseTalker{})
			}
			return m, acts
		}
		m.want = e.req.mode
		if e.req.waiter > 0 {
			m.waiters = append(slices.Clone(m.waiters), waiter{id: e.req.waiter, mode: e.req.mode})
		}
		// Earlier requests for another mode are overtaken by this one.
		m, acts := m.answerWaiters()
		if m.switching || m.want == m.mode {
			// Queued behind the switch under way (or back to the mode heard now).
			return m, acts
		}
		return m.startSwitch(cfg, acts)
	case evTalkerReleased:
		m.talker = false
		return m, nil
	case evChannelUp:
		return m.talkUp(e.id)
	case evTalkBridged:
		return m.talkBridged(cfg, e)
	case evEarsSet:
		if !m.switching || m.talk.state != talkReady {
			return m, nil
		}
		return m.earsSet(cfg, e)
	case evTalkFailed:
		if m.talk.state == talkNone {
			return m, nil
		}
		return m.dropTalk(cfg)
	case evDropFailed:
		// A snoop that may carry the supervisor's voice is still there: end the session (the
		// supervisor is hung up, and their voice snoops with them) rather than risk it.
		return m.failJoin(cfg)
	case evTimeout:
		if e.timer == timerSnoop && m.talk.state == talkMaking {
			return m.dropTalk(cfg)
		}
	case evAdopted:
		if m.switching || !m.want.Valid() {
			return m, nil
		}
		var acts []action
		if !m.announced && !talks(m.want) {
			// Its talk paths went with the old owner, and it may not talk any more.
			m.announced = true
			acts = append(acts, actModeChanged{from: dialplan.ModeUnknown, to: m.mode, snoop: m.snoop})
		}
		if m.talk.state == talkReady {
			// Talk paths taken over: every ear is set again, as a switch under way when the
			// old owner went may have left one as it was.
			m.switching = true
			var set []earSetting
			for i, open := range earsFor(m.want) {
				set = append(set, earSetting{ear: m.talk.pairs[i].ear, open: open})
			}
			return m, append(acts, actEars{mode: m.want, set: set})
		}
		// Talk paths that went with the old owner are made again.
		if m.want != m.mode {
			return m.startSwitch(cfg, acts)
		}
		return m, acts
	}
	return m, nil
}

// startSwitch makes m.want what is heard (acts go first): the talk paths are made the first time
// the supervisor talks; once they exist, the ears that differ are muted or unmuted.
func (m machine) startSwitch(cfg machineConfig, acts []action) (machine, []action) {
	switch m.talk.state {
	case talkNone:
		if !talks(m.want) {
			// Nothing talks and nothing to make: listening is what is heard already.
			m2, more := m.earsSet(cfg, evEarsSet{mode: m.want})
			return m2, append(acts, more...)
		}
		return m.startTalk(cfg, acts)
	case talkMaking:
		return m, acts // set once they are made
	}
	m.switching = true
	return m, append(acts, actEars{mode: m.want, set: m.earChanges(m.want)})
}

// afterSwitch runs once a mode is audible: API waiters answered, the talker slot released when
// nobody hears the supervisor any more, and a switch asked for meanwhile started.
func (m machine) afterSwitch(cfg machineConfig) (machine, []action) {
	m, acts := m.answerWaiters()
	if m.talker && !talks(m.mode) && !talks(m.want) {
		acts = append(acts, actReleaseTalker{})
	}
	if m.want != m.mode && m.want.Valid() {
		return m.startSwitch(cfg, acts)
	}
	return m, acts
}

// modeRefused: a mode request was refused (talker busy, or it could not be audited).
func (m machine) modeRefused(req evModeWanted, code string) (machine, []action) {
	acts := []action{actModeRefused{req: req, code: code}}
	if req.waiter > 0 {
		acts = append(acts, actReply{waiter: req.waiter, code: code})
	}
	return m, acts
}

// answerWaiters replies to API mode requests whose mode is now audible, or that a later request
// or a failed switch overtook.
func (m machine) answerWaiters() (machine, []action) {
	var acts []action
	var keep []waiter
	for _, w := range m.waiters {
		switch {
		case !m.switching && m.mode == w.mode:
			acts = append(acts, actReply{waiter: w.id})
		case m.want != w.mode:
			acts = append(acts, actReply{waiter: w.id, code: replySuperseded})
		default:
			keep = append(keep, w)
		}
	}
	m.waiters = keep
	return m, acts
}

// finish starts the teardown: snoops go first (a supervisor hearing the end tone is no longer
// connected to the call), then the tone, the hangup, the bridge, the talker slot, the audit entry
// and the record.
func (m machine) finish(cfg machineConfig, end ending) (machine, []action) {
	m.end = &end
	acts := []action{actTimer{timer: timerRing}, actTimer{timer: timerSnoop}}
	for _, w := range m.waiters {
		acts = append(acts, actReply{waiter: w.id, code: replyEnded})
	}
	m.waiters = nil
	for _, id := range m.live {
		acts = append(acts, actDropSnoop{id: id})
	}
	m.dropped = append(slices.Clone(m.dropped), m.live...)
	m.live = nil
	m.pending, m.switching = "", false
	if end.hangup && !m.supGone && end.tone != "" {
		m.step = stepTone
		acts = append(acts, actTone{tone: end.tone, answer: !m.answered}, actTimer{timer: timerTone, d: end.toneD})
		m.answered = true
		return m, acts
	}
	m2, more := m.windUp()
	return m2, append(acts, more...)
}

// ending handles events while the supervisor hears the closing tone.
func (m machine) ending(_ machineConfig, e event) (machine, []action) {
	switch e := e.(type) {
	case evTimeout:
		if e.timer == timerTone && m.step == stepTone {
			return m.windUp()
		}
	case evModeWanted:
		if e.waiter > 0 {
			return m, []action{actReply{waiter: e.waiter, code: replyEnded}}
		}
	case evTalkerReleased:
		m.talker = false
	}
	return m, nil
}

// windUp is the end of every session: hang up, remove what was made, audit, end the record.
func (m machine) windUp() (machine, []action) {
	end := *m.end
	var acts []action
	if m.step == stepTone {
		acts = append(acts, actTimer{timer: timerTone})
	}
	if end.hangup && !m.supGone {
		acts = append(acts, actHangupSupervisor{})
	}
	if m.bridge {
		acts = append(acts, actDestroyBridge{})
		m.bridge = false
	}
	for _, id := range m.talk.bridges() {
		acts = append(acts, actDestroyBridge{id: id})
	}
	m.talk = talkPaths{}
	if m.talker {
		acts = append(acts, actReleaseTalker{})
	}
	acts = append(acts, actAuditEnd{reason: end.reason, mode: m.mode, refusal: end.refusal})
	if m.record {
		acts = append(acts, actEndRecord{reason: end.reason})
	}
	acts = append(acts, actEnded{reason: end.reason, joined: m.joined})
	m.state, m.step = store.StateEnded, stepNone
	return m, acts
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

func without(ids []ari.ChannelID, id ari.ChannelID) []ari.ChannelID {
	out := make([]ari.ChannelID, 0, len(ids))
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}
