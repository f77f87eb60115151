package ari_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/ari"
)

// contractOriginate: originate into the app with chosen ids, arguments, caller id and variables;
// variables; hangup with a reason and what follows it.
func contractOriginate(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()
	a, other := k.chanID("a"), k.chanID("a-other")
	k.hangupLater(a)
	k.hangupLater(other)
	req := ari.OriginateRequest{
		Endpoint:       toneEndpoint,
		App:            k.app,
		AppArgs:        "one,two words,three",
		CallerID:       `"Contract Test" <5551234>`,
		Variables:      map[string]string{"CONTRACT_VAR": "hello world"},
		ChannelID:      a,
		OtherChannelID: other,
	}
	ch, err := k.c.Originate(ctx, req)
	if err != nil {
		t.Fatalf("originate: %v", err)
	}
	if ch.ID != a || !strings.HasPrefix(ch.Name, "Local/tone440@earpiece-test-tones-") || !strings.HasSuffix(ch.Name, ";1") {
		t.Errorf("originate answered id %q name %q, want %s and the ;1 half of a Local channel", ch.ID, ch.Name, a)
	}
	t.Logf("originate answered state %q", ch.State)

	ss := k.w.await(t, "StasisStart", is("StasisStart", a)).ev.(*ari.StasisStart)
	if want := []string{"one", "two words", "three"}; !slices.Equal(ss.Args, want) {
		t.Errorf("StasisStart args %q, want %q", ss.Args, want)
	}
	if ss.Channel.Caller != (ari.CallerID{Name: "Contract Test", Number: "5551234"}) || ss.Channel.State != "Up" {
		t.Errorf("StasisStart channel caller %+v state %q, want Contract Test <5551234>, Up", ss.Channel.Caller, ss.Channel.State)
	}
	// The app is subscribed to the other half too: it runs the dialplan under the chosen id.
	k.w.eventually(t, "an event of the other half", func(ev ari.Event) bool { return channelOf(ev) == other })
	if ch, err := k.c.GetChannel(ctx, other); err != nil || !strings.HasSuffix(ch.Name, ";2") {
		t.Errorf("GET the other half %s: %+v %v, want the ;2 half", other, ch, err)
	}
	dial := k.w.eventually(t, "Dial ANSWER", func(ev ari.Event) bool {
		d, ok := ev.(*ari.Dial)
		return ok && d.Peer.ID == a && d.DialStatus == "ANSWER"
	}).ev.(*ari.Dial)
	if dial.Caller != nil {
		t.Logf("Dial caller %s", dial.Caller.ID)
	}

	_, err = k.c.Originate(ctx, req)
	wantError(t, "originate with an id in use", err, ari.ErrConflict, http.StatusConflict, "Channel with given unique ID already exists")

	// Variables.
	if v, err := k.c.GetVar(ctx, a, "CONTRACT_VAR"); err != nil || v != "hello world" {
		t.Errorf("GetVar CONTRACT_VAR = %q, %v; want hello world", v, err)
	}
	if v, err := k.c.GetVar(ctx, a, "CALLERID(num)"); err != nil || v != "5551234" {
		t.Errorf("GetVar CALLERID(num) = %q, %v; want 5551234", v, err)
	}
	v, err := k.c.GetVar(ctx, a, "CONTRACT_UNSET")
	t.Logf("GetVar of an unset variable: %q, %v", v, err)
	if err != nil && !errors.Is(err, ari.ErrNotFound) {
		t.Errorf("GetVar of an unset variable: %v, want \"\" or 404", err)
	}
	k.w.skipAll()
	if err := k.c.SetVar(ctx, a, "CONTRACT_SET", "x y"); err != nil {
		t.Fatalf("SetVar: %v", err)
	}
	vs := k.w.await(t, "ChannelVarset CONTRACT_SET", func(ev ari.Event) bool {
		e, ok := ev.(*ari.ChannelVarset)
		return ok && e.Variable == "CONTRACT_SET"
	}).ev.(*ari.ChannelVarset)
	if vs.Value != "x y" || vs.Channel == nil || vs.Channel.ID != a {
		t.Errorf("ChannelVarset %+v, want value %q on %s", vs, "x y", a)
	}
	if v, err := k.c.GetVar(ctx, a, "CONTRACT_SET"); err != nil || v != "x y" {
		t.Errorf("GetVar CONTRACT_SET = %q, %v; want %q", v, err, "x y")
	}

	// Hangup with a reason.
	err = k.c.Hangup(ctx, a, "sideways")
	wantError(t, "hangup with an unknown reason", err, ari.ErrBadRequest, http.StatusBadRequest, "Invalid reason for hangup reason provided")
	k.w.skipAll()
	if err := k.c.Hangup(ctx, a, "busy"); err != nil {
		t.Fatalf("hangup: %v", err)
	}
	hr := k.w.await(t, "ChannelHangupRequest", is("ChannelHangupRequest", a)).ev.(*ari.ChannelHangupRequest)
	k.w.await(t, "StasisEnd", is("StasisEnd", a))
	cd := k.w.await(t, "ChannelDestroyed", is("ChannelDestroyed", a)).ev.(*ari.ChannelDestroyed)
	t.Logf("hangup reason busy: ChannelHangupRequest cause %d soft %v; ChannelDestroyed cause %d %q", hr.Cause, hr.Soft, cd.Cause, cd.CauseTxt)
	if cd.Cause != 17 || cd.CauseTxt != "User busy" {
		t.Errorf("ChannelDestroyed cause %d %q, want 17 \"User busy\"", cd.Cause, cd.CauseTxt)
	}
	k.w.eventually(t, "ChannelDestroyed of the other half", is("ChannelDestroyed", other))

	_, err = k.c.GetChannel(ctx, a)
	wantError(t, "GET of a hung-up channel", err, ari.ErrNotFound, http.StatusNotFound, "Channel not found")
	err = k.c.Hangup(ctx, a, "")
	wantError(t, "hangup of a hung-up channel", err, ari.ErrNotFound, http.StatusNotFound, "Channel not found")
	_, err = k.c.GetVar(ctx, a, "CONTRACT_VAR")
	wantError(t, "GetVar of a hung-up channel", err, ari.ErrNotFound, http.StatusNotFound, "")
}

