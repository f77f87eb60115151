package ari_test

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/earpiece/earpiece/ari"
)

// contractBridges: creating, filling, moving between, emptying and destroying bridges, and the
// events and errors on the way.
func contractBridges(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()
	a, b, c := k.chanID("a"), k.chanID("b"), k.chanID("c")
	for _, name := range []string{"a", "b", "c"} {
		k.originate(name, nil)
	}

	one := ari.BridgeID(k.id("br", "one"))
	k.destroyLater(one)
	created, err := k.c.CreateBridge(ctx, ari.CreateBridgeRequest{BridgeID: one, Types: []string{"mixing", "dtmf_events"}, Name: "contract one"})
	if err != nil {
		t.Fatalf("create bridge: %v", err)
	}
	if created.ID != one || created.Name != "contract one" || created.BridgeType != "mixing" || created.BridgeClass != "stasis" || len(created.Channels) != 0 {
		t.Errorf("created bridge %+v, want id %s, name %q, type mixing, class stasis, no channels", created, one, "contract one")
	}
	_, err = k.c.CreateBridge(ctx, ari.CreateBridgeRequest{BridgeID: one, Types: []string{"mixing"}})
	wantError(t, "bridge with an existing id", err, ari.ErrConflict, http.StatusConflict, "")

	// Two channels in: one ChannelEnteredBridge each; a two-party mixing bridge runs as
	// simple_bridge.
	if err := k.c.AddChannel(ctx, one, ari.AddChannelRequest{Channels: []ari.ChannelID{a, b}}); err != nil {
		t.Fatalf("addChannel a,b: %v", err)
	}
	k.w.eventually(t, "ChannelEnteredBridge of a", inBridge("ChannelEnteredBridge", one, a))
	entered := k.w.eventually(t, "ChannelEnteredBridge of b", inBridge("ChannelEnteredBridge", one, b)).ev.(*ari.ChannelEnteredBridge)
	got, err := k.c.GetBridge(ctx, one)
	if err != nil {
		t.Fatalf("GET bridge: %v", err)
	}
	if !sameIDs(got.Channels, a, b) || got.Technology != "simple_bridge" {
		t.Errorf("bridge with a and b: channels %v technology %q, want [a b] and simple_bridge", got.Channels, got.Technology)
	}
	t.Logf("two-party mixing bridge: technology %q (in the event: %q)", got.Technology, entered.Bridge.Technology)

	// A channel already in a bridge is moved by addChannel: left the old one, then entered the
	// new one.
	two := k.bridge("two", "mixing")
	if err := k.c.AddChannel(ctx, two, ari.AddChannelRequest{Channels: []ari.ChannelID{c}}); err != nil {
		t.Fatalf("addChannel c: %v", err)
	}
	k.w.eventually(t, "ChannelEnteredBridge of c", inBridge("ChannelEnteredBridge", two, c))
	k.w.skipAll()
	if err := k.c.AddChannel(ctx, two, ari.AddChannelRequest{Channels: []ari.ChannelID{a}}); err != nil {
		t.Fatalf("addChannel of a, already in another bridge: %v", err)
	}
	k.w.await(t, "ChannelLeftBridge of a from the first bridge", inBridge("ChannelLeftBridge", one, a))
	k.w.await(t, "then ChannelEnteredBridge of a into the second", inBridge("ChannelEnteredBridge", two, a))
	if got, err := k.c.GetBridge(ctx, one); err != nil || !sameIDs(got.Channels, b) {
		t.Errorf("first bridge after the move: %v %v, want [b]", got.Channels, err)
	}

	// A third party turns a mixing bridge into softmix (after the join: the
	// ChannelEnteredBridge of the third still shows the technology it joined).
	if err := k.c.AddChannel(ctx, two, ari.AddChannelRequest{Channels: []ari.ChannelID{b}}); err != nil {
		t.Fatalf("addChannel b: %v", err)
	}
	k.w.await(t, "ChannelLeftBridge of b", inBridge("ChannelLeftBridge", one, b))
	third := k.w.await(t, "ChannelEnteredBridge of b", inBridge("ChannelEnteredBridge", two, b)).ev.(*ari.ChannelEnteredBridge)
	got, err = k.c.GetBridge(ctx, two)
	if err != nil || !sameIDs(got.Channels, a, b, c) || got.Technology != "softmix" {
		t.Errorf("bridge with three: %+v %v, want a, b, c and softmix", got, err)
	}
	t.Logf("three-party mixing bridge: technology %q (in the third's ChannelEnteredBridge: %q)", got.Technology, third.Bridge.Technology)

	// removeChannel, and its errors.
	if err := k.c.RemoveChannel(ctx, two, c); err != nil {
		t.Fatalf("removeChannel c: %v", err)
	}
	k.w.await(t, "ChannelLeftBridge of c", inBridge("ChannelLeftBridge", two, c))
	err = k.c.RemoveChannel(ctx, two, c)
	wantError(t, "removeChannel of a channel not in the bridge", err, ari.ErrUnprocessable, http.StatusUnprocessableEntity, "not in this bridge")
	err = k.c.AddChannel(ctx, ari.BridgeID(k.id("br", "nowhere")), ari.AddChannelRequest{Channels: []ari.ChannelID{c}})
	wantError(t, "addChannel to an unknown bridge", err, ari.ErrNotFound, http.StatusNotFound, "Bridge not found")
	err = k.c.AddChannel(ctx, two, ari.AddChannelRequest{Channels: []ari.ChannelID{k.chanID("nobody")}})
	wantError(t, "addChannel of an unknown channel", err, ari.ErrBadRequest, http.StatusBadRequest, "Channel not found")

	// BridgeDestroyed reaches the app only if it is subscribed to the bridge when it is
	// destroyed. A channel in the bridge subscribes the app only while it is in there: a
	// channel that leaves it alive (removed, moved, or put out by the destruction itself) takes
	// the subscription along. One that hangs up in the bridge leaves it behind.
	three := k.bridge("three", "mixing")
	if err := k.c.AddChannel(ctx, three, ari.AddChannelRequest{Channels: []ari.ChannelID{c}}); err != nil {
		t.Fatalf("addChannel c: %v", err)
	}
	k.w.await(t, "ChannelEnteredBridge of c", inBridge("ChannelEnteredBridge", three, c))
	if err := k.c.Hangup(ctx, c, ""); err != nil {
		t.Fatalf("hang up c: %v", err)
	}
	k.w.await(t, "ChannelLeftBridge of c, hung up", inBridge("ChannelLeftBridge", three, c))
	k.awaitGone(c)
	if err := k.c.DestroyBridge(ctx, three); err != nil {
		t.Fatalf("destroy the bridge c hung up in: %v", err)
	}
	k.w.await(t, "BridgeDestroyed of the bridge c hung up in", inBridge("BridgeDestroyed", three, ""))

	// The first bridge: its channels moved out, so no BridgeDestroyed. The second: a and b
	// still in it, put out by the destruction; BridgeDestroyed only thanks to the explicit
	// subscription. Destroyed in this order, the second's events are the sentinel for the
	// first's.
	app, err := k.c.Subscribe(ctx, "", "bridge:"+string(two))
	if err != nil || !slices.Contains(app.BridgeIDs, two) {
		t.Fatalf("subscribe to bridge:%s: bridge_ids %v, %v", two, app.BridgeIDs, err)
	}
	if err := k.c.DestroyBridge(ctx, one); err != nil {
		t.Fatalf("destroy the first bridge: %v", err)
	}
	if err := k.c.DestroyBridge(ctx, two); err != nil {
		t.Fatalf("destroy the second bridge: %v", err)
	}
	k.w.eventually(t, "ChannelLeftBridge of a on destroy", inBridge("ChannelLeftBridge", two, a))
	k.w.eventually(t, "ChannelLeftBridge of b on destroy", inBridge("ChannelLeftBridge", two, b))
	k.w.eventually(t, "BridgeDestroyed of the second bridge", inBridge("BridgeDestroyed", two, ""))
	k.w.none(t, "BridgeDestroyed of the bridge whose channels had moved out", inBridge("BridgeDestroyed", one, ""))

	_, err = k.c.GetBridge(ctx, one)
	wantError(t, "GET of a destroyed bridge", err, ari.ErrNotFound, http.StatusNotFound, "Bridge not found")
	err = k.c.DestroyBridge(ctx, one)
	wantError(t, "DELETE of a destroyed bridge", err, ari.ErrNotFound, http.StatusNotFound, "Bridge not found")
	// The channels stay in Stasis.
	for _, id := range []ari.ChannelID{a, b} {
		if _, err := k.c.GetChannel(ctx, id); err != nil {
			t.Errorf("GET %s after its bridge was destroyed: %v", id, err)
		}
	}
	k.w.none(t, "StasisEnd of a or b", func(ev ari.Event) bool { return is("StasisEnd", a)(ev) || is("StasisEnd", b)(ev) })
	// The app was not subscribed to the bridges when they were created.
	k.w.none(t, "BridgeCreated", isType("BridgeCreated"))
}

