package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/earpiece/earpiece/ari"
)

// fakeARI is an in-memory stand-in for the ARI surface the app uses (the ARI interface), for
// fast tests of the app's own logic: refusals, teardown order, the talker slot, reconciliation.
// It follows the Asterisk behaviour the contract tests in ari/ pin (a snoop's StasisStart comes
// after it is made; a snoop ends when its channel hangs up and gets no ChannelDestroyed; a bridge
// id that exists is a 409), and nothing more: what it does not model is never proof of Asterisk
// behaviour — the by-ear tests on a real Asterisk are.
//
// Events go out on Events in order. Every call is recorded (Calls) for tests of ordering. Fail
// makes a method fail with an error; unknown ids answer ari.ErrNotFound as Asterisk's 404 does.
type fakeARI struct {
	t      testing.TB
	events chan ari.Event

	mu        sync.Mutex
	seq       int
	channels  map[ari.ChannelID]*fakeChannel
	bridges   map[ari.BridgeID]*ari.Bridge
	calls     []string
	fail      map[string]error
	playbacks int
}

type fakeChannel struct {
	ch      ari.Channel
	stasis  bool          // in the app (gets StasisEnd when it goes)
	snoopOf ari.ChannelID // for snoops: the snooped channel
	vars    map[string]string
	muted   map[ari.Direction]bool
}

func newFakeARI(t testing.TB) *fakeARI {
	return &fakeARI{
		t: t, events: make(chan ari.Event, 1024),
		channels: map[ari.ChannelID]*fakeChannel{}, bridges: map[ari.BridgeID]*ari.Bridge{},
		fail: map[string]error{},
	}
}

var _ ARI = (*fakeARI)(nil)

func (f *fakeARI) emit(e ari.Event) {
	select {
	case f.events <- e:
	default:
		f.t.Errorf("fakeARI: event queue full, dropping %T", e)
	}
}

// record notes a call and returns the error a test set for it.
func (f *fakeARI) record(format string, args ...any) error {
	call := fmt.Sprintf(format, args...)
	f.calls = append(f.calls, call)
	method, _, _ := strings.Cut(call, " ")
	return f.fail[method]
}

// Calls returns the calls made so far whose text starts with one of prefixes (all without).
func (f *fakeARI) Calls(prefixes ...string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if len(prefixes) == 0 || slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(c, p) }) {
			out = append(out, c)
		}
	}
	return out
}

// Fail makes method fail with err from now on (nil: succeed again).
func (f *fakeARI) Fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = err
}

// addChannelLocked makes a channel of endpoint ("PJSIP/744") in state.
func (f *fakeARI) addChannelLocked(id ari.ChannelID, endpoint, state string) *fakeChannel {
	f.seq++
	if id == "" {
		id = ari.ChannelID(fmt.Sprintf("fake-%d", f.seq))
	}
	c := &fakeChannel{ch: ari.Channel{ID: id, Name: fmt.Sprintf("%s-%08x", endpoint, f.seq), State: state}, vars: map[string]string{}}
	f.channels[id] = c
	return c
}

// Call makes a customer-agent call: two Up channels in a basic bridge. It returns the agent's.
// The app gets what Asterisk sends an app subscribed to the PJSIP endpoints (calls.go): each
// channel's state change to Up, then its BRIDGEPEER naming the other.
func (f *fakeARI) Call(agentEndpoint string) ari.ChannelID {
	f.mu.Lock()
	cust := f.addChannelLocked("", "PJSIP/800", "Up")
	ag := f.addChannelLocked("", agentEndpoint, "Up")
	f.seq++
	id := ari.BridgeID(fmt.Sprintf("basic-%d", f.seq))
	f.bridges[id] = &ari.Bridge{ID: id, Channels: []ari.ChannelID{cust.ch.ID, ag.ch.ID}}
	c, a := cust.ch, ag.ch
	f.mu.Unlock()
	f.emit(&ari.ChannelStateChange{Channel: c})
	f.emit(&ari.ChannelStateChange{Channel: a})
	f.emit(&ari.ChannelVarset{Variable: "BRIDGEPEER", Value: a.Name, Channel: &c})
	f.emit(&ari.ChannelVarset{Variable: "BRIDGEPEER", Value: c.Name, Channel: &a})
	return a.ID
}

// Dial makes a supervisor's channel that entered the app from a feature code.
func (f *fakeARI) Dial(supEndpoint, tenant, dialed string) ari.ChannelID {
	f.mu.Lock()
	c := f.addChannelLocked("", supEndpoint, "Ring")
	c.stasis = true
	ch := c.ch
	f.mu.Unlock()
	f.emit(&ari.StasisStart{Channel: ch, Args: []string{argFeature, tenant, dialed}})
	return ch.ID
}

// HangupFromPhone hangs a channel up as its phone would.
func (f *fakeARI) HangupFromPhone(id ari.ChannelID) {
	f.mu.Lock()
	evs := f.hangupLocked(id, 16)
	f.mu.Unlock()
	for _, e := range evs {
		f.emit(e)
	}
}