// contractOriginateUnregisteredPJSIP: originating to a PJSIP endpoint with no registered contact
// fails at once with a 500 ({"error":"Allocation failed"}: chan_pjsip cannot create the channel
// without a contact); no channel is made and no event comes for the chosen id.
func contractOriginateUnregisteredPJSIP(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()
	p := k.chanID("pjsip")
	k.hangupLater(p)
	ep, err := k.c.GetEndpoint(ctx, "PJSIP", "744")
	if err != nil {
		t.Fatalf("GET endpoint PJSIP/744: %v", err)
	}
	if ep.State == "online" {
		t.Skipf("PJSIP/744 is online (a phone is registered): %+v", ep)
	}
	start := time.Now()
	_, err = k.c.Originate(ctx, ari.OriginateRequest{Endpoint: "PJSIP/744", App: k.app, ChannelID: p, Timeout: 5 * time.Second})
	e := wantError(t, "originate to an unregistered PJSIP endpoint", err, ari.ErrServer, http.StatusInternalServerError, "Allocation failed")
	if e != nil {
		t.Logf("originate to PJSIP/744 (endpoint state %q): %d %q after %v", ep.State, e.Status, e.Message, time.Since(start))
	}
	_, err = k.c.GetChannel(ctx, p)
	wantError(t, "GET of the channel that was not made", err, ari.ErrNotFound, http.StatusNotFound, "")
	// A sentinel: a later channel's StasisStart; nothing came for p before it.
	k.originate("sentinel", nil)
	k.w.none(t, "event for the failed originate", func(ev ari.Event) bool { return channelOf(ev) == p })
}

// contractOriginateNoWebSocket: originating into an app that no WebSocket holds gives a channel
// that is hung up at once (it cannot enter Stasis); calls on it then get 404.
func contractOriginateNoWebSocket(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()
	nobody := k.app + "-nows"
	id := k.chanID("orphan")
	k.hangupLater(id)
	start := time.Now()
	ch, err := k.c.Originate(ctx, ari.OriginateRequest{Endpoint: toneEndpoint, App: nobody, ChannelID: id})
	if err != nil {
		t.Fatalf("originate into %s: %v", nobody, err)
	}
	if ch.ID != id {
		t.Errorf("originate answered %q, want %q", ch.ID, id)
	}
	k.awaitGone(id)
	t.Logf("originate into an app without a WebSocket: channel gone %v after the POST", time.Since(start))
	err = k.c.SetVar(ctx, id, "X", "y")
	wantError(t, "SetVar", err, ari.ErrNotFound, http.StatusNotFound, "")
	err = k.c.Hangup(ctx, id, "")
	wantError(t, "Hangup", err, ari.ErrNotFound, http.StatusNotFound, "Channel not found")
	_, err = k.c.GetApplication(ctx, nobody)
	wantError(t, "GET of the app", err, ari.ErrNotFound, http.StatusNotFound, "")
}

