package ari_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/ari"
)

// contractSnoopTiming: POST /channels/{id}/snoop/{snoopId} answers with the snoop channel, and
// the snoop's StasisStart (with the appArgs) follows within about a millisecond. The order in
// which the client sees the two is NOT fixed: the snoop enters Stasis on its own thread while
// Asterisk writes the HTTP answer, so the StasisStart is sometimes read before Snoop returns.
// That is why the app chooses the snoop id and registers interest in it before the call.
// addChannel of the snoop right after Snoop returns succeeds unless the snoop has not entered
// Stasis yet (422); once its StasisStart is seen it succeeds.
func contractSnoopTiming(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()
	target := k.chanID("target")
	k.originate("target", nil)
	br := k.bridge("sup", "mixing")

	const n = 10
	var gaps []time.Duration // StasisStart seen - Snoop returned; negative: seen first
	var posts []time.Duration
	var early, rejected, accepted int
	for i := range n {
		snoop := ari.ChannelID(k.id("sn", fmt.Sprint(i)))
		k.hangupLater(snoop)
		start := time.Now()
		ch, err := k.c.Snoop(ctx, target, ari.SnoopRequest{
			SnoopID: snoop, Spy: ari.DirBoth, Whisper: ari.DirNone, App: k.app, AppArgs: "spy,on",
		})
		returned := time.Now()
		if err != nil {
			t.Fatalf("snoop %d: %v", i, err)
		}
		posts = append(posts, returned.Sub(start))
		if ch.ID != snoop || !strings.HasPrefix(ch.Name, "Snoop/") {
			t.Fatalf("snoop answered id %q name %q, want id %q and a Snoop/ name", ch.ID, ch.Name, snoop)
		}
		// At once, before waiting for the StasisStart.
		addErr := k.c.AddChannel(ctx, br, ari.AddChannelRequest{Channels: []ari.ChannelID{snoop}})
		switch {
		case addErr == nil:
			accepted++
		case errors.Is(addErr, ari.ErrUnprocessable):
			rejected++
		default:
			t.Errorf("addChannel of snoop %s right after Snoop: %v, want success or 422", snoop, addErr)
		}

		s := k.w.await(t, "StasisStart of "+string(snoop), is("StasisStart", snoop))
		gaps = append(gaps, s.at.Sub(returned))
		if s.at.Before(returned) {
			early++
		}
		if args := s.ev.(*ari.StasisStart).Args; !slices.Equal(args, []string{"spy", "on"}) {
			t.Errorf("snoop StasisStart args %q, want [spy on]", args)
		}
		if addErr != nil {
			if err := k.c.AddChannel(ctx, br, ari.AddChannelRequest{Channels: []ari.ChannelID{snoop}}); err != nil {
				t.Fatalf("addChannel of snoop %s after its StasisStart: %v", snoop, err)
			}
		}
		k.w.await(t, "ChannelEnteredBridge of "+string(snoop), inBridge("ChannelEnteredBridge", br, snoop))
		if err := k.c.Hangup(ctx, snoop, ""); err != nil {
			t.Fatalf("hang up snoop %s: %v", snoop, err)
		}
		k.w.await(t, "StasisEnd of "+string(snoop), is("StasisEnd", snoop))
	}
	t.Logf("snoop POST: median %v (min %v, max %v)", median(posts), slices.Min(posts), slices.Max(posts))
	t.Logf("snoop POST answered -> its StasisStart seen: median %v (min %v, max %v); StasisStart seen before the answer %d/%d times",
		median(gaps), slices.Min(gaps), slices.Max(gaps), early, n)
	t.Logf("addChannel of the snoop right after Snoop returned: 204 %d/%d, 422 %d/%d", accepted, n, rejected, n)

	// The 422 of a channel that is not in Stasis, made certain: the Local channel's ;2 half
	// runs the dialplan.
	err := k.c.AddChannel(ctx, br, ari.AddChannelRequest{Channels: []ari.ChannelID{target + ";2"}})
	wantError(t, "addChannel of a channel not in Stasis", err, ari.ErrUnprocessable, http.StatusUnprocessableEntity, "not in Stasis")
}

