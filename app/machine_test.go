package app

import (
	"errors"
	"reflect"
	"testing"

	"github.com/earpiece/earpiece/dialplan"
)

// run feeds events to next from m and returns the final state and every action, in order.
func run(m machine, events ...event) (machine, []action) {
	var all []action
	for _, e := range events {
		var acts []action
		m, acts = next(m, e)
		all = append(all, acts...)
	}
	return m, all
}

func fresh() machine { return machine{snoopPrefix: "s-"} }

// active returns a machine joined in mode with snoop s-1 in the bridge.
func active(mode dialplan.Mode) machine {
	m, _ := run(fresh(), evStart{mode: mode}, evSnoopUp{id: "s-1"}, evSnoopBridged{id: "s-1"})
	return m
}

func TestMachine(t *testing.T) {
	spy, whisper, barge := dialplan.Spy, dialplan.Whisper, dialplan.Barge
	tests := []struct {
		name      string
		from      machine
		events    []event
		wantPhase phase
		wantMode  dialplan.Mode
		wantSnoop string
		want      []action
	}{
		{
			name:      "join in spy: snoop, bridge it, then the supervisor",
			from:      fresh(),
			events:    []event{evStart{mode: spy}, evSnoopUp{id: "s-1"}, evSnoopBridged{id: "s-1"}},
			wantPhase: phaseActive, wantMode: spy, wantSnoop: "s-1",
			want: []action{
				actSnoop{id: "s-1", mode: spy},
				actBridgeSnoop{id: "s-1"},
				actJoinSupervisor{},
				actModeChanged{from: dialplan.ModeUnknown, to: spy},
			},
		},
		{
			name:      "invalid start mode does nothing",
			from:      fresh(),
			events:    []event{evStart{mode: dialplan.ModeUnknown}},
			wantPhase: phaseJoining,
		},
		{
			name:      "StasisStart of an unknown snoop is ignored",
			from:      fresh(),
			events:    []event{evStart{mode: spy}, evSnoopUp{id: "other"}},
			wantPhase: phaseJoining,
			want:      []action{actSnoop{id: "s-1", mode: spy}},
		},
		{
			name:      "switch is make-before-break: new snoop bridged before the old one goes",
			from:      active(spy),
			events:    []event{evModeWanted{mode: whisper}, evSnoopUp{id: "s-2"}, evSnoopBridged{id: "s-2"}},
			wantPhase: phaseActive, wantMode: whisper, wantSnoop: "s-2",
			want: []action{
				actSnoop{id: "s-2", mode: whisper},
				actBridgeSnoop{id: "s-2"},
				actDropSnoop{id: "s-1"},
				actModeChanged{from: spy, to: whisper},
			},
		},
		{
			name:      "the current mode's digit does nothing",
			from:      active(barge),
			events:    []event{evModeWanted{mode: barge}},
			wantPhase: phaseActive, wantMode: barge, wantSnoop: "s-1",
		},
		{
			name: "a switch asked during a switch runs after it",
			from: active(spy),
			events: []event{
				evModeWanted{mode: whisper}, evModeWanted{mode: barge},
				evSnoopUp{id: "s-2"}, evSnoopBridged{id: "s-2"},
				evSnoopUp{id: "s-3"}, evSnoopBridged{id: "s-3"},
			},
			wantPhase: phaseActive, wantMode: barge, wantSnoop: "s-3",
			want: []action{
				actSnoop{id: "s-2", mode: whisper},
				actBridgeSnoop{id: "s-2"},
				actDropSnoop{id: "s-1"},
				actModeChanged{from: spy, to: whisper},
				actSnoop{id: "s-3", mode: barge},
				actBridgeSnoop{id: "s-3"},
				actDropSnoop{id: "s-2"},
				actModeChanged{from: whisper, to: barge},
			},
		},
		{
			name:      "back to the current mode during a switch: the switch completes, then returns",
			from:      active(spy),
			events:    []event{evModeWanted{mode: barge}, evModeWanted{mode: spy}, evSnoopUp{id: "s-2"}, evSnoopBridged{id: "s-2"}},
			wantPhase: phaseActive, wantMode: barge, wantSnoop: "s-2",
			want: []action{
				actSnoop{id: "s-2", mode: barge},
				actBridgeSnoop{id: "s-2"},
				actDropSnoop{id: "s-1"},
				actModeChanged{from: spy, to: barge},
				actSnoop{id: "s-3", mode: spy},
			},
		},
		{
			name:      "a failed switch is abandoned; the mode stays",
			from:      active(spy),
			events:    []event{evModeWanted{mode: barge}, evFailed{snoop: "s-2", err: errors.New("boom")}},
			wantPhase: phaseActive, wantMode: spy, wantSnoop: "s-1",
			want: []action{actSnoop{id: "s-2", mode: barge}, actDropSnoop{id: "s-2"}},
		},
		{
			name:      "a failure while joining ends the session with an audible tone",
			from:      fresh(),
			events:    []event{evStart{mode: spy}, evFailed{snoop: "s-1", err: errors.New("404")}},
			wantPhase: phaseEnding,
			want: []action{
				actSnoop{id: "s-1", mode: spy},
				actTeardown{reason: ReasonError, tone: toneRefused, hangupSupervisor: true},
			},
		},
		{
			name:      "the snoop ending by itself means the call ended",
			from:      active(whisper),
			events:    []event{evSnoopGone{id: "s-1"}},
			wantPhase: phaseEnding, wantMode: whisper, wantSnoop: "s-1",
			want: []action{actTeardown{reason: ReasonCallEnded, tone: toneCallEnded, hangupSupervisor: true}},
		},
		{
			name:      "a dropped old snoop ending is not the call ending",
			from:      active(spy),
			events:    []event{evSnoopGone{id: "s-0"}},
			wantPhase: phaseActive, wantMode: spy, wantSnoop: "s-1",
		},
		{
			name:      "supervisor leaves before the snoop started",
			from:      fresh(),
			events:    []event{evStart{mode: spy}, evSupervisorGone{}, evSnoopUp{id: "s-1"}},
			wantPhase: phaseEnding,
			want: []action{
				actSnoop{id: "s-1", mode: spy},
				actTeardown{reason: ReasonSupervisorHangup},
			},
		},
		{
			name:      "nothing happens after teardown",
			from:      active(spy),
			events:    []event{evLeave{reason: ReasonAPI}, evModeWanted{mode: barge}, evSnoopGone{id: "s-1"}, evSupervisorGone{}},
			wantPhase: phaseEnding, wantMode: spy, wantSnoop: "s-1",
			want: []action{actTeardown{reason: ReasonAPI, hangupSupervisor: true}},
		},
		{
			name:      "mode requests while joining are ignored",
			from:      fresh(),
			events:    []event{evStart{mode: spy}, evModeWanted{mode: barge}, evSnoopUp{id: "s-1"}, evSnoopBridged{id: "s-1"}},
			wantPhase: phaseActive, wantMode: spy, wantSnoop: "s-1",
			want: []action{
				actSnoop{id: "s-1", mode: spy},
				actBridgeSnoop{id: "s-1"},
				actJoinSupervisor{},
				actModeChanged{from: dialplan.ModeUnknown, to: spy},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, acts := run(tt.from, tt.events...)
			if m.phase != tt.wantPhase || m.mode != tt.wantMode || string(m.snoop) != tt.wantSnoop {
				t.Errorf("state = %s/%s/%q, want %s/%s/%q", m.phase, m.mode, m.snoop, tt.wantPhase, tt.wantMode, tt.wantSnoop)
			}
			if !reflect.DeepEqual(acts, tt.want) {
				t.Errorf("actions:\n got %#v\nwant %#v", acts, tt.want)
			}
		})
	}
}

