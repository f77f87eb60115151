package app

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

var tcfg = machineConfig{RefusalTone: 3 * time.Second, EndTone: 1500 * time.Millisecond, SnoopTimeout: 5 * time.Second, RingTimeout: 35 * time.Second}

// Snoop ids of the test session "sup-x": s1 is the listening snoop of the join; the talk paths
// made next are the agent's (voice v1, ear e1, bridge tb1) and the customer's (v2, e2, tb2).
const (
	s1 ari.ChannelID = "ep-snp-x-1"
	v1 ari.ChannelID = "ep-snp-x-2"
	e1 ari.ChannelID = "ep-snp-x-3"
	v2 ari.ChannelID = "ep-snp-x-5"
	e2 ari.ChannelID = "ep-snp-x-6"

	tb1 ari.BridgeID = "ep-br-sup-x-t4"
	tb2 ari.BridgeID = "ep-br-sup-x-t7"
)

// talkPairs are the talk paths as actMakeTalk asks for them.
var talkPairs = [earCount]talkPair{
	{bridge: tb1, voice: v1, ear: e1},
	{bridge: tb2, voice: v2, ear: e2, customerEar: true},
}

// talkMade are the results of making the talk paths for mode: four StasisStarts, two bridgings
// with the ears of mode open.
func talkMade(mode dialplan.Mode) []event {
	open := earsFor(mode)
	return []event{
		evChannelUp{id: v1}, evChannelUp{id: e1}, evChannelUp{id: v2}, evChannelUp{id: e2},
		evTalkBridged{pair: earAgent, open: open[earAgent]}, evTalkBridged{pair: earCustomer, open: open[earCustomer]},
	}
}

// talkActs are the actions of making the talk paths for mode, up to the mode being heard.
func talkActs(mode dialplan.Mode) []action {
	open := earsFor(mode)
	return []action{
		actMakeTalk{pairs: talkPairs},
		actBridgeTalk{pair: earAgent, bridge: tb1, voice: v1, ear: e1, open: open[earAgent]},
		actBridgeTalk{pair: earCustomer, bridge: tb2, voice: v2, ear: e2, open: open[earCustomer]},
	}
}

const supCh ari.ChannelID = "sup"

// run feeds events to next from m and returns the final state and every action, in order.
func run(m machine, events ...event) (machine, []action) {
	var all []action
	for _, e := range events {
		var acts []action
		m, acts = next(tcfg, m, e)
		all = append(all, acts...)
	}
	return m, all
}

// noTimers drops timer actions (tested on their own) to keep the tables readable.
func noTimers(acts []action) []action {
	var out []action
	for _, a := range acts {
		if _, ok := a.(actTimer); !ok {
			out = append(out, a)
		}
	}
	return out
}

func fresh() machine { return newMachine("sup-x", supCh, false) }

func freshAPI() machine {
	m := newMachine("sup-x", supCh, true)
	m.agentChan, m.want = "agent", dialplan.Spy
	return m
}

// joinEvents are the results of a successful feature-code join in mode.
func joinEvents(mode dialplan.Mode) []event {
	evs := []event{evStart{mode: mode}, evCallFound{channel: "agent"}, evStepDone{step: stepAuditJoin}, evStepDone{step: stepRecord}}
	if talks(mode) {
		evs = append(evs, evStepDone{step: stepTalker})
	}
	evs = append(evs, evStepDone{step: stepBridge}, evChannelUp{id: s1}, evSnoopBridged{id: s1}, evStepDone{step: stepSupervisor})
	if talks(mode) {
		evs = append(evs, talkMade(mode)...)
	}
	return evs
}

// active returns a machine joined in mode with snoop s1 in the bridge (and, for a mode that
// talks, the talk paths made).
func active(mode dialplan.Mode) machine {
	m, _ := run(fresh(), joinEvents(mode)...)
	return m
}

// switchTo is what a granted mode request looks like: the claim when it talks, the audit, then
// the talk paths made (the first time) or the ears set.
func switchTo(m machine, mode dialplan.Mode) []event {
	req := evModeWanted{mode: mode, via: "dtmf"}
	evs := []event{req}
	if talks(mode) && !m.talker {
		evs = append(evs, evTalker{req: req})
	}
	evs = append(evs, evModeAudited{req: req, ok: true})
	if m.talk.state == talkNone && talks(mode) {
		return append(evs, talkMade(mode)...)
	}
	evs = append(evs, evEarsSet{mode: mode})
	if m.talker && !talks(mode) {
		evs = append(evs, evTalkerReleased{})
	}
	return evs
}

