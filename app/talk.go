package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// Talk paths: how the supervisor's voice reaches the call, and why a switch is one mute.
//
// The session bridge holds the supervisor and ONE snoop on the agent's channel with spy=both and
// whisper=none: the supervisor hears both parties, and that bridge never changes after the join.
// A mode that talks needs a path for the supervisor's voice; it is made the first time the
// supervisor talks (a session that only ever spies has none, so no later failure can make a
// silent monitor audible) and then kept until the session ends. There are two paths, one per
// party that may hear the supervisor; each is a two-channel bridge of its own holding
//
//   - a "voice": a snoop on the SUPERVISOR's channel with spy=in (what they say), and
//   - an "ear": a snoop on the AGENT's channel with spy=none that whispers what it is given into
//     the agent's ear (whisper=out) or, as if the agent had said it, to the customer
//     (whisper=in).
//
// An ear that its party must not hear is muted with ARI's channel mute in direction out (frames
// the bridge writes to it are dropped, so nothing is whispered). A mode is then a set of open
// ears: spy none, whisper the agent's, barge both; a switch unmutes or mutes one or two ears,
// each a single cheap ARI call, with no snoop made and no bridge touched. Neither bridge ever
// holds more than two channels, so Asterisk keeps its simple two-party technology and never
// re-plumbs a bridge (a third channel would move it to softmix and back). Going to whisper or
// barge from barge or whisper leaves the agent's ear as it is: the agent never loses the
// supervisor's voice there.
//
// If anything about the paths fails — making them, or a mute or unmute — they are dropped whole
// (their snoops hung up, their bridges destroyed) and the supervisor is back to listening: a
// failure never leaves the supervisor audible where the mode says they are not.

// Parties a talk path whispers to (index into talkPaths.pairs).
const (
	earAgent    = 0 // whisper=out on the agent's channel: the agent hears it
	earCustomer = 1 // whisper=in on the agent's channel: the customer hears it
	earCount    = 2
)

// talkState is how far the talk paths are.
type talkState int

const (
	talkNone   talkState = iota // not made (the supervisor has not talked)
	talkMaking                  // snoops and bridges being made
	talkReady                   // both paths bridged; switches set the ears
)

// talkPaths is the session's talk paths (a value: copying the machine copies it).
type talkPaths struct {
	state talkState
	pairs [earCount]talkPair
}

// talkPair is one path: a voice snoop and an ear snoop in a bridge of their own.
type talkPair struct {
	bridge      ari.BridgeID
	voice, ear  ari.ChannelID
	voiceUp     bool // the voice's StasisStart came
	earUp       bool
	bridging    bool // actBridgeTalk sent
	bridged     bool // in its bridge, its ear muted
	open        bool // the ear is unmuted: its party hears the supervisor
	customerEar bool // the pair whispers to the customer (whisper=in), not the agent (out)
}

// earsFor is which parties hear the supervisor in mode m.
func earsFor(m dialplan.Mode) [earCount]bool {
	switch m {
	case dialplan.Whisper:
		return [earCount]bool{earAgent: true}
	case dialplan.Barge:
		return [earCount]bool{earAgent: true, earCustomer: true}
	case dialplan.Spy, dialplan.ModeUnknown:
		return [earCount]bool{}
	default:
		return [earCount]bool{}
	}
}

// quieter reports whether fewer parties hear the supervisor in a than in b.
func quieter(a, b dialplan.Mode) bool {
	count := func(m dialplan.Mode) int {
		n := 0
		for _, open := range earsFor(m) {
			if open {
				n++
			}
		}
		return n
	}
	return count(a) < count(b)
}

// earWhisper is the whisper direction of an ear snoop: out reaches the agent, in the customer
// (TestE2EModesByEar checks every cell by ear).
func earWhisper(customer bool) ari.Direction {
	if customer {
		return ari.DirIn
	}
	return ari.DirOut
}

// pairOf returns the pair whose voice or ear id is, or -1.
func (t talkPaths) pairOf(id ari.ChannelID) int {
	if id == "" {
		return -1
	}
	for i, p := range t.pairs {
		if p.voice == id || p.ear == id {
			return i
		}
	}
	return -1
}