// contractDTMF: POST /channels/{id}/dtmf sends digits out of the channel (to the party), it
// does not inject them into the channel. On a Local channel in Stasis they reach its ;2 half,
// which the app is subscribed to (originate subscribed it), so the app gets ChannelDtmfReceived
// for the ;2 half, one per digit, in order, with the duration asked for. Nothing crosses the
// bridge: neither the sender nor the channel bridged with it raise ChannelDtmfReceived.
func contractDTMF(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()
	a, b := k.chanID("a"), k.chanID("b")
	a2 := k.chanID("a-other")
	k.hangupLater(a2)
	k.originate("a", func(r *ari.OriginateRequest) { r.OtherChannelID = a2 })
	k.originate("b", nil)
	br := k.bridge("dtmf", "mixing", "dtmf_events")
	if err := k.c.AddChannel(ctx, br, ari.AddChannelRequest{Channels: []ari.ChannelID{a, b}}); err != nil {
		t.Fatalf("addChannel: %v", err)
	}
	k.w.eventually(t, "ChannelEnteredBridge of b", inBridge("ChannelEnteredBridge", br, b))

	err := k.c.SendDTMF(ctx, a, ari.DTMFRequest{})
	wantError(t, "dtmf without digits", err, ari.ErrBadRequest, http.StatusBadRequest, "DTMF is required")
	err = k.c.SendDTMF(ctx, a2, ari.DTMFRequest{DTMF: "1"})
	wantError(t, "dtmf to a channel not in Stasis", err, ari.ErrConflict, http.StatusConflict, "Channel not in Stasis application")

	const digits = "159#*"
	k.w.skipAll()
	start := time.Now()
	if err := k.c.SendDTMF(ctx, a, ari.DTMFRequest{DTMF: digits, Duration: 120, Between: 50}); err != nil {
		t.Fatalf("dtmf: %v", err)
	}
	for _, d := range digits {
		ev := k.w.await(t, fmt.Sprintf("ChannelDtmfReceived %c on the ;2 half", d), func(ev ari.Event) bool {
			_, ok := ev.(*ari.ChannelDtmfReceived)
			return ok && channelOf(ev) == a2
		}).ev.(*ari.ChannelDtmfReceived)
		if ev.Digit != string(d) || ev.DurationMs != 120 {
			t.Fatalf("ChannelDtmfReceived digit %q of %d ms, want %q of 120 ms (digits %s in order)", ev.Digit, ev.DurationMs, string(d), digits)
		}
	}
	t.Logf("dtmf %q (120 ms each, 50 ms between): ChannelDtmfReceived on %s, the last %v after the POST", digits, a2, time.Since(start))

	// A sentinel through b, which would come after anything a's digits did to b: only b's ;2
	// half receives it. Asterisk lengthens a digit shorter than its minimum.
	if err := k.c.SendDTMF(ctx, b, ari.DTMFRequest{DTMF: "0", Duration: 60}); err != nil {
		t.Fatalf("dtmf: %v", err)
	}
	zero := k.w.await(t, "ChannelDtmfReceived 0 on b's ;2 half", is("ChannelDtmfReceived", b+";2")).ev.(*ari.ChannelDtmfReceived)
	t.Logf("dtmf of 60 ms: ChannelDtmfReceived of %d ms", zero.DurationMs)
	if zero.Digit != "0" {
		t.Errorf("ChannelDtmfReceived on b's ;2 half: digit %q, want 0", zero.Digit)
	}
	k.w.none(t, "ChannelDtmfReceived on a channel in Stasis", func(ev ari.Event) bool {
		_, ok := ev.(*ari.ChannelDtmfReceived)
		return ok && (channelOf(ev) == a || channelOf(ev) == b)
	})
}