// TestMachineSpyHasNoWhisperPath: whatever happens, a snoop made for spy has no whisper
// direction, and every snoop id is new (Asterisk answers 500 to a reused snoopId).
func TestMachineSpyHasNoWhisperPath(t *testing.T) {
	modes := []dialplan.Mode{dialplan.Spy, dialplan.Whisper, dialplan.Barge}
	m := active(dialplan.Spy)
	seen := map[string]bool{"s-1": true}
	for i := 0; i < 30; i++ {
		var acts []action
		m, acts = next(m, evModeWanted{mode: modes[(i*7)%3]})
		for _, a := range acts {
			if s, ok := a.(actSnoop); ok {
				if seen[string(s.id)] {
					t.Fatalf("snoop id %s reused", s.id)
				}
				seen[string(s.id)] = true
				if s.mode == dialplan.Spy && whisperDir(s.mode) != "none" {
					t.Fatalf("spy snoop with whisper %s", whisperDir(s.mode))
				}
				m, _ = run(m, evSnoopUp{id: s.id}, evSnoopBridged{id: s.id})
			}
		}
	}
	if whisperDir(dialplan.Whisper) != "out" || whisperDir(dialplan.Barge) != "both" {
		t.Fatal("whisper directions do not follow ASTERISK-FACTS")
	}
}

func FuzzMachine(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{3, 3, 2, 1, 4, 4, 1, 1, 5})
	f.Fuzz(func(t *testing.T, script []byte) {
		m := fresh()
		for i, b := range script {
			var e event
			id := m.pending
			if b&0x80 != 0 {
				id = m.snoop
			}
			switch b % 8 {
			case 0:
				e = evStart{mode: dialplan.Mode(int(b>>3) % 4)}
			case 1:
				e = evSnoopUp{id: id}
			case 2:
				e = evSnoopBridged{id: id}
			case 3:
				e = evModeWanted{mode: dialplan.Mode(int(b>>3) % 4)}
			case 4:
				e = evSnoopGone{id: id}
			case 5:
				e = evSupervisorGone{}
			case 6:
				e = evFailed{snoop: id}
			case 7:
				e = evLeave{reason: "api"}
			}
			var acts []action
			m, acts = next(m, e)
			for _, a := range acts {
				if td, ok := a.(actTeardown); ok && td.reason == "" {
					t.Fatalf("step %d: teardown without a reason", i)
				}
			}
			if m.phase == phaseActive && (m.snoop == "" || !m.mode.Valid()) {
				t.Fatalf("step %d: active without a snoop or mode: %+v", i, m)
			}
		}
	})
}