// hangupLocked removes a channel (and its snoops) and returns the events Asterisk sends.
func (f *fakeARI) hangupLocked(id ari.ChannelID, cause int) []ari.Event {
	c, ok := f.channels[id]
	if !ok {
		return nil
	}
	delete(f.channels, id)
	for _, b := range f.bridges {
		b.Channels = slices.DeleteFunc(b.Channels, func(x ari.ChannelID) bool { return x == id })
	}
	var evs []ari.Event
	if c.stasis {
		evs = append(evs, &ari.ChannelHangupRequest{Channel: c.ch}, &ari.StasisEnd{Channel: c.ch})
		if c.snoopOf == "" {
			evs = append(evs, &ari.ChannelDestroyed{Channel: c.ch, Cause: cause})
		}
	} else if strings.HasPrefix(c.ch.Name, "PJSIP/") { // the app is subscribed to the phones
		evs = append(evs, &ari.ChannelDestroyed{Channel: c.ch, Cause: cause})
	}
	for sid, s := range f.channels {
		if s.snoopOf == id {
			evs = append(evs, f.hangupLocked(sid, cause)...)
		}
	}
	return evs
}

// Bridges and Snoops list what exists now.
func (f *fakeARI) Bridges() []ari.Bridge {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ari.Bridge
	for _, b := range f.bridges {
		out = append(out, *b)
	}
	return out
}

func (f *fakeARI) Snoops() []ari.ChannelID {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ari.ChannelID
	for id, c := range f.channels {
		if c.snoopOf != "" {
			out = append(out, id)
		}
	}
	return out
}

// PutOrphan leaves a bridge and a snoop of a session nobody runs, as a crashed instance would.
func (f *fakeARI) PutOrphan(sessionID string, agent ari.ChannelID) (ari.BridgeID, ari.ChannelID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	snoop := ari.ChannelID(snoopPrefix + sessionID[len(sessionPrefix):] + "-1")
	c := f.addChannelLocked(snoop, "Snoop/"+string(agent), "Up")
	c.snoopOf, c.stasis = agent, true
	b := bridgeID(sessionID)
	f.bridges[b] = &ari.Bridge{ID: b, Name: BridgeNamePrefix + sessionID, Channels: []ari.ChannelID{snoop}}
	return b, snoop
}

// Mute and Unmute model ARI's channel mute (a suppressing framehook): per channel and direction,
// not counted (muting twice then unmuting once leaves it unmuted); 404 for an unknown channel.
func (f *fakeARI) Mute(_ context.Context, id ari.ChannelID, dir ari.Direction) error {
	return f.setMuted(id, dir, true)
}

func (f *fakeARI) Unmute(_ context.Context, id ari.ChannelID, dir ari.Direction) error {
	return f.setMuted(id, dir, false)
}

func (f *fakeARI) setMuted(id ari.ChannelID, dir ari.Direction, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	method := "Mute"
	if !on {
		method = "Unmute"
	}
	if err := f.record("%s %s %s", method, id, dir); err != nil {
		return err
	}
	c, ok := f.channels[id]
	if !ok {
		return ari.ErrNotFound
	}
	if c.muted == nil {
		c.muted = map[ari.Direction]bool{}
	}
	c.muted[dir] = on
	return nil
}

// Muted reports whether channel id is muted in direction dir.
func (f *fakeARI) Muted(id ari.ChannelID, dir ari.Direction) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.channels[id]
	return ok && c.muted[dir]
}

func (f *fakeARI) Answer(_ context.Context, id ari.ChannelID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Answer %s", id); err != nil {
		return err
	}
	c, ok := f.channels[id]
	if !ok {
		return ari.ErrNotFound
	}
	c.ch.State = "Up"
	return nil
}

func (f *fakeARI) Hangup(_ context.Context, id ari.ChannelID, _ string) error {
	f.mu.Lock()
	if err := f.record("Hangup %s", id); err != nil {
		f.mu.Unlock()
		return err
	}
	if _, ok := f.channels[id]; !ok {
		f.mu.Unlock()
		return ari.ErrNotFound
	}
	evs := f.hangupLocked(id, 16)
	f.mu.Unlock()
	for _, e := range evs {
		f.emit(e)
	}
	return nil
}

func (f *fakeARI) GetChannel(_ context.Context, id ari.ChannelID) (ari.Channel, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.channels[id]
	if !ok {
		return ari.Channel{}, ari.ErrNotFound
	}
	return c.ch, nil
}

func (f *fakeARI) SetVar(_ context.Context, id ari.ChannelID, name, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.channels[id]
	if !ok {
		return ari.ErrNotFound
	}
	c.vars[name] = value
	return nil
}

func (f *fakeARI) Snoop(_ context.Context, id ari.ChannelID, req ari.SnoopRequest) (ari.Channel, error) {
	f.mu.Lock()
	if err := f.record("Snoop %s on %s whisper=%s", req.SnoopID, id, req.Whisper); err != nil {
		f.mu.Unlock()
		return ari.Channel{}, err
	}
	if _, ok := f.channels[id]; !ok {
		f.mu.Unlock()
		return ari.Channel{}, ari.ErrNotFound
	}
	c := f.addChannelLocked(req.SnoopID, "Snoop/"+string(id), "Up")
	c.snoopOf, c.stasis = id, true
	ch := c.ch
	f.mu.Unlock()
	// The snoop enters the app after the REST answer.
	f.emit(&ari.StasisStart{Channel: ch, Args: strings.Split(req.AppArgs, ",")})
	return ch, nil
}