// contractPlayback: a tone playback on a channel starts, and stops when asked.
func contractPlayback(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()
	a := k.chanID("a")
	k.originate("a", nil)
	pbID := ari.PlaybackID(k.id("pb", "congestion"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), contractWait)
		defer cancel()
		_ = k.c.StopPlayback(ctx, pbID)
	})
	pb, err := k.c.Play(ctx, a, ari.PlayRequest{PlaybackID: pbID, Media: []string{"tone:congestion"}})
	if err != nil {
		t.Fatalf("play: %v", err)
	}
	if pb.ID != pbID || pb.MediaURI != "tone:congestion" || pb.TargetURI != "channel:"+string(a) {
		t.Errorf("play answered %+v, want id %s, media tone:congestion, target channel:%s", pb, pbID, a)
	}
	started := k.w.await(t, "PlaybackStarted", isPlayback("PlaybackStarted", pbID)).ev.(*ari.PlaybackStarted)
	if started.Playback.State != "playing" {
		t.Errorf("PlaybackStarted state %q, want playing", started.Playback.State)
	}
	if got, err := k.c.GetPlayback(ctx, pbID); err != nil || got.State != "playing" {
		t.Errorf("GET playback: %+v %v, want playing", got, err)
	}
	if err := k.c.StopPlayback(ctx, pbID); err != nil {
		t.Fatalf("stop playback: %v", err)
	}
	finished := k.w.await(t, "PlaybackFinished", isPlayback("PlaybackFinished", pbID)).ev.(*ari.PlaybackFinished)
	t.Logf("playback answered state %q; PlaybackStarted %q; stopped: PlaybackFinished %q", pb.State, started.Playback.State, finished.Playback.State)
	if finished.Playback.State != "done" {
		t.Errorf("PlaybackFinished state %q, want done", finished.Playback.State)
	}
	// The playback is forgotten just after its PlaybackFinished is published: a GET right
	// after the event may still find it.
	after := pollUntil(t, "GET of the finished playback is a 404", func() bool {
		_, err := k.c.GetPlayback(ctx, pbID)
		return errors.Is(err, ari.ErrNotFound)
	})
	t.Logf("GET of the playback a 404 %v after its PlaybackFinished was seen", after)
	err = k.c.StopPlayback(ctx, pbID)
	wantError(t, "stop of a finished playback", err, ari.ErrNotFound, http.StatusNotFound, "")
	_, err = k.c.Play(ctx, k.chanID("nobody"), ari.PlayRequest{Media: []string{"tone:busy"}})
	wantError(t, "play to an unknown channel", err, ari.ErrNotFound, http.StatusNotFound, "")
}

// contractPlaybackBlocksCommands: a playback runs on the channel's Stasis thread, so the channel
// operations ARI queues to that thread (here SetVar) wait until the playback ends; a tone: plays
// until stopped. Stopping the playback is not queued, and the waiting operation then runs: the
// queue is not dropped when the client gives up waiting.
func contractPlaybackBlocksCommands(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()
	a := k.chanID("a")
	k.originate("a", nil)
	pbID := ari.PlaybackID(k.id("pb", "busy"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), contractWait)
		defer cancel()
		_ = k.c.StopPlayback(ctx, pbID)
	})
	if _, err := k.c.Play(ctx, a, ari.PlayRequest{PlaybackID: pbID, Media: []string{"tone:busy"}}); err != nil {
		t.Fatalf("play: %v", err)
	}
	k.w.await(t, "PlaybackStarted", isPlayback("PlaybackStarted", pbID))

	short, cancel := context.WithTimeout(ctx, quietWindow)
	defer cancel()
	err := k.c.SetVar(short, a, "CONTRACT_QUEUED", "late")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SetVar during a playback: %v, want it still waiting after %v", err, quietWindow)
	}
	if v, err := k.c.GetVar(ctx, a, "CONTRACT_QUEUED"); err == nil {
		t.Logf("GetVar during the playback (not queued): %q", v)
	} else if !errors.Is(err, ari.ErrNotFound) {
		t.Errorf("GetVar during a playback: %v", err)
	}
	if err := k.c.StopPlayback(ctx, pbID); err != nil {
		t.Fatalf("stop playback: %v", err)
	}
	k.w.await(t, "PlaybackFinished", isPlayback("PlaybackFinished", pbID))
	k.w.eventually(t, "ChannelVarset of the SetVar that waited", func(ev ari.Event) bool {
		e, ok := ev.(*ari.ChannelVarset)
		return ok && e.Variable == "CONTRACT_QUEUED" && e.Value == "late"
	})
	start := time.Now()
	if err := k.c.SetVar(ctx, a, "CONTRACT_AFTER", "x"); err != nil {
		t.Errorf("SetVar after the playback: %v", err)
	}
	t.Logf("SetVar after the playback stopped: %v", time.Since(start))
}