// isVoice reports whether id is one of the voice snoops (on the supervisor's channel).
func (t talkPaths) isVoice(id ari.ChannelID) bool {
	for _, p := range t.pairs {
		if id != "" && p.voice == id {
			return true
		}
	}
	return false
}

type (
	// evTalkBridged: a talk pair's two snoops are in their bridge, its ear open or muted.
	evTalkBridged struct {
		pair int
		open bool
	}
	// evEarsSet: the ears were set for mode (err: a mute or unmute failed).
	evEarsSet struct {
		mode dialplan.Mode
		err  error
	}
	// evTalkFailed: making or bridging the talk paths failed.
	evTalkFailed struct{ err error }
)

func (evTalkBridged) isEvent() {}
func (evEarsSet) isEvent()     {}
func (evTalkFailed) isEvent()  {}

type (
	// actMakeTalk creates the talk bridges and their snoops -> nothing (the snoops'
	// StasisStarts come as evChannelUp) or evTalkFailed.
	actMakeTalk struct{ pairs [earCount]talkPair }
	// actBridgeTalk mutes the pair's ear unless open, then bridges voice and ear ->
	// evTalkBridged or evTalkFailed. open is what the mode wanted at that moment says (the
	// talker slot is held whenever that mode talks); once both pairs are bridged, ears that
	// differ from the mode wanted by then are set (actEars), so what was asked meanwhile is
	// what is heard.
	actBridgeTalk struct {
		pair       int
		bridge     ari.BridgeID
		voice, ear ari.ChannelID
		open       bool
	}
	// actEars mutes or unmutes ears, all at once, for mode -> evEarsSet.
	actEars struct {
		mode dialplan.Mode
		set  []earSetting
	}
)

// earSetting is one ear to open (unmute) or close (mute).
type earSetting struct {
	ear  ari.ChannelID
	open bool
}

func (actMakeTalk) isAction()   {}
func (actBridgeTalk) isAction() {}
func (actEars) isAction()       {}

// startTalk makes the talk paths; the mode the supervisor asked for is set once they are bridged.
func (m machine) startTalk(cfg machineConfig, acts []action) (machine, []action) {
	m.switching = true
	m.talk = talkPaths{state: talkMaking}
	live := slices.Clone(m.live)
	for i := range m.talk.pairs {
		p := &m.talk.pairs[i]
		p.voice, p.ear = m.newSnoopID(), m.newSnoopID()
		p.bridge = m.newTalkBridgeID()
		p.customerEar = i == earCustomer
		live = append(live, p.voice, p.ear)
	}
	m.live = live
	return m, append(acts, actMakeTalk{pairs: m.talk.pairs}, actTimer{timer: timerSnoop, d: cfg.SnoopTimeout})
}

// talkUp: one of the talk snoops entered Stasis; a pair whose two snoops are up is bridged.
func (m machine) talkUp(id ari.ChannelID) (machine, []action) {
	i := m.talk.pairOf(id)
	if i < 0 || m.talk.state != talkMaking {
		return m, nil
	}
	p := &m.talk.pairs[i]
	if p.voice == id {
		p.voiceUp = true
	} else {
		p.earUp = true
	}
	if !p.voiceUp || !p.earUp || p.bridging {
		return m, nil
	}
	p.bridging = true
	return m, []action{actBridgeTalk{pair: i, bridge: p.bridge, voice: p.voice, ear: p.ear, open: earsFor(m.want)[i]}}
}

// talkBridged: a pair is bridged; once both are, the paths are ready and the ears that differ
// from the mode wanted now are set.
func (m machine) talkBridged(cfg machineConfig, e evTalkBridged) (machine, []action) {
	if m.talk.state != talkMaking || e.pair < 0 || e.pair >= earCount {
		return m, nil
	}
	m.talk.pairs[e.pair].bridged, m.talk.pairs[e.pair].open = true, e.open
	for _, q := range m.talk.pairs {
		if !q.bridged {
			return m, nil
		}
	}
	m.talk.state = talkReady
	acts := []action{actTimer{timer: timerSnoop}}
	if set := m.earChanges(m.want); len(set) > 0 {
		return m, append(acts, actEars{mode: m.want, set: set})
	}
	m2, more := m.earsSet(cfg, evEarsSet{mode: m.want})
	return m2, append(acts, more...)
}

