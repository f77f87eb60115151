package app

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
)

// The calls index: the tenants' calls in progress, for GET /v1/calls, call notifications and
// joins (lookup.go).
//
// What Asterisk tells the app. The app subscribes to every PJSIP endpoint (eventSource
// endpoint:PJSIP), so Asterisk sends it the events of the phones' channels although those calls
// never enter Stasis: ChannelCreated, ChannelStateChange, ChannelConnectedLine, Dial,
// ChannelVarset, ChannelDestroyed, each with the channel's snapshot. It sends no
// ChannelEnteredBridge or ChannelLeftBridge for them: those travel on the bridge's topic, and the
// app is subscribed to no phone's bridge (measured on Asterisk 22.10.1, for a plain Dial() call
// and a queue call through a Local channel). What says that a channel is bridged is the
// BRIDGEPEER variable: Asterisk sets it on every channel of a bridge of two or more whenever the
// bridge's membership changes (to the other channels' names, comma-separated) and empties it on
// the channel that leaves; its ChannelVarset is the bridge event the index uses.
//
// A call is then an Up channel of a directory endpoint whose BRIDGEPEER names a channel other than
// earpiece's snoops, and that is not in earpiece's Stasis app: a supervisor's channel (a directory
// endpoint too) sits in earpiece's bridge with the session's snoops only, and runs
// Stasis(<app>,...). That is how earpiece's bridges are skipped, as joins require. Its customer
// number is the channel's connected line, or else a peer's caller number when the index knows
// that peer.
//
// Cost. Each event is applied in constant time (a map update for its channel, and the call of
// that channel re-derived and published if it changed), whatever the number of calls in progress.
// The dispatcher applies it itself, under calls.mu, before it routes the next event: so a join
// that a later StasisStart starts sees every call event Asterisk sent before it. Readers never take
// that lock: the calls are published into sync.Maps (per tenant for listing, per endpoint for
// joins), and listing a tenant's calls walks that tenant's calls only. What may block (the
// notifications, closing the help requests of ended calls in Redis, the REST rebuilds) runs on the
// index's own goroutine, runCalls.
//
// Full rebuilds from Asterisk's REST listings (all bridges, all channels) happen only:
//   - after every (re)connection of the events socket (and a Desynced notice): events missed while
//     it was down are lost for good. Until that resync is applied the index is not trusted for
//     joins (lookup.go falls back to the REST scan);
//   - when a test or a standby asks (touchCalls; standbyCalls in lease_calls.go: a standby has no
//     events);
//   - every callsSafetyNet (a few minutes) as a safety net, for what no event tells: Asterisk does
//     not update BRIDGEPEER on the last channel left in a bridge that dropped from three or more
//     channels to one (bridge.c sets it only on bridges of two or more). At 1,000 calls a rebuild
//     lists about 2,000 channels: negligible every few minutes, where it was after every burst
//     of events. Every callsNoEvents (5 s, as before) while the directory has an endpoint that is
//     not PJSIP: the app gets no events of those (it subscribes to PJSIP endpoints only).
//
// A rebuild fetches the listings without the lock; the events applied meanwhile are kept, and
// once the listings are in, the state is replaced with them and those events applied again on top,
// so nothing newer than the listings is lost. Every event carries a whole snapshot of its channel
// (or sets one variable), so applying again an event older than the listings only repeats what a
// later one of the kept events corrects.

const (
	// callsCheck is how often runCalls looks for a directory change (re-deriving tenants from
	// the channels it knows, no REST) and for a due safety-net rebuild.
	callsCheck = time.Second
	// callsSafetyNet is how often the index is rebuilt from REST listings with no reason known.
	callsSafetyNet = 3 * time.Minute
	// callsNoEvents is that period instead while the directory has an endpoint that is not
	// PJSIP: the app gets no events of its channels (it subscribes to PJSIP endpoints only), so
	// its calls are seen by rebuilds alone, as often as before the index was kept by events.
	callsNoEvents = 5 * time.Second
	// callsRetry is how soon a failed rebuild is tried again.
	callsRetry = time.Second
	// varBridgePeer is the channel variable Asterisk sets to the names of the other channels of
	// the channel's bridge (bridge.c set_bridge_peer_vars).
	varBridgePeer = "BRIDGEPEER"
)