// contractSnoopErrors: the error answers of POST /channels/{id}/snoop, and several snoops on one
// channel.
func contractSnoopErrors(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	target := k.chanID("target")
	k.originate("target", nil)
	ctx := k.ctx()

	_, err := k.c.Snoop(ctx, target, ari.SnoopRequest{Spy: ari.DirNone, Whisper: ari.DirNone})
	wantError(t, "spy=none whisper=none", err, ari.ErrBadRequest, http.StatusBadRequest, "Direction must be specified for at least spy or whisper")
	_, err = k.c.Snoop(ctx, target, ari.SnoopRequest{})
	wantError(t, "no spy, no whisper", err, ari.ErrBadRequest, http.StatusBadRequest, "Direction must be specified")
	_, err = k.c.Snoop(ctx, target, ari.SnoopRequest{Spy: "sideways"})
	wantError(t, "spy=sideways", err, ari.ErrBadRequest, http.StatusBadRequest, "Invalid direction specified for spy")
	_, err = k.c.Snoop(ctx, target, ari.SnoopRequest{Spy: ari.DirBoth, Whisper: "loud"})
	wantError(t, "whisper=loud", err, ari.ErrBadRequest, http.StatusBadRequest, "Invalid direction specified for whisper")
	_, err = k.c.Snoop(ctx, k.chanID("nobody"), ari.SnoopRequest{Spy: ari.DirBoth})
	wantError(t, "unknown target", err, ari.ErrNotFound, http.StatusNotFound, "Provided channel was not found")

	// Several snoops on one channel; a duplicate snoopId is a 500, not a 409.
	sn1, sn2 := ari.ChannelID(k.id("sn", "1")), ari.ChannelID(k.id("sn", "2"))
	k.hangupLater(sn1)
	k.hangupLater(sn2)
	if _, err := k.c.Snoop(ctx, target, ari.SnoopRequest{SnoopID: sn1, Spy: ari.DirBoth}); err != nil {
		t.Fatalf("first snoop: %v", err)
	}
	_, err = k.c.Snoop(ctx, target, ari.SnoopRequest{SnoopID: sn1, Spy: ari.DirIn})
	if e := wantError(t, "duplicate snoopId", err, ari.ErrServer, http.StatusInternalServerError, "Snoop channel could not be created"); e != nil && errors.Is(err, ari.ErrConflict) {
		t.Errorf("duplicate snoopId matched ErrConflict")
	}
	if _, err := k.c.Snoop(ctx, target, ari.SnoopRequest{SnoopID: sn2, Spy: ari.DirOut, Whisper: ari.DirBoth}); err != nil {
		t.Fatalf("second snoop on the same channel: %v", err)
	}
	// Each snoop enters Stasis on its own thread: their StasisStarts come in either order.
	k.w.eventually(t, "StasisStart of "+string(sn1), is("StasisStart", sn1))
	k.w.eventually(t, "StasisStart of "+string(sn2), is("StasisStart", sn2))
	for _, id := range []ari.ChannelID{sn1, sn2} {
		if ch, err := k.c.GetChannel(ctx, id); err != nil || ch.State != "Up" {
			t.Errorf("GET snoop %s: %+v, %v; want it Up", id, ch, err)
		}
	}
	// The duplicate did not disturb the first snoop: exactly one StasisStart for sn1.
	n := 0
	for _, ev := range k.w.all() {
		if is("StasisStart", sn1)(ev) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d StasisStart for %s, want 1", n, sn1)
	}
}

// contractSnoopEndsWithTarget: when the snooped channel hangs up, its snoops leave Stasis and are
// destroyed. The app gets their StasisEnd; it gets their ChannelDestroyed only if it subscribed
// to them itself: a snoop's only subscription is the one Stasis made, and StasisEnd removes it.
// (An originated channel also carries the subscription originate made, so its ChannelDestroyed
// does come after its StasisEnd.)
func contractSnoopEndsWithTarget(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	target := k.chanID("target")
	k.originate("target", nil)
	ctx := k.ctx()
	sn1, sn2 := ari.ChannelID(k.id("sn", "subscribed")), ari.ChannelID(k.id("sn", "plain"))
	for _, id := range []ari.ChannelID{sn1, sn2} {
		k.hangupLater(id)
		if _, err := k.c.Snoop(ctx, target, ari.SnoopRequest{SnoopID: id, Spy: ari.DirBoth}); err != nil {
			t.Fatalf("snoop %s: %v", id, err)
		}
		k.w.await(t, "StasisStart of "+string(id), is("StasisStart", id))
	}
	app, err := k.c.Subscribe(ctx, k.app, "channel:"+string(sn1))
	if err != nil {
		t.Fatalf("subscribe to %s: %v", sn1, err)
	}
	if !slices.Contains(app.ChannelIDs, sn1) {
		t.Errorf("application channel_ids %v after subscribing, want %s in them", app.ChannelIDs, sn1)
	}

	if err := k.c.Hangup(ctx, target, ""); err != nil {
		t.Fatalf("hang up the snooped channel: %v", err)
	}
	k.w.await(t, "StasisEnd of the snooped channel", is("StasisEnd", target))
	for _, id := range []ari.ChannelID{sn1, sn2} {
		k.w.eventually(t, "StasisEnd of "+string(id), is("StasisEnd", id))
	}
	k.w.eventually(t, "ChannelDestroyed of the subscribed snoop", is("ChannelDestroyed", sn1))
	k.w.eventually(t, "ChannelDestroyed of the snooped channel", is("ChannelDestroyed", target))
	for _, id := range []ari.ChannelID{sn1, sn2} {
		k.awaitGone(id)
	}
	// Both snoops went the same way at the same time and are gone; give a late ChannelDestroyed
	// a little longer anyway.
	time.Sleep(quietWindow)
	k.w.none(t, "ChannelDestroyed of the snoop the app did not subscribe to", is("ChannelDestroyed", sn2))
}