// earChanges is what must change for mode to be what is heard.
func (m machine) earChanges(mode dialplan.Mode) []earSetting {
	want := earsFor(mode)
	var set []earSetting
	for i, p := range m.talk.pairs {
		if p.open != want[i] {
			set = append(set, earSetting{ear: p.ear, open: want[i]})
		}
	}
	return set
}

// earsSet: the ears are set for e.mode (or failed to be).
func (m machine) earsSet(cfg machineConfig, e evEarsSet) (machine, []action) {
	if e.err != nil {
		return m.dropTalk(cfg)
	}
	open := earsFor(e.mode)
	for i := range m.talk.pairs {
		m.talk.pairs[i].open = open[i]
	}
	from := m.mode
	if !m.announced {
		from = dialplan.ModeUnknown
	}
	m.mode, m.switching, m.announced = e.mode, false, true
	var acts []action
	if from != m.mode {
		acts = append(acts, actModeChanged{from: from, to: m.mode, snoop: m.snoop})
	}
	m2, more := m.afterSwitch(cfg)
	return m2, append(acts, more...)
}

// dropTalk removes the talk paths whole (a part of them failed): nobody hears the supervisor,
// who is back to listening. A mode request that needed them is overtaken (answered superseded).
func (m machine) dropTalk(cfg machineConfig) (machine, []action) {
	acts := []action{actTimer{timer: timerSnoop}}
	dropped := slices.Clone(m.dropped)
	for _, p := range m.talk.pairs {
		for _, id := range []ari.ChannelID{p.voice, p.ear} {
			if id != "" && slices.Contains(m.live, id) {
				m.live = without(m.live, id)
				dropped = append(dropped, id)
				acts = append(acts, actDropSnoop{id: id, critical: true})
			}
		}
	}
	for _, p := range m.talk.pairs {
		if p.bridge != "" {
			acts = append(acts, actDestroyBridge{id: p.bridge})
		}
	}
	m.dropped = dropped
	m.talk = talkPaths{}
	m.switching = false
	if talks(m.want) {
		m.want = dialplan.Spy
	}
	from := m.mode
	if !m.announced {
		from = dialplan.ModeUnknown
	}
	if m.mode != dialplan.Spy || !m.announced {
		m.mode, m.announced = dialplan.Spy, true
		acts = append(acts, actModeChanged{from: from, to: m.mode, snoop: m.snoop, fallback: true})
	}
	m2, more := m.afterSwitch(cfg)
	return m2, append(acts, more...)
}

// talkBridges lists the talk bridges that may exist (to destroy at the end).
func (t talkPaths) bridges() []ari.BridgeID {
	if t.state == talkNone {
		return nil
	}
	var out []ari.BridgeID
	for _, p := range t.pairs {
		if p.bridge != "" {
			out = append(out, p.bridge)
		}
	}
	return out
}

// record is the talk paths as the session record keeps them (nil unless ready).
func (t talkPaths) record() []store.TalkPath {
	if t.state != talkReady {
		return nil
	}
	out := make([]store.TalkPath, 0, earCount)
	for _, p := range t.pairs {
		out = append(out, store.TalkPath{Bridge: string(p.bridge), Voice: string(p.voice), Ear: string(p.ear)})
	}
	return out
}

// adoptTalk takes over the talk paths a record names when Asterisk still has them whole (each
// bridge holding its voice and its ear): the ears are then set again for mode (evAdopted), as a
// switch under way when the old owner went may have left one as it was. It reports false when
// they are not whole: they are dropped and made again.
func adoptTalk(rec []store.TalkPath, mode dialplan.Mode, bridges map[ari.BridgeID][]ari.ChannelID) (talkPaths, bool) {
	if len(rec) != earCount {
		return talkPaths{}, false
	}
	t := talkPaths{state: talkReady}
	open := earsFor(mode)
	for i, r := range rec {
		p := talkPair{
			bridge: ari.BridgeID(r.Bridge), voice: ari.ChannelID(r.Voice), ear: ari.ChannelID(r.Ear),
			voiceUp: true, earUp: true, bridging: true, bridged: true, open: open[i], customerEar: i == earCustomer,
		}
		in := bridges[p.bridge]
		if p.voice == "" || p.ear == "" || !slices.Contains(in, p.voice) || !slices.Contains(in, p.ear) {
			return talkPaths{}, false
		}
		t.pairs[i] = p
	}
	return t, true
}