// chanState is what the index knows of one channel (under calls.mu).
type chanState struct {
	id        ari.ChannelID
	name      string
	up        bool
	inbound   bool
	caller    string // Caller.Number
	connected string // Connected.Number
	created   time.Time
	peers     string // BRIDGEPEER: the other channels of its bridge, by name; "" when in none
	own       bool   // in one of earpiece's bridges (known from a listing)
	ours      bool   // in earpiece's Stasis app (a supervisor's channel)
}

// resyncReq is a pending rebuild; trust says it may make the index trusted for joins (it
// follows a connection whose PJSIP subscription succeeded), as of connection generation gen.
type resyncReq struct {
	want  bool
	trust bool
	gen   uint64
	after time.Time // not before (a retry)
}

type calls struct {
	app string // the Stasis app's name

	// Read side: any goroutine, no lock.
	tenants   sync.Map      // tenant id -> *sync.Map (call id -> Call)
	endpoints sync.Map      // normalized endpoint -> []Call, newest first (replaced, never changed)
	gen       atomic.Uint64 // bumped by every change of the events connection
	syncedGen atomic.Uint64 // gen of the last trusted rebuild; trusted while equal to gen
	built     atomic.Int64  // unix ns of the last rebuild (0: never)

	// Write side, under mu: the dispatcher (events), runCalls or a standby's request (rebuilds),
	// runCalls (a directory change).
	mu     sync.Mutex
	chans  map[ari.ChannelID]*chanState
	byName map[string]ari.ChannelID
	live   map[ari.ChannelID]Call
	epOf   map[ari.ChannelID]string   // live call -> its endpoint key
	byEp   map[string][]ari.ChannelID // endpoint key -> its live calls
	dir    *config.Directory          // the directory live was derived with

	// For runCalls: whether the directory it last looked at has a non-PJSIP endpoint.
	checkedDir *config.Directory
	otherTech  bool

	fetching int         // rebuilds fetching their listings
	replay   []ari.Event // the events applied since the oldest of them started

	// For runCalls: the notifications to send, the rebuild asked for.
	qmu     sync.Mutex
	started []Call
	ended   []Call
	resync  resyncReq
	signal  chan struct{}
}

func (c *calls) init(app string) {
	c.app = app
	c.chans = map[ari.ChannelID]*chanState{}
	c.byName = map[string]ari.ChannelID{}
	c.live = map[ari.ChannelID]Call{}
	c.epOf = map[ari.ChannelID]string{}
	c.byEp = map[string][]ari.ChannelID{}
	c.signal = make(chan struct{}, 1)
	c.gen.Store(1)
}

func (c *calls) wake() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// queue hands notifications to runCalls (never blocks).
func (c *calls) queue(ch changes) {
	if len(ch.started) == 0 && len(ch.ended) == 0 {
		return
	}
	c.qmu.Lock()
	c.started = append(c.started, ch.started...)
	c.ended = append(c.ended, ch.ended...)
	c.qmu.Unlock()
	c.wake()
}

// invalidate marks the index untrusted: the events connection changed, so events may have been
// lost until the next trusted rebuild.
func (c *calls) invalidate() { c.gen.Add(1) }

// trusted reports whether the index has been rebuilt since the last connection change and is
// kept by events since: joins may rely on it.
func (c *calls) trusted() bool { return c.syncedGen.Load() == c.gen.Load() }

// builtAt returns when the index was last rebuilt from REST (zero: never).
func (c *calls) builtAt() time.Time {
	if ns := c.built.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// requestResync asks runCalls for a rebuild.
func (c *calls) requestResync(trust bool) {
	c.qmu.Lock()
	gen := c.gen.Load()
	if !c.resync.want || trust {
		c.resync = resyncReq{want: true, trust: trust || (c.resync.want && c.resync.trust), gen: gen}
	}
	c.qmu.Unlock()
	c.wake()
}

// retry puts back a rebuild that failed, to be tried again after at (at the next check), merged
// with one asked meanwhile: a trusted rebuild of the current connection stays trusted.
func (c *calls) retry(r resyncReq, at time.Time) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	p := &c.resync
	if !p.want {
		r.after = at
		*p = r
		return
	}
	if r.trust && !p.trust && r.gen == c.gen.Load() {
		p.trust, p.gen = true, r.gen
	}
}

// take returns the notifications to send and the pending rebuild, if due.
func (c *calls) take(now time.Time) (changes, resyncReq) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	ch := changes{started: c.started, ended: c.ended}
	c.started, c.ended = nil, nil
	r := c.resync
	if r.want && !now.Before(r.after) {
		c.resync = resyncReq{}
		return ch, r
	}
	return ch, resyncReq{}
}

