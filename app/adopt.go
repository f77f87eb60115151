package app

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/store"
)

// Adoption: an instance that becomes its node's active (or restarts under its own name) takes
// over the sessions its predecessor left running. Nothing of a session lives in the process
// alone: its record in Redis (who, which call, which mode, which channels) and what Asterisk
// keeps while nobody listens to the app's events (the bridge earpiece:<session>, the supervisor's
// channel and the snoop, still in the app's Stasis) are all it is made of. So after the events
// socket connects, reconcile calls adoptSessions, which for each live session of the node that
// nobody runs:
//
//  1. takes it over in Redis, a compare-and-set of the record's owner from the one found to this
//     instance (store.AdoptSession): of several instances, one adopts; a stale owner's later
//     writes are refused;
//  2. audits it (action "adopt", actor earpiece);
//  3. builds the session from the record and the directory, routes its channels to it, and only
//     then looks at Asterisk again: whatever changes after that arrives as an event;
//  4. runs it from what that look shows. A session whose supervisor, snoop, agent's call and
//     bridge are all there goes on in its state, untouched: the audio never stopped, and DTMF,
//     PATCH and DELETE work again. A ringing API session goes on ringing (or joins, if the phone
//     answered meanwhile). Anything else is ended cleanly through the session's own teardown:
//     snoops hung up, the supervisor hears the end tone (busy) and is hung up, bridge destroyed,
//     talker slot released, audit entry "end" and record ended, with reason call_ended when the
//     call ended meanwhile, else lost.
//
// Without a lease (Config.Lease) an instance adopts only the sessions left under its own name (a
// restart); under a lease, every live session of its node.

// ReasonOwnerGone is the reason of an "adopt" audit entry.
const ReasonOwnerGone = "owner_gone"

// evAdopted starts an adopted session that goes on as it was: nothing to do.
type evAdopted struct{}

// evEndNow ends an adopted session found broken, with reason; tone: the supervisor hears the end
// tone before the hangup.
type evEndNow struct {
	reason string
	tone   bool
}

func (evAdopted) isEvent() {}
func (evEndNow) isEvent()  {}

func (e evEndNow) ending(cfg machineConfig, m machine) ending {
	end := ending{reason: e.reason, hangup: !m.supGone}
	if e.tone {
		end.tone, end.toneD = toneCallEnded, cfg.EndTone
	}
	return end
}

// adoption is a session taken over, routed, not yet running.
type adoption struct {
	s    *session
	rec  store.Session
	from store.Owner     // the owner it was taken from
	ids  []ari.ChannelID // routed to s
}

// sessionOfName returns the session id of an earpiece bridge name or snoop channel id ("" for
// neither).
func sessionOfName(bridgeName string, channel ari.ChannelID) string {
	if sid, ok := strings.CutPrefix(bridgeName, BridgeNamePrefix); ok {
		sid, _, _ = strings.Cut(sid, "/") // a talk bridge: earpiece:<session>/talk
		return sid
	}
	rest, ok := strings.CutPrefix(string(channel), snoopPrefix)
	if !ok {
		return ""
	}
	// Snoop ids are ep-snp-<session uuid>-<n>.
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return ""
	}
	return sessionPrefix + rest[:i]
}

// adoptSessions takes over the live sessions of this node that nobody runs (see above), given
// Asterisk's bridges and channels; it returns the ids of those it took over.
func (a *App) adoptSessions(ctx context.Context, bridges []ari.Bridge, chans []ari.Channel) map[string]bool {
	handled := map[string]bool{}
	if a.ha.fenced.Load() || (a.ha.managed.Load() && !a.ha.active.Load()) {
		return handled
	}
	onAsterisk := map[string]bool{}
	for _, b := range bridges {
		if sid := sessionOfName(b.Name, ""); sid != "" {
			onAsterisk[sid] = true
		}
	}
	for _, c := range chans {
		if sid := sessionOfName("", c.ID); sid != "" {
			onAsterisk[sid] = true
		}
	}
	cands := map[string]store.Session{}
	for _, t := range a.dir.Current().Tenants() {
		live, err := a.store.ListSessions(ctx, t.ID)
		if err != nil {
			a.log.Warn().Err(err).Str("tenant", t.ID).Msg("adopt: listing sessions")
			continue
		}
		for _, rec := range live {
			if rec.Node == a.node() || (rec.Node == "" && onAsterisk[rec.ID]) {
				cands[rec.ID] = rec
			}
		}
	}
	for sid := range onAsterisk {
		if _, ok := cands[sid]; ok {
			continue
		}
		if rec, err := a.store.GetSession(ctx, sid); err == nil && rec.Live() && (rec.Node == "" || rec.Node == a.node()) {
			cands[sid] = rec
		}
	}
	var adopted []*adoption
	for _, rec := range cands {
		if _, mine := a.localSession(rec.ID); mine || !a.mayAdopt(rec) {
			continue
		}
		ad, err := a.takeOver(ctx, rec, chans)
		if err != nil {
			a.log.Info().Err(err).Str("session", rec.ID).Msg("adopt: not taken over")
			continue
		}
		handled[rec.ID] = true
		adopted = append(adopted, ad)
	}
	if len(adopted) == 0 {
		return handled
	}
	// A fresh look, taken after the routes exist: what changes from here on comes as events.
	fresh, err := a.ari.ListBridges(ctx)
	if err == nil {
		bridges = fresh
		if cs, err := a.ari.ListChannels(ctx); err == nil {
			chans = cs
		}
	}
	for _, ad := range adopted {
		a.startAdopted(ctx, ad, bridges, chans)
	}
	return handled
}