// contractBridgeIDCollision documents a trap: Asterisk keys an app's subscriptions by id alone, so
// a bridge whose id equals the id of a channel the app is subscribed to shares that channel's
// subscription and the app gets none of the bridge's events, although the bridge works.
func contractBridgeIDCollision(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()
	a, b := k.chanID("a"), k.chanID("b")
	k.originate("a", nil)
	k.originate("b", nil)

	clash := ari.BridgeID(a) // same string as channel a's id
	k.destroyLater(clash)
	if _, err := k.c.CreateBridge(ctx, ari.CreateBridgeRequest{BridgeID: clash, Types: []string{"mixing"}}); err != nil {
		t.Fatalf("create bridge %s: %v", clash, err)
	}
	if err := k.c.AddChannel(ctx, clash, ari.AddChannelRequest{Channels: []ari.ChannelID{b}}); err != nil {
		t.Fatalf("addChannel b: %v", err)
	}
	if got, err := k.c.GetBridge(ctx, clash); err != nil || !sameIDs(got.Channels, b) {
		t.Fatalf("bridge %s: %+v %v, want b in it", clash, got, err)
	}
	// An explicit subscription to the bridge does not help: it lands on channel a's, and the
	// application lists no bridge.
	app, err := k.c.Subscribe(ctx, "", "bridge:"+string(clash))
	if err != nil {
		t.Fatalf("subscribe to bridge:%s: %v", clash, err)
	}
	if slices.Contains(app.BridgeIDs, clash) || !slices.Contains(app.ChannelIDs, a) {
		t.Errorf("after subscribing to bridge:%s: bridge_ids %v channel_ids %v, want the bridge missing and channel a there",
			clash, app.BridgeIDs, app.ChannelIDs)
	}

	// The same with an ordinary bridge, as the sentinel: its events are published after the
	// ones the bridge named like a channel would have had.
	fine := k.bridge("fine", "mixing")
	if err := k.c.AddChannel(ctx, fine, ari.AddChannelRequest{Channels: []ari.ChannelID{a}}); err != nil {
		t.Fatalf("addChannel a: %v", err)
	}
	k.w.eventually(t, "ChannelEnteredBridge of a into the ordinary bridge", inBridge("ChannelEnteredBridge", fine, a))
	if _, err := k.c.Subscribe(ctx, "", "bridge:"+string(fine)); err != nil {
		t.Fatalf("subscribe to bridge:%s: %v", fine, err)
	}
	if err := k.c.DestroyBridge(ctx, clash); err != nil {
		t.Fatalf("destroy bridge %s: %v", clash, err)
	}
	if err := k.c.DestroyBridge(ctx, fine); err != nil {
		t.Fatalf("destroy bridge %s: %v", fine, err)
	}
	k.w.eventually(t, "ChannelLeftBridge of a from the ordinary bridge", inBridge("ChannelLeftBridge", fine, a))
	k.w.eventually(t, "BridgeDestroyed of the ordinary bridge", inBridge("BridgeDestroyed", fine, ""))
	k.w.none(t, "event of the bridge whose id is a channel's", func(ev ari.Event) bool { return bridgeOf(ev) == clash })
	if _, err := k.c.GetBridge(ctx, clash); !errors.Is(err, ari.ErrNotFound) {
		t.Errorf("GET bridge %s after destroying it: %v, want 404", clash, err)
	}
}

// sameIDs reports whether got holds exactly want, in any order.
func sameIDs(got []ari.ChannelID, want ...ari.ChannelID) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}