// isCallEvent reports whether ev may change the calls index.
func isCallEvent(ev ari.Event) bool {
	switch e := ev.(type) {
	case *ari.ChannelCreated, *ari.ChannelStateChange, *ari.ChannelDestroyed, *ari.ChannelConnectedLine,
		*ari.ChannelCallerId, *ari.Dial:
		return true
	case *ari.ChannelVarset:
		return e.Variable == varBridgePeer && e.Channel != nil
	}
	return false
}

// touchCalls asks for a rebuild of the index from REST listings (never blocks).
func (a *App) touchCalls() { a.calls.requestResync(false) }

// callEvent applies an event of the phones' channels to the index (the dispatcher).
func (a *App) callEvent(ev ari.Event) {
	if !isCallEvent(ev) {
		return
	}
	c := &a.calls
	var ch changes
	c.mu.Lock()
	if c.dir == nil {
		c.dir = a.dir.Current()
	}
	c.applyDerive(ev, c.dir, &ch)
	if c.fetching > 0 {
		c.replay = append(c.replay, ev)
	}
	c.mu.Unlock()
	c.queue(ch)
}

// connectionChanged is the index's part of a connection event (the dispatcher): until the
// rebuild that follows the reconnection, what the index knows may be stale.
func (a *App) connectionChanged() { a.calls.invalidate() }

// runCalls sends the notifications the dispatcher queued, runs the rebuilds and watches the
// directory; it is started by Run.
func (a *App) runCalls(ctx context.Context) {
	tick := time.NewTicker(callsCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.calls.signal:
		case <-tick.C:
			a.checkCalls(ctx)
		}
		ch, r := a.calls.take(a.cfg.Clock())
		a.notifyCalls(ctx, ch)
		if r.want && !a.rebuild(ctx, r) {
			a.calls.retry(r, a.cfg.Clock().Add(callsRetry))
		}
	}
}

// checkCalls re-derives the calls when the directory changed and asks for the safety-net
// rebuild when it is due.
func (a *App) checkCalls(ctx context.Context) {
	d := a.dir.Current()
	c := &a.calls
	if c.checkedDir != d {
		c.checkedDir, c.otherTech = d, hasOtherTech(d)
	}
	every := callsSafetyNet
	if c.otherTech {
		every = callsNoEvents
	}
	if at := c.builtAt(); !at.IsZero() && a.cfg.Clock().Sub(at) >= every {
		a.touchCalls()
	}
	c.mu.Lock()
	if c.dir == d || c.dir == nil {
		c.mu.Unlock()
		return
	}
	c.dir = d // rare (an edit of the directory): every call is derived again, without REST
	var ch changes
	for id, cs := range c.chans {
		c.derive(id, cs, d, &ch)
	}
	c.mu.Unlock()
	a.notifyCalls(ctx, ch)
}

// hasOtherTech reports whether an extension of d has an endpoint that is not PJSIP.
func hasOtherTech(d *config.Directory) bool {
	for _, t := range d.Tenants() {
		for _, e := range t.Extensions {
			if tech, _, _ := strings.Cut(e.Endpoint, "/"); !strings.EqualFold(tech, "PJSIP") {
				return true
			}
		}
	}
	return false
}

// changes are the calls that started and ended while applying something.
type changes struct {
	started, ended []Call
}

// applyDerive applies one event and re-derives the calls of the channels it touched (under mu).
func (c *calls) applyDerive(ev ari.Event, d *config.Directory, ch *changes) {
	for _, id := range c.apply(ev, d) {
		if id != "" {
			c.derive(id, c.chans[id], d, ch)
		}
	}
}

// apply changes the channels' state for one event and returns the channels it touched (under
// mu). It derives no call: a rebuild applies the kept events, then derives every call once.
func (c *calls) apply(ev ari.Event, d *config.Directory) (touched [2]ari.ChannelID) {
	switch e := ev.(type) {
	case *ari.ChannelDestroyed:
		touched[0] = c.forget(ari.ChannelID(e.Channel.ID))
	case *ari.ChannelVarset:
		if cs := c.update(e.Channel, d); cs != nil {
			cs.peers, cs.own = e.Value, false
			touched[0] = cs.id
		}
	case *ari.Dial:
		if cs := c.update(e.Caller, d); cs != nil {
			touched[0] = cs.id
		}
		if cs := c.update(&e.Peer, d); cs != nil {
			touched[1] = cs.id
		}
	case *ari.ChannelCreated:
		touched[0] = c.updateID(&e.Channel, d)
	case *ari.ChannelStateChange:
		touched[0] = c.updateID(&e.Channel, d)
	case *ari.ChannelConnectedLine:
		touched[0] = c.updateID(&e.Channel, d)
	case *ari.ChannelCallerId:
		touched[0] = c.updateID(&e.Channel, d)
	}
	return touched
}

