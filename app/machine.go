package app

import (
	"fmt"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/dialplan"
)

// The snoop choreography of one supervision session, as a pure function (STYLE §10): next takes
// the session's state and one event and returns the new state and the actions to carry out. The
// session goroutine feeds it ARI events and the results of its actions; next itself does no I/O,
// so every path through it is table-tested without Asterisk.
//
// Shape of a session on Asterisk: the supervisor's channel and ONE snoop on the agent's channel
// sit in a mixing bridge of the session's own. The snoop's spy=both lets the supervisor hear both
// parties; its whisper direction decides who hears the supervisor (ASTERISK-FACTS "who hears
// whom"): none (spy), out = into the agent's ear (whisper), both (barge). A spy session therefore
// has no whisper path at all: no later failure can make a silent monitor audible.
//
// A mode switch is make-before-break: a new snoop with the new whisper direction is created, and
// only once it is in the bridge does the old one go. For a moment both are in the bridge, so the
// supervisor hears the call twice for about a millisecond instead of a gap.

// phase is where a session is in its life.
type phase int

const (
	phaseJoining phase = iota // bridge and first snoop being set up; supervisor not yet bridged
	phaseActive               // supervisor bridged with a snoop
	phaseEnding               // teardown issued
)

func (p phase) String() string {
	switch p {
	case phaseJoining:
		return "joining"
	case phaseActive:
		return "active"
	case phaseEnding:
		return "ending"
	default:
		return fmt.Sprintf("phase(%d)", int(p))
	}
}

// machine is a session's state as next sees it.
type machine struct {
	phase phase
	// mode is the mode of the snoop in the bridge (what people hear now).
	mode dialplan.Mode
	// snoop is the snoop channel in the bridge ("" while joining).
	snoop ari.ChannelID
	// pending is the snoop being made for a join or a switch ("" when none).
	pending     ari.ChannelID
	pendingMode dialplan.Mode
	// want is the last mode asked for; it differs from mode while a switch is under way or
	// queued behind one.
	want dialplan.Mode
	// seq numbers the session's snoops, so every snoop id is new (a reused snoopId is a 500).
	seq int
	// snoopPrefix is the session's snoop id prefix: snoop ids are snoopPrefix + seq.
	snoopPrefix string
}

// event is an input of next.
type event interface{ isEvent() }

type (
	// evStart begins the join in mode.
	evStart struct{ mode dialplan.Mode }
	// evSnoopUp: a snoop's StasisStart arrived.
	evSnoopUp struct{ id ari.ChannelID }
	// evSnoopBridged: a snoop was added to the bridge.
	evSnoopBridged struct{ id ari.ChannelID }
	// evSnoopGone: a snoop ended (StasisEnd or ChannelDestroyed) without us hanging it up.
	evSnoopGone struct{ id ari.ChannelID }
	// evModeWanted: the supervisor (DTMF) or the API asked for mode.
	evModeWanted struct{ mode dialplan.Mode }
	// evSupervisorGone: the supervisor's channel left Stasis or hung up.
	evSupervisorGone struct{}
	// evLeave: the session is ended from outside (API, shutdown), with a reason.
	evLeave struct{ reason string }
	// evFailed: an action failed. A failed switch (snoop is the pending one of an active session)
	// is abandoned and the session stays in its mode; any other failure ends the session.
	evFailed struct {
		snoop ari.ChannelID
		err   error
	}
)

func (evStart) isEvent()          {}
func (evSnoopUp) isEvent()        {}
func (evSnoopBridged) isEvent()   {}
func (evSnoopGone) isEvent()      {}
func (evModeWanted) isEvent()     {}
func (evSupervisorGone) isEvent() {}
func (evLeave) isEvent()          {}
func (evFailed) isEvent()         {}

// action is an output of next, carried out by the session goroutine in order.
type action interface{ isAction() }

type (
	// actSnoop creates snoop id on the agent's channel with mode's whisper direction.
	actSnoop struct {
		id   ari.ChannelID
		mode dialplan.Mode
	}
	// actBridgeSnoop adds snoop id to the session's bridge.
	actBridgeSnoop struct{ id ari.ChannelID }
	// actJoinSupervisor answers the supervisor (if not yet) and adds them to the bridge.
	actJoinSupervisor struct{}
	// actDropSnoop hangs up a snoop that is no longer wanted.
	actDropSnoop struct{ id ari.ChannelID }
	// actModeChanged records that mode is now audible (store, talker slot, metrics).
	actModeChanged struct{ from, to dialplan.Mode }
	// actTeardown ends the session: the supervisor hears tone (if any) and is hung up (if
	// hangupSupervisor), every snoop and the bridge go, the store is updated.
	actTeardown struct {
		reason           string
		tone             string
		hangupSupervisor bool
	}
)