func (f *fakeARI) Play(_ context.Context, id ari.ChannelID, req ari.PlayRequest) (ari.Playback, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Play %s on %s", strings.Join(req.Media, ","), id); err != nil {
		return ari.Playback{}, err
	}
	if _, ok := f.channels[id]; !ok {
		return ari.Playback{}, ari.ErrNotFound
	}
	f.playbacks++
	return ari.Playback{ID: ari.PlaybackID(fmt.Sprintf("pb-%d", f.playbacks))}, nil
}

func (f *fakeARI) StopPlayback(context.Context, ari.PlaybackID) error { return nil }

func (f *fakeARI) CreateBridge(_ context.Context, req ari.CreateBridgeRequest) (ari.Bridge, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("CreateBridge %s", req.BridgeID); err != nil {
		return ari.Bridge{}, err
	}
	if _, ok := f.bridges[req.BridgeID]; ok {
		return ari.Bridge{}, &ari.Error{Status: 409, Message: "bridge exists"}
	}
	b := &ari.Bridge{ID: req.BridgeID, Name: req.Name}
	f.bridges[req.BridgeID] = b
	return *b, nil
}

func (f *fakeARI) AddChannel(_ context.Context, bridge ari.BridgeID, req ari.AddChannelRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := req.Channels
	var names []string
	for _, c := range ids {
		names = append(names, string(c))
	}
	if err := f.record("AddChannel %s %s", strings.Join(names, ","), bridge); err != nil {
		return err
	}
	b, ok := f.bridges[bridge]
	if !ok {
		return ari.ErrNotFound
	}
	for _, id := range ids {
		if _, ok := f.channels[id]; !ok {
			return &ari.Error{Status: 400, Message: "channel not found"}
		}
		for _, other := range f.bridges { // addChannel moves a channel from another bridge
			other.Channels = slices.DeleteFunc(other.Channels, func(x ari.ChannelID) bool { return x == id })
		}
		b.Channels = append(b.Channels, id)
	}
	return nil
}

func (f *fakeARI) DestroyBridge(_ context.Context, id ari.BridgeID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("DestroyBridge %s", id); err != nil {
		return err
	}
	if _, ok := f.bridges[id]; !ok {
		return ari.ErrNotFound
	}
	delete(f.bridges, id)
	return nil
}

func (f *fakeARI) ListBridges(context.Context) ([]ari.Bridge, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail["ListBridges"]; err != nil {
		return nil, err
	}
	var out []ari.Bridge
	for _, b := range f.bridges {
		c := *b
		c.Channels = slices.Clone(b.Channels)
		out = append(out, c)
	}
	return out, nil
}

func (f *fakeARI) ListChannels(context.Context) ([]ari.Channel, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ari.Channel
	for _, c := range f.channels {
		out = append(out, c.ch)
	}
	return out, nil
}

func (f *fakeARI) Originate(_ context.Context, req ari.OriginateRequest) (ari.Channel, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Originate %s %s", req.ChannelID, req.Endpoint); err != nil {
		return ari.Channel{}, err
	}
	c := f.addChannelLocked(req.ChannelID, req.Endpoint, "Ring")
	c.stasis = true
	return c.ch, nil
}

// AnswerPhone makes an originated channel answer: it enters the app.
func (f *fakeARI) AnswerPhone(id ari.ChannelID, args ...string) {
	f.mu.Lock()
	c, ok := f.channels[id]
	if !ok {
		f.mu.Unlock()
		f.t.Errorf("fakeARI: no channel %s to answer", id)
		return
	}
	c.ch.State = "Up"
	ch := c.ch
	f.mu.Unlock()
	f.emit(&ari.StasisStart{Channel: ch, Args: args})
}

// Digit sends a DTMF digit from a channel.
func (f *fakeARI) Digit(id ari.ChannelID, d string) {
	f.mu.Lock()
	c := f.channels[id]
	f.mu.Unlock()
	if c == nil {
		f.t.Errorf("fakeARI: no channel %s for digit %s", id, d)
		return
	}
	f.emit(&ari.ChannelDtmfReceived{Channel: c.ch, Digit: d})
}

func (f *fakeARI) Subscribe(context.Context, string, ...string) (ari.Application, error) {
	return ari.Application{}, nil
}

func (f *fakeARI) GetEndpoint(_ context.Context, tech, resource string) (ari.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := tech + "/" + resource
	ep := ari.Endpoint{Technology: tech, Resource: resource}
	for id, c := range f.channels {
		if c.snoopOf == "" && strings.HasPrefix(c.ch.Name, name+"-") {
			ep.ChannelIDs = append(ep.ChannelIDs, id)
		}
	}
	return ep, nil
}