func (c *calls) updateID(snap *ari.Channel, d *config.Directory) ari.ChannelID {
	if cs := c.update(snap, d); cs != nil {
		return cs.id
	}
	return ""
}

// tracked reports whether the index keeps a channel of this name: a phone's (PJSIP, the
// technology the app subscribes to), or any directory endpoint's.
func tracked(name string, d *config.Directory) bool {
	if len(name) > 6 && strings.EqualFold(name[:6], "PJSIP/") {
		return true
	}
	_, _, ok := d.TenantByEndpoint(endpointOf(name))
	return ok
}

// update records a channel's snapshot; nil for a channel the index does not keep.
func (c *calls) update(snap *ari.Channel, d *config.Directory) *chanState {
	if snap == nil || snap.ID == "" {
		return nil
	}
	cs := c.chans[snap.ID]
	if cs == nil {
		if !tracked(snap.Name, d) {
			return nil
		}
		cs = &chanState{id: snap.ID}
		c.chans[snap.ID] = cs
	}
	if cs.name != snap.Name {
		if cs.name != "" && c.byName[cs.name] == cs.id {
			delete(c.byName, cs.name)
		}
		cs.name = snap.Name
		c.byName[snap.Name] = snap.ID
	}
	cs.up = snap.State == "Up"
	cs.ours = snap.Dialplan.AppName == "Stasis" && c.app != "" &&
		(snap.Dialplan.AppData == c.app || strings.HasPrefix(snap.Dialplan.AppData, c.app+","))
	cs.inbound = direction(*snap) == "inbound"
	cs.caller, cs.connected = snap.Caller.Number, snap.Connected.Number
	cs.created = snap.CreationTime.Time
	return cs
}

// forget removes a channel that is gone; it returns its id if the index knew it.
func (c *calls) forget(id ari.ChannelID) ari.ChannelID {
	cs := c.chans[id]
	if cs == nil {
		return ""
	}
	delete(c.chans, id)
	if c.byName[cs.name] == id {
		delete(c.byName, cs.name)
	}
	return id
}

// onlySnoops reports whether a BRIDGEPEER value names snoop channels only (earpiece's bridges:
// a supervisor with the session's snoops).
func onlySnoops(peers string) bool {
	for p := range strings.SplitSeq(peers, ",") {
		if !strings.HasPrefix(strings.TrimSpace(p), "Snoop/") {
			return false
		}
	}
	return true
}

// callOfChan derives the call of a channel, if it is one.
func (c *calls) callOfChan(cs *chanState, d *config.Directory) (Call, string, bool) {
	if cs == nil || !cs.up || cs.peers == "" || cs.own || cs.ours || onlySnoops(cs.peers) {
		return Call{}, "", false
	}
	ep := endpointOf(cs.name)
	tenant, ext, ok := d.TenantByEndpoint(ep)
	if !ok {
		return Call{}, "", false
	}
	call := Call{
		ID: string(cs.id), Tenant: tenant.ID, Agent: ext.Number,
		CustomerNumber: cs.connected, Direction: "outbound", StartedAt: cs.created,
	}
	if cs.inbound {
		call.Direction = "inbound"
	}
	if call.CustomerNumber == "" {
		for p := range strings.SplitSeq(cs.peers, ",") {
			if o := c.chans[c.byName[strings.TrimSpace(p)]]; o != nil && o.id != cs.id {
				call.CustomerNumber = o.caller
				break
			}
		}
	}
	return call, endpointKey(ep), true
}

// derive re-derives the call of channel id (cs nil: the channel is gone) and publishes a change.
func (c *calls) derive(id ari.ChannelID, cs *chanState, d *config.Directory, ch *changes) {
	call, ep, isCall := c.callOfChan(cs, d)
	old, was := c.live[id]
	switch {
	case !isCall && !was:
		return
	case !isCall:
		c.drop(id, old)
		ch.ended = append(ch.ended, old)
		return
	case was && sameCall(old, call) && c.epOf[id] == ep:
		return
	case was && (old.Tenant != call.Tenant || c.epOf[id] != ep):
		c.drop(id, old) // moved (a directory change): published afresh below, not notified again
	}
	if _, ok := c.epOf[id]; !ok {
		c.byEp[ep] = append(c.byEp[ep], id)
	}
	c.live[id], c.epOf[id] = call, ep
	c.tenantMap(call.Tenant).Store(call.ID, call)
	c.publishEndpoint(ep)
	if !was {
		ch.started = append(ch.started, call)
	}
}

