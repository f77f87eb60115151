package ari

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ListChannels lists the active channels (GET /channels).
func (c *Client) ListChannels(ctx context.Context) ([]Channel, error) {
	var chs []Channel
	err := c.do(ctx, http.MethodGet, "/channels", nil, nil, &chs)
	return chs, err
}

// GetChannel returns a channel's snapshot (GET /channels/{channelId}).
func (c *Client) GetChannel(ctx context.Context, id ChannelID) (Channel, error) {
	var ch Channel
	err := c.do(ctx, http.MethodGet, "/channels/"+seg(string(id)), nil, nil, &ch)
	return ch, err
}

// OriginateRequest holds the parameters of POST /channels (originate). Give
// either Extension/Context/Priority/Label (dialplan) or App/AppArgs (Stasis).
type OriginateRequest struct {
	Endpoint  string // e.g. PJSIP/1001 or Local/100@default
	Extension string
	Context   string
	Priority  int64
	Label     string
	App       string
	AppArgs   string
	CallerID  string
	Timeout   time.Duration // rounded up to seconds; zero: Asterisk's 30 s
	Variables map[string]string
	// ChannelID is chosen by the caller so no event can arrive for a channel
	// the app does not know yet; set it, then POST /channels/{channelId}.
	ChannelID      ChannelID
	OtherChannelID ChannelID // id of the ;2 half of a Local channel
	Originator     ChannelID
	Formats        []string // e.g. ulaw, alaw; sent comma-separated
}

// Originate creates a channel and dials it (POST /channels, or
// POST /channels/{channelId} when ChannelID is set). It answers once the
// channel exists, before it is answered.
func (c *Client) Originate(ctx context.Context, r OriginateRequest) (Channel, error) {
	q := query(
		"endpoint", r.Endpoint,
		"extension", r.Extension,
		"context", r.Context,
		"label", r.Label,
		"app", r.App,
		"appArgs", r.AppArgs,
		"callerId", r.CallerID,
		"timeout", seconds(r.Timeout),
		"otherChannelId", string(r.OtherChannelID),
		"originator", string(r.Originator),
		"formats", strings.Join(r.Formats, ","),
	)
	if r.Priority != 0 {
		q.Set("priority", fmt.Sprint(r.Priority))
	}
	path := "/channels"
	if r.ChannelID != "" {
		path += "/" + seg(string(r.ChannelID))
	}
	var ch Channel
	err := c.do(ctx, http.MethodPost, path, q, variablesBody(r.Variables), &ch)
	return ch, err
}

// CreateChannelRequest holds the parameters of POST /channels/create.
type CreateChannelRequest struct {
	Endpoint       string
	App            string // empty: Config.App
	AppArgs        string
	ChannelID      ChannelID
	OtherChannelID ChannelID
	Originator     ChannelID
	Formats        []string
	Variables      map[string]string
}

// CreateChannel creates a channel without dialing it; it enters Stasis and
// is dialed with Dial (POST /channels/create).
func (c *Client) CreateChannel(ctx context.Context, r CreateChannelRequest) (Channel, error) {
	q := query(
		"endpoint", r.Endpoint,
		"app", c.appOr(r.App),
		"appArgs", r.AppArgs,
		"channelId", string(r.ChannelID),
		"otherChannelId", string(r.OtherChannelID),
		"originator", string(r.Originator),
		"formats", strings.Join(r.Formats, ","),
	)
	var ch Channel
	err := c.do(ctx, http.MethodPost, "/channels/create", q, variablesBody(r.Variables), &ch)
	return ch, err
}

// Dial dials a channel made by CreateChannel (POST /channels/{channelId}/dial).
// caller, if set, is the channel the dial is on behalf of; timeout zero
// means none.
func (c *Client) Dial(ctx context.Context, id, caller ChannelID, timeout time.Duration) error {
	q := query("caller", string(caller), "timeout", seconds(timeout))
	return c.do(ctx, http.MethodPost, "/channels/"+seg(string(id))+"/dial", q, nil, nil)
}

// Answer answers a channel (POST /channels/{channelId}/answer).
func (c *Client) Answer(ctx context.Context, id ChannelID) error {
	return c.do(ctx, http.MethodPost, "/channels/"+seg(string(id))+"/answer", nil, nil, nil)
}

// Ring indicates ringing to a channel (POST /channels/{channelId}/ring).
func (c *Client) Ring(ctx context.Context, id ChannelID) error {
	return c.do(ctx, http.MethodPost, "/channels/"+seg(string(id))+"/ring", nil, nil, nil)
}

// RingStop stops indicating ringing (DELETE /channels/{channelId}/ring).
func (c *Client) RingStop(ctx context.Context, id ChannelID) error {
	return c.do(ctx, http.MethodDelete, "/channels/"+seg(string(id))+"/ring", nil, nil, nil)
}

// Hangup hangs a channel up (DELETE /channels/{channelId}). reason is one of
// channels.json's values (normal, busy, congestion, no_answer, timeout,
// rejected, unallocated, normal_unspecified, number_incomplete,
// codec_mismatch, interworking, failure, answered_elsewhere) or empty for
// Asterisk's default (normal).
func (c *Client) Hangup(ctx context.Context, id ChannelID, reason string) error {
	return c.do(ctx, http.MethodDelete, "/channels/"+seg(string(id)), query("reason", reason), nil, nil)
}