// contractRecording: record a channel to wav, stop, fetch the stored file, delete it.
func contractRecording(t *testing.T, env *contractEnv) {
	k := newKit(t, env, env.ast, nil)
	ctx := k.ctx()
	a := k.chanID("a")
	k.originate("a", nil)
	// The ;2 half's Answer() waits up to 500 ms for media before the dialplan goes on to
	// Playtones; until then a has no audio to record, and a recording of that is empty (a
	// 44-byte header): Asterisk writes only the frames it reads.
	k.w.eventually(t, "the ;2 half starting Playtones", func(ev ari.Event) bool {
		e, ok := ev.(*ari.ChannelDialplan)
		return ok && e.Channel.ID == a+";2" && strings.EqualFold(e.DialplanApp, "Playtones")
	})
	name := ari.RecordingName(k.id("rec", "a"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), contractWait)
		defer cancel()
		_ = k.c.StopRecording(ctx, name)
		if err := k.c.DeleteStoredRecording(ctx, name); err != nil && !errors.Is(err, ari.ErrNotFound) {
			t.Errorf("cleanup: delete recording %s: %v", name, err)
		}
	})

	live, err := k.c.RecordChannel(ctx, a, ari.RecordRequest{Name: name, Format: "wav"})
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	if live.Name != name || live.Format != "wav" || live.TargetURI != "channel:"+string(a) {
		t.Errorf("record answered %+v, want name %s, wav, target channel:%s", live, name, a)
	}
	k.w.await(t, "RecordingStarted", isRecording("RecordingStarted", name))
	_, err = k.c.RecordChannel(ctx, a, ari.RecordRequest{Name: name, Format: "wav"})
	wantError(t, "a second recording with the name of a live one", err, ari.ErrConflict, http.StatusConflict, "")
	time.Sleep(500 * time.Millisecond) // something to record
	if err := k.c.StopRecording(ctx, name); err != nil {
		t.Fatalf("stop recording: %v", err)
	}
	fin := k.w.await(t, "RecordingFinished", isRecording("RecordingFinished", name)).ev.(*ari.RecordingFinished)
	t.Logf("RecordingFinished: state %q duration %d s", fin.Recording.State, fin.Recording.Duration)
	if fin.Recording.State != "done" {
		t.Errorf("RecordingFinished state %q, want done", fin.Recording.State)
	}

	stored, err := k.c.GetStoredRecording(ctx, name)
	if err != nil || stored.Name != name || stored.Format != "wav" {
		t.Errorf("GET stored recording: %+v %v, want %s in wav", stored, err, name)
	}
	file, err := k.c.StoredRecordingFile(ctx, name)
	if err != nil {
		t.Fatalf("GET the recording's file: %v", err)
	}
	// 0.5 s of 8 kHz 16-bit mono is 8000 bytes after the 44-byte header; allow for the start
	// and stop of the recording taking some of it.
	t.Logf("stored recording of about 0.5 s: %d bytes", len(file))
	if len(file) < 44+1600 || len(file) > 44+16000*5 || !bytes.Equal(file[0:4], []byte("RIFF")) || !bytes.Equal(file[8:12], []byte("WAVE")) {
		t.Errorf("recording file of %d bytes starting %q, want a RIFF/WAVE file of 0.1-5 s", len(file), file[:min(len(file), 12)])
	}
	_, err = k.c.RecordChannel(ctx, a, ari.RecordRequest{Name: name, Format: "wav", IfExists: "fail"})
	wantError(t, "recording over a stored one with ifExists=fail", err, ari.ErrConflict, http.StatusConflict, "")

	if err := k.c.DeleteStoredRecording(ctx, name); err != nil {
		t.Fatalf("delete the recording: %v", err)
	}
	_, err = k.c.GetStoredRecording(ctx, name)
	wantError(t, "GET of a deleted recording", err, ari.ErrNotFound, http.StatusNotFound, "")
	_, err = k.c.StoredRecordingFile(ctx, name)
	wantError(t, "GET of a deleted recording's file", err, ari.ErrNotFound, http.StatusNotFound, "")
	err = k.c.DeleteStoredRecording(ctx, name)
	wantError(t, "DELETE of a deleted recording", err, ari.ErrNotFound, http.StatusNotFound, "")
}

func isPlayback(typ string, id ari.PlaybackID) func(ari.Event) bool {
	return func(ev ari.Event) bool {
		switch e := ev.(type) {
		case *ari.PlaybackStarted:
			return typ == e.Type && e.Playback.ID == id
		case *ari.PlaybackFinished:
			return typ == e.Type && e.Playback.ID == id
		}
		return false
	}
}

func isRecording(typ string, name ari.RecordingName) func(ari.Event) bool {
	return func(ev ari.Event) bool {
		switch e := ev.(type) {
		case *ari.RecordingStarted:
			return typ == e.Type && e.Recording.Name == name
		case *ari.RecordingFinished:
			return typ == e.Type && e.Recording.Name == name
		case *ari.RecordingFailed:
			return typ == e.Type && e.Recording.Name == name
		}
		return false
	}
}