// drop unpublishes live call id.
func (c *calls) drop(id ari.ChannelID, old Call) {
	ep := c.epOf[id]
	delete(c.live, id)
	delete(c.epOf, id)
	c.byEp[ep] = slices.DeleteFunc(c.byEp[ep], func(x ari.ChannelID) bool { return x == id })
	if m, ok := c.tenants.Load(old.Tenant); ok {
		m.(*sync.Map).Delete(old.ID)
	}
	c.publishEndpoint(ep)
}

func sameCall(a, b Call) bool {
	return a.ID == b.ID && a.Tenant == b.Tenant && a.Agent == b.Agent && a.CustomerNumber == b.CustomerNumber &&
		a.Direction == b.Direction && a.StartedAt.Equal(b.StartedAt)
}

func (c *calls) tenantMap(tenant string) *sync.Map {
	if m, ok := c.tenants.Load(tenant); ok {
		return m.(*sync.Map)
	}
	m, _ := c.tenants.LoadOrStore(tenant, &sync.Map{})
	return m.(*sync.Map)
}

// publishEndpoint replaces the endpoint's list of calls (an endpoint has a handful of channels:
// this costs what that endpoint has, not what all endpoints have).
func (c *calls) publishEndpoint(ep string) {
	if ep == "" {
		return
	}
	ids := c.byEp[ep]
	if len(ids) == 0 {
		delete(c.byEp, ep)
		c.endpoints.Delete(ep)
		return
	}
	list := make([]Call, 0, len(ids))
	for _, id := range ids {
		list = append(list, c.live[id])
	}
	slices.SortFunc(list, func(x, y Call) int {
		if c := y.StartedAt.Compare(x.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(y.ID, x.ID)
	})
	c.endpoints.Store(ep, list)
}

// notifyCalls sends the started and ended notifications (the active only: a standby's index
// notifies nothing, lease_calls.go) and closes the help requests of ended calls.
func (a *App) notifyCalls(ctx context.Context, ch changes) {
	if len(ch.started) == 0 && len(ch.ended) == 0 {
		return
	}
	if !a.running() {
		return
	}
	for _, c := range ch.started {
		a.notify(c.Tenant, NoteCallStarted, c)
	}
	for _, c := range ch.ended {
		a.notify(c.Tenant, NoteCallEnded, c)
	}
	// A help request ends with its call.
	a.closeHelpOfEndedCalls(ctx, ch.ended)
}

// rebuildCalls rebuilds the index from REST listings now (a standby, lease_calls.go).
func (a *App) rebuildCalls(ctx context.Context) { a.rebuild(ctx, resyncReq{want: true}) }

// rebuild replaces the index with what Asterisk's bridges and channels listings show, then
// applies again the events applied while they were fetched, and notifies the calls that started or
// ended; false when a listing failed.
func (a *App) rebuild(ctx context.Context, r resyncReq) bool {
	c := &a.calls
	c.mu.Lock()
	c.fetching++
	from := len(c.replay)
	c.mu.Unlock()
	done := func() { // under mu
		if c.fetching--; c.fetching == 0 {
			c.replay = nil
		}
	}

	lctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	bridges, err := a.ari.ListBridges(lctx)
	var chans []ari.Channel
	if err == nil {
		chans, err = a.ari.ListChannels(lctx)
	}
	if err != nil {
		c.mu.Lock()
		done()
		c.mu.Unlock()
		a.log.Debug().Err(err).Msg("calls index: listing bridges and channels")
		return false
	}

	d := a.dir.Current()
	names := make(map[ari.ChannelID]string, len(chans))
	for _, ch := range chans {
		names[ch.ID] = ch.Name
	}
	type bridged struct {
		peers string
		own   bool
	}
	inBridge := map[ari.ChannelID]bridged{}
	var peers []string
	for _, b := range bridges {
		if len(b.Channels) < 2 {
			continue
		}
		own := strings.HasPrefix(b.Name, BridgeNamePrefix)
		for _, id := range b.Channels {
			if !tracked(names[id], d) {
				continue
			}
			peers = peers[:0]
			for _, other := range b.Channels {
				switch n := names[other]; {
				case other == id:
				case n != "":
					peers = append(peers, n)
				default:
					peers = append(peers, string(other)) // gone between the two listings
				}
			}
			inBridge[id] = bridged{strings.Join(peers, ","), own}
		}
	}

	var ch changes
	c.mu.Lock()
	c.dir = d
	c.chans = make(map[ari.ChannelID]*chanState, len(c.chans))
	c.byName = make(map[string]ari.ChannelID, len(c.byName))
	for i := range chans {
		if cs := c.update(&chans[i], d); cs != nil {
			b := inBridge[cs.id]
			cs.peers, cs.own = b.peers, b.own
		}
	}
	for _, ev := range c.replay[from:] {
		c.apply(ev, d)
	}
	for id := range c.live {
		if _, ok := c.chans[id]; !ok {
			c.derive(id, nil, d, &ch)
		}
	}
	for id, cs := range c.chans {
		c.derive(id, cs, d, &ch)
	}
	c.built.Store(a.cfg.Clock().UnixNano())
	if r.trust && r.gen == c.gen.Load() {
		c.syncedGen.Store(r.gen)
	}
	done()
	c.mu.Unlock()
	a.notifyCalls(ctx, ch)
	return true
}

// direction is "inbound" when the phone's channel was created by a Dial() (or a queue) calling
// the phone — Asterisk then shows it running AppDial, "(Outgoing Line)" — and "outbound" when the
// phone placed the call and its channel runs the dialplan itself.
func direction(ch ari.Channel) string {
	if strings.HasPrefix(ch.Dialplan.AppName, "AppDial") {
		return "inbound"
	}
	return "outbound"
}

// endpointKey normalizes an endpoint (TECH/resource) as the directory matches it: the technology
// without regard to case, the resource exactly.
func endpointKey(ep string) string {
	tech, res, ok := strings.Cut(ep, "/")
	if !ok {
		return ep
	}
	return strings.ToUpper(tech) + "/" + res
}

// callsOfEndpoint returns the endpoint's calls, newest first (shared: do not change).
func (c *calls) callsOfEndpoint(endpoint string) []Call {
	if v, ok := c.endpoints.Load(endpointKey(endpoint)); ok {
		return v.([]Call)
	}
	return nil
}

// callsFor returns the tenant's calls, with this instance's supervisors on each, oldest first.
func (a *App) callsFor(tenant string) []Call {
	out := make([]Call, 0, 8)
	m, ok := a.calls.tenants.Load(tenant)
	if !ok {
		return out
	}
	m.(*sync.Map).Range(func(_, v any) bool {
		out = append(out, v.(Call))
		return true
	})
	if len(out) == 0 {
		return out
	}
	parts := a.participants(tenant)
	for i := range out {
		out[i].Supervisors = parts[out[i].ID]
		if out[i].Supervisors == nil {
			out[i].Supervisors = []Participant{}
		}
	}
	slices.SortFunc(out, func(x, y Call) int {
		if c := x.StartedAt.Compare(y.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

// callOf returns the call with id in tenant, or (id empty) the newest call of agent extension in
// tenant.
func (a *App) callOf(tenant, id, agent string) (Call, bool) {
	if id == "" {
		ext, ok := a.dir.Current().Extension(tenant, agent)
		if !ok {
			return Call{}, false
		}
		for _, c := range a.calls.callsOfEndpoint(ext.Endpoint) {
			if c.Tenant == tenant && c.Agent == agent {
				return c, true
			}
		}
		return Call{}, false
	}
	m, ok := a.calls.tenants.Load(tenant)
	if !ok {
		return Call{}, false
	}
	v, ok := m.(*sync.Map).Load(id)
	if !ok {
		return Call{}, false
	}
	return v.(Call), true
}

// participants lists the supervisors this instance runs on each call of tenant.
func (a *App) participants(tenant string) map[string][]Participant {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]Participant{}
	for _, s := range a.sessions {
		v := s.view.Load()
		if v == nil || v.tenant != tenant || v.agentChan == "" {
			continue
		}
		out[v.agentChan] = append(out[v.agentChan], Participant{
			SessionID: s.id, Extension: v.supervisor, Mode: v.mode, State: v.state,
		})
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i].SessionID < ps[j].SessionID })
	}
	return out
}