// SnoopRequest holds the parameters of POST /channels/{channelId}/snoop.
// Spy and Whisper are relative to the snooped channel (see Direction). Spy
// is what the snoop hears: both = the snooped party and the party it talks
// to. Whisper is where audio put into the snoop goes: out = into the
// snooped party's ear only, in = into the call as if the snooped party
// spoke (the other party hears it), both = to both parties. So a snoop on
// the agent's channel with spy=both lets a bridged supervisor hear agent and
// customer; whisper=none keeps the supervisor inaudible, out lets only the
// agent hear them, both everybody (checked by ear through a real Asterisk
// by app's TestE2EModesByEar). Empty means Asterisk's default (none); both
// none is a 400 (TestContract/parallel/SnoopErrors).
type SnoopRequest struct {
	// SnoopID is chosen by the caller (POST .../snoop/{snoopId}) so the
	// snoop's StasisStart is recognised: it usually follows the answer but
	// can arrive before it (measured: about 1 in 5), so register interest in
	// the id before the call (TestContract/SnoopTiming). A duplicate SnoopID
	// gets a 500, not a 409 (TestContract/parallel/SnoopErrors).
	SnoopID ChannelID
	Spy     Direction
	Whisper Direction
	App     string // empty: Config.App
	AppArgs string
}

// Snoop creates a snoop channel on a channel (POST
// /channels/{channelId}/snoop, or .../snoop/{snoopId} when SnoopID is set).
// The snoop enters App; it cannot be added to a bridge before its
// StasisStart (422).
func (c *Client) Snoop(ctx context.Context, id ChannelID, r SnoopRequest) (Channel, error) {
	q := query("spy", string(r.Spy), "whisper", string(r.Whisper), "app", c.appOr(r.App), "appArgs", r.AppArgs)
	path := "/channels/" + seg(string(id)) + "/snoop"
	if r.SnoopID != "" {
		path += "/" + seg(string(r.SnoopID))
	}
	var ch Channel
	err := c.do(ctx, http.MethodPost, path, q, nil, &ch)
	return ch, err
}

// Mute mutes a channel in a direction (POST /channels/{channelId}/mute);
// empty means both.
func (c *Client) Mute(ctx context.Context, id ChannelID, dir Direction) error {
	return c.do(ctx, http.MethodPost, "/channels/"+seg(string(id))+"/mute", query("direction", string(dir)), nil, nil)
}

// Unmute unmutes a channel in a direction (DELETE
// /channels/{channelId}/mute); empty means both.
func (c *Client) Unmute(ctx context.Context, id ChannelID, dir Direction) error {
	return c.do(ctx, http.MethodDelete, "/channels/"+seg(string(id))+"/mute", query("direction", string(dir)), nil, nil)
}

// PlayRequest holds the parameters of POST /channels/{channelId}/play and
// POST /bridges/{bridgeId}/play.
type PlayRequest struct {
	// PlaybackID is chosen by the caller (POST .../play/{playbackId}) so the
	// PlaybackStarted/Finished events are recognised.
	PlaybackID PlaybackID
	// Media are media URIs played in order, e.g. "sound:beep",
	// "tone:congestion"; sent comma-separated.
	Media    []string
	Lang     string
	OffsetMs int // zero: from the start
	SkipMs   int // zero: Asterisk's 3000
}

func (r PlayRequest) query() url.Values {
	return query("media", strings.Join(r.Media, ","), "lang", r.Lang, "offsetms", itoa(r.OffsetMs), "skipms", itoa(r.SkipMs))
}

// Play plays media to a channel (POST /channels/{channelId}/play, or
// .../play/{playbackId} when PlaybackID is set).
func (c *Client) Play(ctx context.Context, id ChannelID, r PlayRequest) (Playback, error) {
	path := "/channels/" + seg(string(id)) + "/play"
	if r.PlaybackID != "" {
		path += "/" + seg(string(r.PlaybackID))
	}
	var pb Playback
	err := c.do(ctx, http.MethodPost, path, r.query(), nil, &pb)
	return pb, err
}

// DTMFRequest holds the parameters of POST /channels/{channelId}/dtmf. The
// durations are in milliseconds; zero means Asterisk's default (0 before
// and after, 100 between and per digit).
type DTMFRequest struct {
	DTMF     string
	Before   int
	Between  int
	Duration int
	After    int
}

// SendDTMF sends DTMF digits to a channel (POST /channels/{channelId}/dtmf).
func (c *Client) SendDTMF(ctx context.Context, id ChannelID, r DTMFRequest) error {
	q := query("dtmf", r.DTMF, "before", itoa(r.Before), "between", itoa(r.Between), "duration", itoa(r.Duration), "after", itoa(r.After))
	return c.do(ctx, http.MethodPost, "/channels/"+seg(string(id))+"/dtmf", q, nil, nil)
}

// GetVar returns a channel variable or dialplan function's value (GET
// /channels/{channelId}/variable).
func (c *Client) GetVar(ctx context.Context, id ChannelID, name string) (string, error) {
	var v Variable
	err := c.do(ctx, http.MethodGet, "/channels/"+seg(string(id))+"/variable", url.Values{"variable": {name}}, nil, &v)
	return v.Value, err
}

// SetVar sets a channel variable (POST /channels/{channelId}/variable).
func (c *Client) SetVar(ctx context.Context, id ChannelID, name, value string) error {
	q := url.Values{"variable": {name}, "value": {value}}
	return c.do(ctx, http.MethodPost, "/channels/"+seg(string(id))+"/variable", q, nil, nil)
}

// MoveChannel moves a channel from this Stasis application to another (POST
// /channels/{channelId}/move).
func (c *Client) MoveChannel(ctx context.Context, id ChannelID, app, appArgs string) error {
	q := query("app", app, "appArgs", appArgs)
	return c.do(ctx, http.MethodPost, "/channels/"+seg(string(id))+"/move", q, nil, nil)
}

func (c *Client) appOr(app string) string {
	if app == "" {
		return c.cfg.App
	}
	return app
}