// mayAdopt reports whether this instance may take rec over: under a lease, it runs the node and
// rec's owner is not running it here; without one, rec was left under this instance's own name.
func (a *App) mayAdopt(rec store.Session) bool {
	if a.ha.managed.Load() {
		return a.ha.active.Load() && !a.ha.fenced.Load()
	}
	return rec.Instance == a.cfg.Instance
}

// takeOver makes this instance rec's owner in Redis, audits it, and builds and routes its
// session (not running yet).
func (a *App) takeOver(ctx context.Context, rec store.Session, chans []ari.Channel) (*adoption, error) {
	from := rec.Owner()
	if os, ok := a.store.(ownedStore); ok {
		got, err := os.AdoptSession(ctx, rec.ID, from, a.owner())
		if err != nil {
			return nil, err
		}
		rec = got
	} else {
		o := a.owner()
		got, err := a.store.UpdateSession(ctx, rec.ID, func(r *store.Session) error {
			r.Instance, r.Epoch = o.Instance, o.Epoch
			return nil
		})
		if err != nil {
			return nil, err
		}
		rec = got
	}
	if err := a.audit(ctx, store.AuditEntry{Tenant: rec.Tenant, Actor: sweepActor, Action: "adopt", Target: rec.Agent,
		Outcome: "ok", Reason: ReasonOwnerGone, Session: rec.ID, Call: rec.CallID, Trigger: "system",
		Extra: map[string]string{"from": from.Instance, "state": rec.State, "mode": rec.Mode}}); err != nil {
		// Adoption is recovery: it goes on, whatever the trail can take now.
		a.log.Warn().Err(err).Str("session", rec.ID).Msg("adopt: not audited")
	}
	s := a.restoredSession(rec)
	ad := &adoption{s: s, rec: rec, from: from}
	ids := []ari.ChannelID{s.supChan}
	if rec.SnoopChannel != "" {
		ids = append(ids, ari.ChannelID(rec.SnoopChannel))
	}
	for _, c := range chans {
		if strings.HasPrefix(string(c.ID), s.m.snoopPrefix) && !slices.Contains(ids, c.ID) {
			ids = append(ids, c.ID)
		}
	}
	for _, id := range ids {
		a.register(id, s)
	}
	ad.ids = ids
	return ad, nil
}

// restoredSession builds the session of rec (its machine is set by startAdopted).
func (a *App) restoredSession(rec store.Session) *session {
	supChan := ari.ChannelID(rec.SupervisorChannel)
	s := &session{
		app: a, id: rec.ID, origin: rec.Origin, supChan: supChan, started: rec.StartedAt,
		helpID: rec.HelpRequest, cfg: a.machineConfig(), waiters: map[int]chan error{},
		done: make(chan struct{}),
		m:    newMachine(rec.ID, supChan, rec.Origin == "api"),
	}
	s.mbox.signal = make(chan struct{}, 1)
	s.log = a.log.With().Str("session", rec.ID).Str("channel", string(supChan)).Bool("adopted", true).Logger()
	d := a.dir.Current()
	if t, ok := d.Tenant(rec.Tenant); ok {
		s.tenant, s.rules = t, t.DialingRules
		s.supervisor, _ = d.Extension(rec.Tenant, rec.Supervisor)
		s.agent, _ = d.Extension(rec.Tenant, rec.Agent)
	}
	s.m.agentChan = ari.ChannelID(rec.AgentChannel)
	s.m.record = true
	return s
}