func TestMachine(t *testing.T) {
	spy, whisper, barge := dialplan.Spy, dialplan.Whisper, dialplan.Barge
	dtmf := func(m dialplan.Mode) evModeWanted { return evModeWanted{mode: m, via: "dtmf"} }
	busy := &refusal{code: RefuseTalkerBusy, err: errors.New("busy")}
	tests := []struct {
		name      string
		from      machine
		events    []event
		wantState string
		wantMode  dialplan.Mode
		wantSnoop ari.ChannelID
		want      []action
	}{
		{
			name:      "feature join in spy: call, audit, record, bridge, snoop, supervisor; no talker slot",
			from:      fresh(),
			events:    joinEvents(spy),
			wantState: store.StateActive, wantMode: spy, wantSnoop: s1,
			want: []action{
				actFindCall{}, actAuditJoin{mode: spy}, actCreateRecord{mode: spy}, actCreateBridge{},
				actSnoop{id: s1, mode: spy}, actBridgeSnoop{id: s1}, actJoinSupervisor{answer: true},
				actStarted{mode: spy}, actModeChanged{from: dialplan.ModeUnknown, to: spy, snoop: s1},
			},
		},
		{
			name:      "feature join in whisper claims the talker slot before the bridge, listens, then makes the talk paths",
			from:      fresh(),
			events:    joinEvents(whisper),
			wantState: store.StateActive, wantMode: whisper, wantSnoop: s1,
			want: append([]action{
				actFindCall{}, actAuditJoin{mode: whisper}, actCreateRecord{mode: whisper}, actClaimTalker{}, actCreateBridge{},
				actSnoop{id: s1, mode: spy}, actBridgeSnoop{id: s1}, actJoinSupervisor{answer: true},
				actStarted{mode: whisper}, actMarkActive{snoop: s1}},
				append(talkActs(whisper), actModeChanged{from: dialplan.ModeUnknown, to: whisper, snoop: s1})...),
		},
		{
			name:      "feature join in barge opens both ears as the paths are bridged",
			from:      fresh(),
			events:    joinEvents(barge),
			wantState: store.StateActive, wantMode: barge, wantSnoop: s1,
			want: append([]action{
				actFindCall{}, actAuditJoin{mode: barge}, actCreateRecord{mode: barge}, actClaimTalker{}, actCreateBridge{},
				actSnoop{id: s1, mode: spy}, actBridgeSnoop{id: s1}, actJoinSupervisor{answer: true},
				actStarted{mode: barge}, actMarkActive{snoop: s1}},
				append(talkActs(barge), actModeChanged{from: dialplan.ModeUnknown, to: barge, snoop: s1})...),
		},
		{
			name: "join refused for a busy talker slot: congestion, then everything made is undone",
			from: fresh(),
			events: []event{evStart{mode: barge}, evCallFound{channel: "agent"}, evStepDone{step: stepAuditJoin},
				evStepDone{step: stepRecord}, evRefused{r: busy}, evTimeout{timer: timerTone}},
			wantState: store.StateEnded,
			want: []action{
				actFindCall{}, actAuditJoin{mode: barge}, actCreateRecord{mode: barge}, actClaimTalker{},
				actTone{tone: toneRefused, answer: true},
				actHangupSupervisor{},
				actAuditEnd{reason: ReasonRefused, refusal: busy},
				actEndRecord{reason: ReasonRefused},
				actEnded{reason: ReasonRefused},
			},
		},
		{
			name:      "refused before anything was made: no record to end",
			from:      fresh(),
			events:    []event{evRefused{r: busy}, evTimeout{timer: timerTone}},
			wantState: store.StateEnded,
			want: []action{
				actTone{tone: toneRefused, answer: true}, actHangupSupervisor{},
				actAuditEnd{reason: ReasonRefused, refusal: busy}, actEnded{reason: ReasonRefused},
			},
		},
		{
			name:      "a refused supervisor who hangs up during the tone is not hung up again",
			from:      fresh(),
			events:    []event{evRefused{r: busy}, evHangupRequest{id: supCh}, evChannelEnd{id: supCh}, evTimeout{timer: timerTone}},
			wantState: store.StateEnded,
			want: []action{
				actTone{tone: toneRefused, answer: true},
				actAuditEnd{reason: ReasonRefused, refusal: busy}, actEnded{reason: ReasonRefused},
			},
		},
		{
			name:      "StasisStart of an unknown snoop is ignored",
			from:      fresh(),
			events:    []event{evStart{mode: spy}, evCallFound{channel: "agent"}, evStepDone{step: stepAuditJoin}, evStepDone{step: stepRecord}, evStepDone{step: stepBridge}, evChannelUp{id: "other"}},
			wantState: store.StateJoining,
			want:      []action{actFindCall{}, actAuditJoin{mode: spy}, actCreateRecord{mode: spy}, actCreateBridge{}, actSnoop{id: s1, mode: spy}},
		},
		{
			name:      "first switch to whisper: talker slot, audit, then the talk paths are made with the agent's ear open",
			from:      active(spy),
			events:    switchTo(active(spy), whisper),
			wantState: store.StateActive, wantMode: whisper, wantSnoop: s1,
			want: append([]action{actClaimTalker{req: dtmf(whisper)}, actAuditMode{req: dtmf(whisper)}},
				append(talkActs(whisper), actModeChanged{from: spy, to: whisper, snoop: s1})...),
		},
		{
			name:      "whisper to barge once the paths exist: one ear opened, nothing made",
			from:      active(whisper),
			events:    switchTo(active(whisper), barge),
			wantState: store.StateActive, wantMode: barge, wantSnoop: s1,
			want: []action{
				actAuditMode{req: dtmf(barge)},
				actEars{mode: barge, set: []earSetting{{ear: e2, open: true}}},
				actModeChanged{from: whisper, to: barge, snoop: s1},
			},
		},
		{
			name:      "barge to spy closes both ears and gives the slot back once nobody hears the supervisor",
			from:      active(barge),
			events:    switchTo(active(barge), spy),
			wantState: store.StateActive, wantMode: spy, wantSnoop: s1,
			want: []action{
				actAuditMode{req: dtmf(spy)},
				actEars{mode: spy, set: []earSetting{{ear: e1, open: false}, {ear: e2, open: false}}},
				actModeChanged{from: barge, to: spy, snoop: s1}, actReleaseTalker{},
			},
		},
		{
			name:      "spy to barge after talking before: the kept paths' ears open, no snoop made",
			from:      func() machine { m, _ := run(active(whisper), switchTo(active(whisper), spy)...); return m }(),
			events:    []event{dtmf(barge), evTalker{req: dtmf(barge)}, evModeAudited{req: dtmf(barge), ok: true}, evEarsSet{mode: barge}},
			wantState: store.StateActive, wantMode: barge, wantSnoop: s1,
			want: []action{
				actClaimTalker{req: dtmf(barge)}, actAuditMode{req: dtmf(barge)},
				actEars{mode: barge, set: []earSetting{{ear: e1, open: true}, {ear: e2, open: true}}},
				actModeChanged{from: spy, to: barge, snoop: s1},
			},
		},
		{
			name:      "an ear that cannot be muted: the talk paths go whole, the supervisor is back to listening",
			from:      active(whisper),
			events:    []event{dtmf(spy), evModeAudited{req: dtmf(spy), ok: true}, evEarsSet{mode: spy, err: errors.New("boom")}},
			wantState: store.StateActive, wantMode: spy, wantSnoop: s1,
			want: []action{
				actAuditMode{req: dtmf(spy)},
				actEars{mode: spy, set: []earSetting{{ear: e1, open: false}}},
				actDropSnoop{id: v1, critical: true}, actDropSnoop{id: e1, critical: true}, actDropSnoop{id: v2, critical: true}, actDropSnoop{id: e2, critical: true},
				actDestroyBridge{id: tb1}, actDestroyBridge{id: tb2},
				actModeChanged{from: whisper, to: spy, snoop: s1, fallback: true}, actReleaseTalker{},
			},
		},
		{
			name:      "the voice snoop ending means the supervisor's channel is going: the session ends",
			from:      active(whisper),
			events:    []event{evChannelEnd{id: v1}},
			wantState: store.StateEnded, wantMode: whisper, wantSnoop: s1,
			want: []action{
				actForget{id: v1},
				actDropSnoop{id: s1}, actDropSnoop{id: e1}, actDropSnoop{id: v2}, actDropSnoop{id: e2},
				actHangupSupervisor{}, actDestroyBridge{}, actDestroyBridge{id: tb1}, actDestroyBridge{id: tb2}, actReleaseTalker{},
				actAuditEnd{reason: ReasonSupervisorHangup, mode: whisper}, actEndRecord{reason: ReasonSupervisorHangup},
				actEnded{reason: ReasonSupervisorHangup, joined: true},
			},
		},
		{
			name:      "the talker slot is taken: the switch is refused and the mode stays",
			from:      active(spy),
			events:    []event{dtmf(barge), evTalker{req: dtmf(barge), code: RefuseTalkerBusy}},
			wantState: store.StateActive, wantMode: spy, wantSnoop: s1,
			want: []action{actClaimTalker{req: dtmf(barge)}, actModeRefused{req: dtmf(barge), code: RefuseTalkerBusy}},
		},
		{
			name:      "a switch that cannot be audited is not done",
			from:      active(barge),
			events:    []event{dtmf(spy), evModeAudited{req: dtmf(spy)}},
			wantState: store.StateActive, wantMode: barge, wantSnoop: s1,
			want: []action{actAuditMode{req: dtmf(spy)}, actModeRefused{req: dtmf(spy), code: RefuseStoreUnavailable}},
		},
		{
			name:      "a switch whose audit fails gives back the slot it claimed",
			from:      active(spy),
			events:    []event{dtmf(whisper), evTalker{req: dtmf(whisper)}, evModeAudited{req: dtmf(whisper)}},
			wantState: store.StateActive, wantMode: spy, wantSnoop: s1,
			want: []action{
				actClaimTalker{req: dtmf(whisper)}, actAuditMode{req: dtmf(whisper)},
				actModeRefused{req: dtmf(whisper), code: RefuseStoreUnavailable}, actReleaseTalker{},
			},
		},
		{
			name:      "an API request for no mode is answered, not left waiting",
			from:      active(spy),
			events:    []event{evModeWanted{mode: dialplan.ModeUnknown, via: "api", waiter: 3}},
			wantState: store.StateActive, wantMode: spy, wantSnoop: s1,
			want: []action{actReply{waiter: 3, code: replyInvalidMode}},
		},
		{
			name:      "back to spy gives the talker slot back once spy is audible",
			from:      active(whisper),
			events:    switchTo(active(whisper), spy),
			wantState: store.StateActive, wantMode: spy, wantSnoop: s1,
			want: []action{
				actAuditMode{req: dtmf(spy)}, actEars{mode: spy, set: []earSetting{{ear: e1, open: false}}},
				actModeChanged{from: whisper, to: spy, snoop: s1}, actReleaseTalker{},
			},
		},
		{
			name:      "the current mode's digit does nothing",
			from:      active(barge),
			events:    []event{dtmf(barge)},
			wantState: store.StateActive, wantMode: barge, wantSnoop: s1,
		},
		{
			name: "a switch asked while the talk paths are made: the ears of the mode wanted by then open",
			from: active(spy),
			events: append([]event{
				dtmf(whisper), evTalker{req: dtmf(whisper)}, evModeAudited{req: dtmf(whisper), ok: true},
				dtmf(barge), evModeAudited{req: dtmf(barge), ok: true}},
				talkMade(barge)...),
			wantState: store.StateActive, wantMode: barge, wantSnoop: s1,
			want: append(append([]action{
				actClaimTalker{req: dtmf(whisper)}, actAuditMode{req: dtmf(whisper)}, actMakeTalk{pairs: talkPairs},
				actAuditMode{req: dtmf(barge)}},
				talkActs(barge)[1:]...),
				actModeChanged{from: spy, to: barge, snoop: s1},
			),
		},
		{
			name:      "making the talk paths fails: they go whole; the mode stays and an unused talker slot goes back",
			from:      active(spy),
			events:    []event{dtmf(barge), evTalker{req: dtmf(barge)}, evModeAudited{req: dtmf(barge), ok: true}, evTalkFailed{err: errors.New("boom")}},
			wantState: store.StateActive, wantMode: spy, wantSnoop: s1,
			want: []action{
				actClaimTalker{req: dtmf(barge)}, actAuditMode{req: dtmf(barge)}, actMakeTalk{pairs: talkPairs},
				actDropSnoop{id: v1, critical: true}, actDropSnoop{id: e1, critical: true}, actDropSnoop{id: v2, critical: true}, actDropSnoop{id: e2, critical: true},
				actDestroyBridge{id: tb1}, actDestroyBridge{id: tb2}, actReleaseTalker{},
			},
		},
		{
			name:      "a failure while joining ends the session with an audible tone",
			from:      fresh(),
			events:    []event{evStart{mode: spy}, evCallFound{channel: "agent"}, evStepDone{step: stepAuditJoin}, evStepDone{step: stepRecord}, evStepDone{step: stepBridge}, evFailed{snoop: s1, err: errors.New("404")}, evTimeout{timer: timerTone}},
			wantState: store.StateEnded,
			want: []action{
				actFindCall{}, actAuditJoin{mode: spy}, actCreateRecord{mode: spy}, actCreateBridge{}, actSnoop{id: s1, mode: spy},
				actDropSnoop{id: s1}, actTone{tone: toneRefused, answer: true},
				actHangupSupervisor{}, actDestroyBridge{}, actAuditEnd{reason: ReasonError}, actEndRecord{reason: ReasonError}, actEnded{reason: ReasonError},
			},
		},
		{
			name:      "the snoop ending by itself means the call ended: busy tone, then everything goes",
			from:      active(whisper),
			events:    []event{evChannelEnd{id: s1}, evTimeout{timer: timerTone}},
			wantState: store.StateEnded, wantMode: whisper, wantSnoop: s1,
			want: []action{
				actForget{id: s1}, actDropSnoop{id: v1}, actDropSnoop{id: e1}, actDropSnoop{id: v2}, actDropSnoop{id: e2},
				actTone{tone: toneCallEnded},
				actHangupSupervisor{}, actDestroyBridge{}, actDestroyBridge{id: tb1}, actDestroyBridge{id: tb2}, actReleaseTalker{},
				actAuditEnd{reason: ReasonCallEnded, mode: whisper}, actEndRecord{reason: ReasonCallEnded},
				actEnded{reason: ReasonCallEnded, joined: true},
			},
		},
		{
			name: "a dropped old snoop ending is bookkeeping, not the call ending",
			from: func() machine {
				m, _ := run(active(spy), switchTo(active(spy), barge)...)
				m, _ = run(m, switchTo(m, spy)...)
				m, _ = run(m, evTalkFailed{err: errors.New("boom")})
				return m
			}(),
			events:    []event{evChannelEnd{id: e1}},
			wantState: store.StateActive, wantMode: spy, wantSnoop: s1,
			want: []action{actForget{id: e1}},
		},
		{
			name:      "supervisor leaves before the snoop started; its late StasisStart has it hung up again",
			from:      fresh(),
			events:    []event{evStart{mode: spy}, evCallFound{channel: "agent"}, evStepDone{step: stepAuditJoin}, evStepDone{step: stepRecord}, evStepDone{step: stepBridge}, evHangupRequest{id: supCh}, evChannelUp{id: s1}},
			wantState: store.StateEnded,
			want: []action{
				actFindCall{}, actAuditJoin{mode: spy}, actCreateRecord{mode: spy}, actCreateBridge{}, actSnoop{id: s1, mode: spy},
				actDropSnoop{id: s1}, actDestroyBridge{}, actAuditEnd{reason: ReasonSupervisorHangup},
				actEndRecord{reason: ReasonSupervisorHangup}, actEnded{reason: ReasonSupervisorHangup},
				actDropSnoop{id: s1},
			},
		},
		{
			name:      "nothing happens after the end",
			from:      active(spy),
			events:    []event{evLeave{reason: ReasonAPI}, dtmf(barge), evChannelEnd{id: s1}, evHangupRequest{id: supCh}, evLeave{reason: ReasonShutdown}},
			wantState: store.StateEnded, wantMode: spy, wantSnoop: s1,
			want: []action{
				actDropSnoop{id: s1}, actHangupSupervisor{}, actDestroyBridge{},
				actAuditEnd{reason: ReasonAPI, mode: spy}, actEndRecord{reason: ReasonAPI}, actEnded{reason: ReasonAPI, joined: true},
				actForget{id: s1},
			},
		},
		{
			name:      "digits while joining are ignored",
			from:      fresh(),
			events:    append([]event{evStart{mode: spy}, dtmf(barge)}, joinEvents(spy)[1:]...),
			wantState: store.StateActive, wantMode: spy, wantSnoop: s1,
			want: []action{
				actFindCall{}, actAuditJoin{mode: spy}, actCreateRecord{mode: spy}, actCreateBridge{},
				actSnoop{id: s1, mode: spy}, actBridgeSnoop{id: s1}, actJoinSupervisor{answer: true},
				actStarted{mode: spy}, actModeChanged{from: dialplan.ModeUnknown, to: spy, snoop: s1},
			},
		},
		{
			name:      "API: answered, the same call found, joined without a second audit or record",
			from:      freshAPI(),
			events:    []event{evRing{}, evChannelUp{id: supCh}, evCallFound{channel: "agent"}, evStepDone{step: stepBridge}, evChannelUp{id: s1}, evSnoopBridged{id: s1}, evStepDone{step: stepSupervisor}},
			wantState: store.StateActive, wantMode: spy, wantSnoop: s1,
			want: []action{
				actMarkJoining{}, actFindCall{}, actCreateBridge{}, actSnoop{id: s1, mode: spy}, actBridgeSnoop{id: s1},
				actJoinSupervisor{}, actStarted{mode: spy}, actModeChanged{from: dialplan.ModeUnknown, to: spy, snoop: s1},
			},
		},
		{
			name:      "API: the agent's call changed while the phone rang: refused, record ended",
			from:      freshAPI(),
			events:    []event{evRing{}, evChannelUp{id: supCh}, evCallFound{channel: "other"}, evTimeout{timer: timerTone}},
			wantState: store.StateEnded,
			want: []action{
				actMarkJoining{}, actFindCall{}, actTone{tone: toneRefused}, actHangupSupervisor{},
				actAuditEnd{reason: ReasonRefused, refusal: &refusal{code: RefuseNoActiveCall, err: errCallChanged}},
				actEndRecord{reason: ReasonRefused}, actEnded{reason: ReasonRefused},
			},
		},
		{
			name:      "API: busy phone (cause 17) ends the session busy, nobody to hang up",
			from:      freshAPI(),
			events:    []event{evRing{}, evHangupRequest{id: supCh}, evChannelEnd{id: supCh, destroyed: true, cause: 17}},
			wantState: store.StateEnded,
			want:      []action{actAuditEnd{reason: ReasonBusy}, actEndRecord{reason: ReasonBusy}, actEnded{reason: ReasonBusy}},
		},
		{
			name:      "API: ringing too long hangs the phone up (no answer)",
			from:      freshAPI(),
			events:    []event{evRing{}, evTimeout{timer: timerRing}},
			wantState: store.StateEnded,
			want:      []action{actHangupSupervisor{}, actAuditEnd{reason: ReasonNoAnswer}, actEndRecord{reason: ReasonNoAnswer}, actEnded{reason: ReasonNoAnswer}},
		},
		{
			name:      "API: the originate failing ends the session as an error, the leg hung up in case it exists",
			from:      freshAPI(),
			events:    []event{evRing{}, evOriginateFailed{err: errors.New("timeout")}},
			wantState: store.StateEnded,
			want:      []action{actHangupSupervisor{}, actAuditEnd{reason: ReasonError}, actEndRecord{reason: ReasonError}, actEnded{reason: ReasonError}},
		},
		{
			name:      "API mode requests: not active while ringing, answered when audible, the same mode at once",
			from:      active(spy),
			events:    append([]event{evModeWanted{mode: spy, via: "api", waiter: 1}, evModeWanted{mode: whisper, via: "api", waiter: 2}, evTalker{req: evModeWanted{mode: whisper, via: "api", waiter: 2}}, evModeAudited{req: evModeWanted{mode: whisper, via: "api", waiter: 2}, ok: true}}, talkMade(whisper)...),
			wantState: store.StateActive, wantMode: whisper, wantSnoop: s1,
			want: append(append([]action{
				actReply{waiter: 1},
				actClaimTalker{req: evModeWanted{mode: whisper, via: "api", waiter: 2}},
				actAuditMode{req: evModeWanted{mode: whisper, via: "api", waiter: 2}}},
				talkActs(whisper)...),
				actModeChanged{from: spy, to: whisper, snoop: s1}, actReply{waiter: 2},
			),
		},
		{
			name: "API mode request overtaken by another is answered superseded",
			from: active(spy),
			events: []event{
				evModeWanted{mode: barge, via: "api", waiter: 1}, evTalker{req: evModeWanted{mode: barge, via: "api", waiter: 1}}, evModeAudited{req: evModeWanted{mode: barge, via: "api", waiter: 1}, ok: true},
				evModeWanted{mode: whisper, via: "api", waiter: 2}, evModeAudited{req: evModeWanted{mode: whisper, via: "api", waiter: 2}, ok: true},
			},
			wantState: store.StateActive, wantMode: spy, wantSnoop: s1,
			want: []action{
				actClaimTalker{req: evModeWanted{mode: barge, via: "api", waiter: 1}},
				actAuditMode{req: evModeWanted{mode: barge, via: "api", waiter: 1}},
				actMakeTalk{pairs: talkPairs},
				actAuditMode{req: evModeWanted{mode: whisper, via: "api", waiter: 2}},
				actReply{waiter: 1, code: replySuperseded},
			},
		},
		{
			name:      "API mode request while ringing is not active",
			from:      freshAPI(),
			events:    []event{evRing{}, evModeWanted{mode: barge, via: "api", waiter: 7}},
			wantState: store.StateRinging,
			want:      []action{actReply{waiter: 7, code: replyNotActive}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, acts := run(tt.from, tt.events...)
			if m.state != tt.wantState || m.mode != tt.wantMode || m.snoop != tt.wantSnoop {
				t.Errorf("state = %s/%s/%q, want %s/%s/%q", m.state, m.mode, m.snoop, tt.wantState, tt.wantMode, tt.wantSnoop)
			}
			if got := noTimers(acts); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("actions:\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// TestMachineTalkPathsNeverOpenWhatWasClosed: the sequences a review found, each of which must
// leave nobody hearing a supervisor whose mode does not talk.
func TestMachineTalkPathsNeverOpenWhatWasClosed(t *testing.T) {
	spy, whisper, barge := dialplan.Spy, dialplan.Whisper, dialplan.Barge
	dtmf := func(m dialplan.Mode) evModeWanted { return evModeWanted{mode: m, via: "dtmf"} }
	opened := func(acts []action) bool {
		for _, a := range acts {
			if e, ok := a.(actEars); ok {
				for _, s := range e.set {
					if s.open {
						return true
					}
				}
			}
		}
		return false
	}

	// Whisper asked, then spy while the paths are made, then a barge whose audit fails (the
	// slot is given back): the paths come up with every ear muted and stay so.
	m, acts := run(active(spy), dtmf(whisper), evTalker{req: dtmf(whisper)}, evModeAudited{req: dtmf(whisper), ok: true},
		dtmf(spy), evModeAudited{req: dtmf(spy), ok: true},
		dtmf(barge), evModeAudited{req: dtmf(barge)})
	if !containsAction(acts, actReleaseTalker{}) {
		t.Fatalf("the slot claimed for whisper was kept after going back to spy: %#v", acts)
	}
	m, acts = run(m, append(talkMade(spy)[:6], evTalkerReleased{})...)
	if opened(acts) || m.mode != spy || m.switching || m.talk.state != talkReady {
		t.Fatalf("paths made after the supervisor went back to spy: mode %s switching %v opened %v %#v", m.mode, m.switching, opened(acts), acts)
	}
	for _, p := range m.talk.pairs {
		if p.open {
			t.Fatalf("an ear open in spy: %+v", p)
		}
	}

	// Adopted with its talk paths and a quieter mode wanted (the old owner went mid-switch, or
	// lost the slot): every ear is set again for spy, none opened.
	ad := active(whisper)
	ad.want, ad.talker = spy, false
	ad, acts = run(ad, evAdopted{})
	if len(acts) != 1 || opened(acts) {
		t.Fatalf("adopted mid-switch to spy: %#v", acts)
	}
	if e := acts[0].(actEars); len(e.set) != earCount || e.mode != spy {
		t.Fatalf("adoption sets %#v; want every ear set for spy", e)
	}
	if ad, _ = run(ad, evEarsSet{mode: spy}); ad.mode != spy {
		t.Fatalf("after adoption the mode is %s", ad.mode)
	}

	// Adopted without its talk paths, their making fails: recorded as listening (the first mode
	// recorded by this owner), so a later adoption does not make them again.
	re := active(spy)
	re.want, re.talker, re.announced = whisper, true, false
	re, acts = run(re, evAdopted{})
	if !containsAction(acts, actMakeTalk{pairs: talkPairs}) {
		t.Fatalf("adopted whisper without paths: %#v", acts)
	}
	re, acts = run(re, evTalkFailed{err: errors.New("boom")})
	if !containsAction(acts, actModeChanged{from: dialplan.ModeUnknown, to: spy, snoop: s1, fallback: true}) || re.want != spy {
		t.Fatalf("failed re-make after adoption: want %s %#v", re.want, acts)
	}

	// A talk snoop that cannot be hung up ends the session rather than stay.
	m, _ = run(active(whisper), dtmf(spy), evModeAudited{req: dtmf(spy), ok: true}, evEarsSet{mode: spy, err: errors.New("boom")})
	m, acts = run(m, evDropFailed{id: e1})
	if m.end == nil || m.end.reason != ReasonError || !containsAction(acts, actDropSnoop{id: s1}) {
		t.Fatalf("a talk snoop left up: end %+v %#v", m.end, acts)
	}

	// A talk snoop that comes up after being dropped is hung up again.
	m, _ = run(active(spy), dtmf(whisper), evTalker{req: dtmf(whisper)}, evModeAudited{req: dtmf(whisper), ok: true}, evTalkFailed{err: errors.New("timeout")})
	if _, acts = run(m, evChannelUp{id: e2}); !reflect.DeepEqual(acts, []action{actDropSnoop{id: e2}}) {
		t.Fatalf("late StasisStart of a dropped ear: %#v", acts)
	}
}

// TestMachineTimers: each wait has its timer, started and stopped with it.
func TestMachineTimers(t *testing.T) {
	_, acts := run(fresh(), evStart{mode: dialplan.Spy}, evCallFound{channel: "agent"}, evStepDone{step: stepAuditJoin}, evStepDone{step: stepRecord}, evStepDone{step: stepBridge})
	if !reflect.DeepEqual(acts[len(acts)-1], actTimer{timer: timerSnoop, d: tcfg.SnoopTimeout}) {
		t.Errorf("snoop made without its timer: %#v", acts)
	}
	m, _ := run(fresh(), evStart{mode: dialplan.Spy}, evCallFound{channel: "agent"}, evStepDone{step: stepAuditJoin}, evStepDone{step: stepRecord}, evStepDone{step: stepBridge})
	m, acts = run(m, evTimeout{timer: timerSnoop})
	if m.end == nil || m.end.reason != ReasonError {
		t.Errorf("snoop timeout while joining: end %+v, want error", m.end)
	}
	if !containsAction(acts, actTimer{timer: timerTone, d: tcfg.EndTone}) {
		t.Errorf("no tone timer: %#v", acts)
	}
	_, acts = run(freshAPI(), evRing{})
	if !reflect.DeepEqual(acts, []action{actTimer{timer: timerRing, d: tcfg.RingTimeout}}) {
		t.Errorf("ring: %#v", acts)
	}
	m, acts = run(active(dialplan.Spy), evModeWanted{mode: dialplan.Spy})
	if len(acts) != 0 || m.state != store.StateActive {
		t.Errorf("no-op request made actions %#v", acts)
	}
	// Talk paths whose snoops never start are dropped; the session goes on listening.
	m, acts = run(active(dialplan.Spy), evModeWanted{mode: dialplan.Barge, via: "dtmf"}, evTalker{req: evModeWanted{mode: dialplan.Barge, via: "dtmf"}}, evModeAudited{req: evModeWanted{mode: dialplan.Barge, via: "dtmf"}, ok: true})
	if !containsAction(acts, actTimer{timer: timerSnoop, d: tcfg.SnoopTimeout}) {
		t.Errorf("talk paths made without their timer: %#v", acts)
	}
	m, acts = run(m, evChannelUp{id: v1}, evTimeout{timer: timerSnoop})
	if m.state != store.StateActive || m.mode != dialplan.Spy || m.switching || m.talk.state != talkNone ||
		!containsAction(acts, actDropSnoop{id: v1, critical: true}) || !containsAction(acts, actDestroyBridge{id: tb2}) || !containsAction(acts, actReleaseTalker{}) {
		t.Errorf("talk timeout: state %s mode %s switching %v talk %v actions %#v", m.state, m.mode, m.switching, m.talk.state, acts)
	}
}

func containsAction(acts []action, want action) bool {
	for _, a := range acts {
		if reflect.DeepEqual(a, want) {
			return true
		}
	}
	return false
}

// TestMachineSpyHasNoWhisperPath: a session that only ever listens makes no talk path at all;
// once the supervisor has talked, whatever the order of switches, the ears open are exactly those
// of the mode heard (none in spy), nothing is made again, and every id is new (Asterisk answers
// 500 to a reused snoopId, 409 to a reused bridge id).
func TestMachineSpyHasNoWhisperPath(t *testing.T) {
	m, acts := run(active(dialplan.Spy), switchTo(active(dialplan.Spy), dialplan.Spy)...)
	for range 5 {
		var more []action
		m, more = run(m, evModeWanted{mode: dialplan.Spy, via: "dtmf"}, evModeWanted{mode: dialplan.ModeUnknown, via: "dtmf"})
		acts = append(acts, more...)
	}
	for _, a := range acts {
		switch a.(type) {
		case actMakeTalk, actEars, actBridgeTalk:
			t.Fatalf("a listening session made a talk path: %#v", a)
		}
	}
	if m.talk.state != talkNone {
		t.Fatalf("talk paths %v in a session that never talked", m.talk.state)
	}

	modes := []dialplan.Mode{dialplan.Spy, dialplan.Whisper, dialplan.Barge}
	seen := map[string]bool{string(s1): true}
	makes := 0
	for i := range 60 {
		mode := modes[(i*7+i/5)%3]
		before := m
		m, acts = run(m, switchTo(m, mode)...)
		for _, a := range acts {
			switch a := a.(type) {
			case actMakeTalk:
				makes++
				for _, p := range a.pairs {
					for _, id := range []string{string(p.voice), string(p.ear), string(p.bridge)} {
						if seen[id] {
							t.Fatalf("id %s reused", id)
						}
						seen[id] = true
					}
				}
			}
		}
		if m.mode != mode || m.switching {
			t.Fatalf("after asking for %s: mode %s switching %v", mode, m.mode, m.switching)
		}
		if mode != dialplan.Spy || before.talk.state != talkNone {
			want := earsFor(mode)
			for k, p := range m.talk.pairs {
				if p.open != want[k] {
					t.Fatalf("in %s ear %d open=%v", mode, k, p.open)
				}
			}
		}
		if m.talker != talks(mode) {
			t.Fatalf("in %s the talker slot is held=%v", mode, m.talker)
		}
	}
	if makes != 1 {
		t.Fatalf("talk paths made %d times; want once", makes)
	}
	if earsFor(dialplan.Spy) != [earCount]bool{} || earsFor(dialplan.Whisper) != [earCount]bool{true, false} || earsFor(dialplan.Barge) != [earCount]bool{true, true} {
		t.Fatal("ears: spy none, whisper the agent's, barge both")
	}
	if earWhisper(false) != ari.DirOut || earWhisper(true) != ari.DirIn {
		t.Fatal("ear whisper directions: out reaches the agent, in the customer")
	}
}

func FuzzMachine(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{0, 1, 2, 2, 2, 3, 4, 5, 9, 9, 10, 3, 11})
	f.Add([]byte{13, 3, 3, 2, 1, 4, 4, 1, 1, 5, 14, 15})
	f.Fuzz(func(t *testing.T, script []byte) {
		m := fresh()
		if len(script) > 0 && script[0]&1 == 1 {
			m = freshAPI()
		}
		ended, released, claimedOnce := 0, 0, false
		for i, b := range script {
			var e event
			id := m.pending
			switch b >> 6 {
			case 1:
				id = m.snoop
			case 2:
				id = m.talk.pairs[int(b>>4)%earCount].voice
			case 3:
				id = m.talk.pairs[int(b>>4)%earCount].ear
			}
			mode := dialplan.Mode(int(b>>4) % 4)
			req := evModeWanted{mode: mode, via: "fuzz", waiter: int(b>>6) % 2}
			switch b % 19 {
			case 16:
				e = evTalkBridged{pair: int(b>>4) % earCount, open: b&0x20 != 0}
			case 17:
				var err error
				if b&0x20 != 0 {
					err = errors.New("x")
				}
				e = evEarsSet{mode: m.want, err: err}
			case 18:
				e = evTalkFailed{err: errors.New("x")}
			case 0:
				e = evStart{mode: mode}
			case 1:
				e = evCallFound{channel: "agent"}
			case 2:
				e = evStepDone{step: m.step}
			case 3:
				e = evChannelUp{id: id}
			case 4:
				e = evSnoopBridged{id: id}
			case 5:
				e = req
			case 6:
				e = evTalker{req: req}
			case 7:
				e = evModeAudited{req: req, ok: b&0x40 == 0}
			case 8:
				e = evChannelEnd{id: id}
			case 9:
				e = evHangupRequest{id: supCh}
			case 10:
				e = evFailed{snoop: id}
			case 11:
				e = evLeave{reason: ReasonAPI}
			case 12:
				e = evTimeout{timer: timer(int(b>>4) % 3)}
			case 13:
				e = evRing{}
			case 14:
				e = evChannelUp{id: supCh}
			case 15:
				e = evRefused{r: &refusal{code: RefuseNoActiveCall, err: errors.New("x")}}
			}
			before := m
			var acts []action
			m, acts = next(tcfg, m, e)
			if before.state == store.StateEnded {
				for _, a := range acts {
					if r, ok := a.(actReply); !ok || r.code != replyEnded {
						t.Fatalf("step %d: actions after the end (only \"ended\" replies may come): %#v", i, acts)
					}
				}
			}
			for _, a := range acts {
				switch a := a.(type) {
				case actEnded:
					ended++
					if a.reason == "" {
						t.Fatalf("step %d: ended without a reason", i)
					}
				case actClaimTalker:
					claimedOnce = true
				case actReleaseTalker:
					released++
				case actSnoop:
					if a.mode != dialplan.Spy {
						t.Fatalf("step %d: a listening snoop made for %s", i, a.mode)
					}
				case actMakeTalk, actEars, actBridgeTalk:
					if !talks(m.want) && !talks(before.want) && before.talk.state == talkNone && m.talk.state == talkNone {
						t.Fatalf("step %d: talk path action %#v in a session that never asked to talk", i, a)
					}
				}
			}
			if ended > 1 {
				t.Fatalf("step %d: ended twice", i)
			}
			if m.state == store.StateActive && !m.switching && m.talk.state == talkReady {
				open := earsFor(m.mode)
				for k, p := range m.talk.pairs {
					if p.open != open[k] {
						t.Fatalf("step %d: in %s ear %d open=%v", i, m.mode, k, p.open)
					}
				}
			}
			if m.state == store.StateActive && (m.snoop == "" || !m.mode.Valid()) {
				t.Fatalf("step %d: active without a snoop or mode: %+v", i, m)
			}
			if (m.state == store.StateEnded) != (ended == 1) {
				t.Fatalf("step %d: state %s but %d end actions", i, m.state, ended)
			}
			if m.state == store.StateEnded && m.talker && released == 0 {
				t.Fatalf("step %d: ended holding the talker slot without releasing it", i)
			}
		}
		_ = claimedOnce
	})
}

// TestREADMEListsEndReasons keeps the README's list of end reasons true to the code.
func TestREADMEListsEndReasons(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{ReasonSupervisorHangup, ReasonCallEnded, ReasonAPI, ReasonError, ReasonShutdown,
		ReasonNoAnswer, ReasonBusy, ReasonRejected, ReasonRefused, ReasonLost} {
		if !strings.Contains(string(b), "`"+r+"`") {
			t.Errorf("README.md does not list end reason %q", r)
		}
	}
}

// A supervisor who hangs up during the join makes a step on their channel fail; the REST error
// may come before their channel's end. The join waits FailGrace for that end: it is a
// supervisor_hangup then, and a failure (error, or the refusal) only when no end comes.
func TestMachineFailureDuringJoinWaitsForTheHangup(t *testing.T) {
	cfg := tcfg
	cfg.FailGrace = 250 * time.Millisecond
	feed := func(m machine, evs ...event) (machine, []action) {
		var all []action
		for _, e := range evs {
			var acts []action
			m, acts = next(cfg, m, e)
			all = append(all, acts...)
		}
		return m, all
	}
	upToSupervisor := joinEvents(dialplan.Spy)
	upToSupervisor = upToSupervisor[:len(upToSupervisor)-1] // all but the supervisor's step
	failed := evFailed{err: errors.New("add supervisor to bridge: 400 Channel not found")}
	supEnd := evChannelEnd{id: supCh}
	asterisk := &refusal{code: RefuseAsterisk, err: errors.New("create bridge: 500")}

	m, acts := feed(fresh(), append(upToSupervisor, failed)...)
	if m.step != stepFailing || m.state == store.StateEnded {
		t.Fatalf("after the failure: step %v state %s", m.step, m.state)
	}
	if last := acts[len(acts)-1]; last != (actTimer{timer: timerFailGrace, d: cfg.FailGrace}) {
		t.Fatalf("last action %#v, want the grace timer", last)
	}
	// A second failure in the grace changes nothing.
	if m2, more := feed(m, failed); len(more) != 0 || m2.step != stepFailing {
		t.Fatalf("second failure: %v %#v", m2.step, more)
	}

	hung, acts := feed(m, supEnd)
	if hung.end == nil || hung.end.reason != ReasonSupervisorHangup {
		t.Fatalf("hangup in the grace ended as %+v, want supervisor_hangup", hung.end)
	}
	for _, a := range acts {
		if a, ok := a.(actAuditEnd); ok && a.reason != ReasonSupervisorHangup {
			t.Errorf("audited %+v", a)
		}
	}

	timedOut, _ := feed(m, evTimeout{timer: timerFailGrace})
	if timedOut.end == nil || timedOut.end.reason != ReasonError {
		t.Fatalf("no hangup in the grace ended as %+v, want error", timedOut.end)
	}

	// The same for a step that refuses on Asterisk's account (the bridge): refused, unless the
	// supervisor hung up meanwhile.
	early := joinEvents(dialplan.Spy)[:4] // start, call, audit, record
	m, _ = feed(fresh(), append(early, evRefused{r: asterisk})...)
	if m.step != stepFailing {
		t.Fatalf("Asterisk refusal: step %v", m.step)
	}
	if r, _ := feed(m, evTimeout{timer: timerFailGrace}); r.end == nil || r.end.reason != ReasonRefused || r.end.refusal != asterisk {
		t.Fatalf("Asterisk refusal after the grace: %+v", r.end)
	}
	if r, _ := feed(m, supEnd); r.end == nil || r.end.reason != ReasonSupervisorHangup {
		t.Fatalf("Asterisk refusal then hangup: %+v", r.end)
	}
	// Other refusals are not Asterisk's doing: at once.
	busy := &refusal{code: RefuseTalkerBusy, err: errors.New("busy")}
	if r, _ := feed(fresh(), append(early, evRefused{r: busy})...); r.end == nil || r.end.reason != ReasonRefused {
		t.Fatalf("talker busy: %+v", r.end)
	}
}