func (actSnoop) isAction()          {}
func (actBridgeSnoop) isAction()    {}
func (actJoinSupervisor) isAction() {}
func (actDropSnoop) isAction()      {}
func (actModeChanged) isAction()    {}
func (actTeardown) isAction()       {}

// End reasons (also used by the API).
const (
	ReasonSupervisorHangup = "supervisor_hangup"
	ReasonCallEnded        = "call_ended"
	ReasonAPI              = "api"
	ReasonError            = "error"
	ReasonShutdown         = "shutdown"
	ReasonNoAnswer         = "no_answer"
	ReasonBusy             = "busy"
	ReasonRejected         = "rejected"
)

// Tones played to the supervisor (tone: playbacks need no sound files; indications.conf).
const (
	toneRefused   = "tone:congestion"
	toneCallEnded = "tone:busy"
)

func (m *machine) newSnoopID() ari.ChannelID {
	m.seq++
	return ari.ChannelID(fmt.Sprintf("%s%d", m.snoopPrefix, m.seq))
}

// teardown moves to phaseEnding with one teardown action.
func (m machine) teardown(reason, tone string, hangupSupervisor bool) (machine, []action) {
	m.phase = phaseEnding
	return m, []action{actTeardown{reason: reason, tone: tone, hangupSupervisor: hangupSupervisor}}
}

// next is the transition function. It never panics and ignores events that do not apply to the
// current phase (a late StasisStart of a snoop already dropped, a digit during teardown...).
func next(m machine, e event) (machine, []action) {
	if m.phase == phaseEnding {
		return m, nil
	}
	switch e := e.(type) {
	case evStart:
		if m.phase != phaseJoining || m.pending != "" || m.snoop != "" || !e.mode.Valid() {
			return m, nil
		}
		m.want = e.mode
		m.pending, m.pendingMode = m.newSnoopID(), e.mode
		return m, []action{actSnoop{id: m.pending, mode: e.mode}}

	case evSnoopUp:
		if e.id == "" || e.id != m.pending {
			return m, nil
		}
		return m, []action{actBridgeSnoop{id: e.id}}

	case evSnoopBridged:
		if e.id == "" || e.id != m.pending {
			return m, nil
		}
		old, oldMode := m.snoop, m.mode
		m.snoop, m.mode = m.pending, m.pendingMode
		m.pending, m.pendingMode = "", dialplan.ModeUnknown
		var acts []action
		if m.phase == phaseJoining {
			m.phase = phaseActive
			acts = append(acts, actJoinSupervisor{}, actModeChanged{from: dialplan.ModeUnknown, to: m.mode})
		} else {
			// Make-before-break: the new snoop is in, now the old one goes.
			acts = append(acts, actDropSnoop{id: old}, actModeChanged{from: oldMode, to: m.mode})
		}
		if m.want != m.mode && m.want.Valid() {
			// Another switch was asked for while this one was under way.
			m.pending, m.pendingMode = m.newSnoopID(), m.want
			acts = append(acts, actSnoop{id: m.pending, mode: m.want})
		}
		return m, acts

	case evModeWanted:
		if !e.mode.Valid() || m.phase != phaseActive {
			return m, nil
		}
		m.want = e.mode
		if m.pending != "" || e.mode == m.mode {
			// Queued behind the switch under way (or nothing to do).
			return m, nil
		}
		m.pending, m.pendingMode = m.newSnoopID(), e.mode
		return m, []action{actSnoop{id: m.pending, mode: e.mode}}

	case evSnoopGone:
		if e.id == "" || (e.id != m.snoop && e.id != m.pending) {
			return m, nil
		}
		// A snoop ends by itself when the snooped channel hangs up: the call is over.
		return m.teardown(ReasonCallEnded, toneCallEnded, true)

	case evSupervisorGone:
		return m.teardown(ReasonSupervisorHangup, "", false)

	case evLeave:
		return m.teardown(e.reason, "", true)

	case evFailed:
		if m.phase == phaseActive && e.snoop != "" && e.snoop == m.pending {
			m.pending, m.pendingMode, m.want = "", dialplan.ModeUnknown, m.mode
			return m, []action{actDropSnoop{id: e.snoop}}
		}
		return m.teardown(ReasonError, toneRefused, true)
	}
	return m, nil
}