// startAdopted sets the adopted session's machine from its record and Asterisk's bridges and
// channels, and runs it.
func (a *App) startAdopted(ctx context.Context, ad *adoption, bridges []ari.Bridge, chans []ari.Channel) {
	s, rec := ad.s, ad.rec
	byID := make(map[ari.ChannelID]ari.Channel, len(chans))
	for _, c := range chans {
		byID[c.ID] = c
	}
	var bridge *ari.Bridge
	for i := range bridges {
		if bridges[i].ID == bridgeID(s.id) || bridges[i].Name == BridgeNamePrefix+s.id {
			bridge = &bridges[i]
			break
		}
	}
	inBridge := func(id ari.ChannelID) bool { return bridge != nil && slices.Contains(bridge.Channels, id) }
	// The talk paths the record names are taken over when whole; any other talk bridge (and
	// snoop, below) of the session goes, and a session whose mode talks without whole paths
	// makes them again (evAdopted), with new ids.
	talkIn := map[ari.BridgeID][]ari.ChannelID{}
	for _, b := range bridges {
		if b.Name == talkBridgeName(s.id) {
			talkIn[b.ID] = b.Channels
		}
	}
	m := &s.m
	var snoops []ari.ChannelID
	for id := range byID {
		if n, ok := strings.CutPrefix(string(id), m.snoopPrefix); ok {
			snoops = append(snoops, id)
			if seq, err := strconv.Atoi(n); err == nil && seq > m.seq {
				m.seq = seq // new snoops get new ids
			}
		}
	}
	for id := range talkIn {
		if n, ok := strings.CutPrefix(string(id), m.talkPrefix); ok {
			if seq, err := strconv.Atoi(n); err == nil && seq > m.seq {
				m.seq = seq // and new talk bridges too
			}
		}
	}
	sup, supUp := byID[s.supChan]
	m.supGone = !supUp
	m.bridge = bridge != nil
	mode, _ := dialplan.ParseMode(rec.Mode)
	known := s.tenant != nil && s.supervisor != nil && s.agent != nil
	var first event = evAdopted{}
	var drop []ari.ChannelID
	switch rec.State {
	case store.StateActive:
		m.state, m.answered, m.joined = store.StateActive, true, true
		m.mode, m.want, m.announced = mode, mode, true
		if want, err := dialplan.ParseMode(rec.Want); err == nil && quieter(want, mode) {
			m.want = want // a switch to it was under way: it goes on, never back
		}
		if t, ok := adoptTalk(rec.Talk, mode, talkIn); ok {
			m.talk = t
		} else if talks(mode) {
			// Heard once the talk paths are made again (recorded as the first mode then).
			m.mode, m.announced = dialplan.Spy, false
		}
		m.talker = talks(mode)
		recorded := ari.ChannelID(rec.SnoopChannel)
		for _, id := range snoops {
			if id == recorded || m.talk.pairOf(id) >= 0 {
				m.live = append(m.live, id)
			} else {
				// Talk paths, or a snoop half made when the owner went: they go.
				drop = append(drop, id)
			}
		}
		_, snoopUp := byID[recorded]
		_, agentUp := byID[m.agentChan]
		if snoopUp {
			m.snoop = recorded
		}
		switch {
		case !supUp:
			first = evEndNow{reason: ReasonLost}
		case !known:
			first = evEndNow{reason: ReasonLost, tone: true}
		case recorded == "" || !snoopUp || !agentUp:
			// The call ended while nobody listened: its snoop went with it.
			first = evEndNow{reason: ReasonCallEnded, tone: true}
		case bridge == nil || !inBridge(s.supChan) || !inBridge(recorded) || !mode.Valid():
			first = evEndNow{reason: ReasonLost, tone: true}
		case m.talker:
			// The talker slot is the session's claim (its id): held still, or taken again.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CallTimeout)
			ok, err := a.store.Claim(cctx, talkerKey(m.agentChan), s.id, a.cfg.ClaimTTL)
			cancel()
			if err == nil && !ok {
				// Someone else talks now: this supervisor goes back to listening.
				s.log.Warn().Msg("adopt: another session holds the call's talker slot")
				m.talker, m.want = false, dialplan.Spy
			}
		}
	case store.StateRinging:
		m.state, m.step = store.StateRinging, stepRing
		switch {
		case !supUp:
			first = evChannelEnd{id: s.supChan, destroyed: true}
		case !known:
			m.answered = sup.State == "Up"
			first = evEndNow{reason: ReasonLost}
		case sup.State == "Up":
			first = evChannelUp{id: s.supChan} // answered while nobody listened: join now
		default:
			first = evRing{}
		}
	default: // joining: half-way, nothing to go on from
		m.state = store.StateJoining
		m.answered = supUp && sup.State == "Up"
		m.talker = talks(mode)
		m.live = snoops
		first = evEndNow{reason: ReasonLost, tone: true}
	}
	for _, id := range drop {
		m.dropped = append(m.dropped, id)
		a.spawn(func() { a.bestEffortHangup(ctx, id) })
	}
	for id := range talkIn {
		if slices.Contains(m.talk.bridges(), id) {
			continue
		}
		a.spawn(func() { a.bestEffortDestroyBridge(ctx, id) })
	}
	s.publish()
	if !a.addSession(s, func(ctx context.Context) { s.run(ctx, first) }) {
		for _, id := range ad.ids {
			a.unregister(id)
		}
		return
	}
	if rec.State == store.StateActive {
		a.met.active.Inc() // counted down at its end
	}
	ev := s.log.Info().Str("state", rec.State).Str("mode", rec.Mode).Str("from", ad.from.String())
	if e, ok := first.(evEndNow); ok {
		ev = ev.Str("ending", e.reason)
	}
	ev.Msg("session adopted")
}