// talkBridgeName names a session's talk bridges on Asterisk, so a restarted instance knows
// them as the session's (sessionOfName).
func talkBridgeName(session string) string { return BridgeNamePrefix + session + talkBridgeSuffix }

const talkBridgeSuffix = "/talk"

// doTalk carries out the talk paths' actions.
func (s *session) doTalk(_, cctx context.Context, act action) (event, bool) {
	switch act := act.(type) {
	case actMakeTalk:
		return s.makeTalk(cctx, act), true
	case actBridgeTalk:
		return s.bridgeTalk(cctx, act), true
	case actEars:
		return evEarsSet{mode: act.mode, err: s.setEars(cctx, act.set)}, true
	}
	return nil, false
}

// makeTalk creates both talk bridges and their four snoops, all at once.
func (s *session) makeTalk(ctx context.Context, act actMakeTalk) event {
	a := s.app
	for _, p := range act.pairs {
		// Routed before the calls: a snoop's StasisStart can come before the REST answer.
		a.register(p.voice, s)
		a.register(p.ear, s)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	run := func(what string, f func() error) {
		wg.Go(func() {
			if err := f(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", what, err))
				mu.Unlock()
			}
		})
	}
	for _, p := range act.pairs {
		run("create talk bridge "+string(p.bridge), func() error {
			_, err := a.ari.CreateBridge(ctx, ari.CreateBridgeRequest{
				BridgeID: p.bridge, Types: []string{"mixing"}, Name: talkBridgeName(s.id),
			})
			return err
		})
		run("voice snoop "+string(p.voice), func() error {
			_, err := a.ari.Snoop(ctx, s.supChan, ari.SnoopRequest{
				SnoopID: p.voice, Spy: ari.DirIn, Whisper: ari.DirNone,
				App: a.cfg.AppName, AppArgs: argSnoop + "," + s.id,
			})
			return err
		})
		run("ear snoop "+string(p.ear), func() error {
			_, err := a.ari.Snoop(ctx, s.m.agentChan, ari.SnoopRequest{
				SnoopID: p.ear, Spy: ari.DirNone, Whisper: earWhisper(p.customerEar),
				App: a.cfg.AppName, AppArgs: argSnoop + "," + s.id,
			})
			return err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.log.Warn().Err(err).Msg("making the talk paths")
		return evTalkFailed{err: err}
	}
	return nil
}

// bridgeTalk mutes an ear that must not be heard, then puts the pair in its bridge.
func (s *session) bridgeTalk(ctx context.Context, act actBridgeTalk) event {
	a := s.app
	if !act.open {
		if err := a.ari.Mute(ctx, act.ear, ari.DirOut); err != nil {
			s.log.Warn().Err(err).Str("ear", string(act.ear)).Msg("mute ear")
			return evTalkFailed{err: err}
		}
	}
	if err := a.ari.AddChannel(ctx, act.bridge, ari.AddChannelRequest{Channels: []ari.ChannelID{act.voice, act.ear}}); err != nil {
		s.log.Warn().Err(err).Str("bridge", string(act.bridge)).Msg("bridge talk pair")
		return evTalkFailed{err: err}
	}
	return evTalkBridged{pair: act.pair, open: act.open}
}

// setEars mutes and unmutes ears, concurrently: a switch to barge from spy opens two at once.
func (s *session) setEars(ctx context.Context, set []earSetting) error {
	a := s.app
	errs := make([]error, len(set))
	var wg sync.WaitGroup
	for i, e := range set {
		wg.Go(func() {
			if e.open {
				errs[i] = a.ari.Unmute(ctx, e.ear, ari.DirOut)
			} else {
				errs[i] = a.ari.Mute(ctx, e.ear, ari.DirOut)
			}
			if errs[i] != nil {
				errs[i] = fmt.Errorf("set ear %s open=%v: %w", e.ear, e.open, errs[i])
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err != nil {
		s.log.Warn().Err(err).Msg("switch: setting the ears failed; dropping the talk paths")
	}
	return err
}
