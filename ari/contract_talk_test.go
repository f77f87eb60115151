package ari_test

import (
	"errors"
	"testing"

	"github.com/earpiece/earpiece/ari"
)

// contractTalkPath pins what earpiece's talk paths rely on (app/talk.go):
//   - a snoop may have spy=none with a whisper direction (out, in), and a snoop may be made on
//     any channel in Stasis (the supervisor's own, spy=in);
//   - two snoops in a mixing bridge run the simple_bridge technology, and muting or unmuting one
//     of them (POST/DELETE /channels/{id}/mute, direction out) answers 204 and leaves the bridge
//     as it is: no technology change, no channel leaving; muting twice is no error;
//   - a third channel moves a mixing bridge to softmix (what a switch that adds a snoop did), and
//     it goes back to simple_bridge when the third leaves;
//   - mute of an unknown channel is a 404;
//   - a snoop on the supervisor's channel ends when that channel hangs up.
//
// Who then hears whom is checked by ear on SIP phones (app's TestE2EModesByEar).
func contractTalkPath(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()
	agent, sup, third := k.chanID("agent"), k.chanID("sup"), k.chanID("third")
	k.originate("agent", nil)
	k.originate("sup", nil)
	k.originate("third", nil)
	voice, agentEar, custEar := ari.ChannelID(k.id("sn", "voice")), ari.ChannelID(k.id("sn", "ear-a")), ari.ChannelID(k.id("sn", "ear-c"))
	for _, s := range []struct {
		id, on       ari.ChannelID
		spy, whisper ari.Direction
	}{
		{voice, sup, ari.DirIn, ari.DirNone},
		{agentEar, agent, ari.DirNone, ari.DirOut},
		{custEar, agent, ari.DirNone, ari.DirIn},
	} {
		k.hangupLater(s.id)
		if _, err := k.c.Snoop(ctx, s.on, ari.SnoopRequest{SnoopID: s.id, Spy: s.spy, Whisper: s.whisper, App: k.app}); err != nil {
			t.Fatalf("snoop %s spy=%s whisper=%s: %v", s.id, s.spy, s.whisper, err)
		}
		k.w.await(t, "StasisStart of "+string(s.id), is("StasisStart", s.id))
	}
	br := k.bridge("talk", "mixing")
	if err := k.c.Mute(ctx, agentEar, ari.DirOut); err != nil {
		t.Fatalf("mute the ear before bridging: %v", err)
	}
	if err := k.c.AddChannel(ctx, br, ari.AddChannelRequest{Channels: []ari.ChannelID{voice, agentEar}}); err != nil {
		t.Fatalf("bridge voice and ear: %v", err)
	}
	tech := func() string {
		b, err := k.c.GetBridge(ctx, br)
		if err != nil {
			t.Fatalf("get bridge: %v", err)
		}
		return b.Technology
	}
	members := func() int {
		b, err := k.c.GetBridge(ctx, br)
		if err != nil {
			t.Fatalf("get bridge: %v", err)
		}
		return len(b.Channels)
	}
	pollUntil(t, "both snoops in the bridge", func() bool { return members() == 2 })
	if got := tech(); got != "simple_bridge" {
		t.Errorf("two snoops in a mixing bridge run %q, want simple_bridge", got)
	}
	for i, step := range []func() error{
		func() error { return k.c.Unmute(ctx, agentEar, ari.DirOut) },
		func() error { return k.c.Mute(ctx, agentEar, ari.DirOut) },
		func() error { return k.c.Mute(ctx, agentEar, ari.DirOut) },
		func() error { return k.c.Unmute(ctx, agentEar, ari.DirOut) },
	} {
		if err := step(); err != nil {
			t.Fatalf("mute step %d: %v", i, err)
		}
		if got, n := tech(), members(); got != "simple_bridge" || n != 2 {
			t.Errorf("after mute step %d the bridge runs %q with %d channels, want simple_bridge with 2", i, got, n)
		}
	}
	k.w.none(t, "a snoop leaving the bridge on a mute", is("ChannelLeftBridge", agentEar))

	// What a switch that adds a third channel does to a two-party bridge.
	if err := k.c.AddChannel(ctx, br, ari.AddChannelRequest{Channels: []ari.ChannelID{third}}); err != nil {
		t.Fatalf("add a third channel: %v", err)
	}
	pollUntil(t, "the bridge moves to softmix with a third channel", func() bool { return tech() == "softmix" })
	if err := k.c.RemoveChannel(ctx, br, third); err != nil {
		t.Fatalf("remove the third channel: %v", err)
	}
	pollUntil(t, "the bridge back to simple_bridge", func() bool { return tech() == "simple_bridge" })

	if err := k.c.Mute(ctx, ari.ChannelID(k.id("ch", "nobody")), ari.DirOut); !errors.Is(err, ari.ErrNotFound) {
		t.Errorf("mute of an unknown channel: %v, want 404", err)
	}

	if err := k.c.Hangup(ctx, sup, ""); err != nil {
		t.Fatalf("hang up the supervisor: %v", err)
	}
	k.w.eventually(t, "StasisEnd of the voice snoop", is("StasisEnd", voice))
	k.awaitGone(voice)
}
