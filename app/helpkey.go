package app

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/dialplan"
)

// The in-call help key. An agent presses the tenant's help key sequence (default *0) in a call;
// Asterisk's bridge features catch it on the agent's own channel, so the customer receives no
// digits and the call's audio goes on, and run UserEvent(EarpieceHelp,tenant: <id>) on that channel
// (dialplan.RenderFeatures). ARI delivers it as ChannelUserevent, because the app is subscribed to
// the PJSIP endpoints (subscribePhones). The app raises a help request on that very call, as the
// agent (audited with via "phone"), and tells the agent alone how it went, through a short-lived
// snoop on the agent's channel that whispers out only (the agent hears it, the customer does not;
// the call itself is never touched):
//
//   - raised: one short high beep (helpRaisedTone);
//   - not raised (a request is already open on this call, or it was refused: store or audit trail
//     down, ...): one low tone (helpNotRaisedTone). A second press never makes a second request.

const (
	// One tone each, without commas: ARI's media parameter is a comma-separated list of URIs.
	helpRaisedTone    = "tone:!1800/300"
	helpRaisedLen     = 300 * time.Millisecond
	helpNotRaisedTone = "tone:!480/400"
	helpNotRaisedLen  = 400 * time.Millisecond
	// helpToneWait bounds the wait for the confirmation snoop's StasisStart.
	helpToneWait = 2 * time.Second
)

// onHelpKey handles a ChannelUserevent on the dispatcher goroutine: it checks that it is the help
// key of the tenant the channel's phone belongs to and hands the raise to a goroutine of its own.
func (a *App) onHelpKey(ctx context.Context, e *ari.ChannelUserevent) {
	if e.EventName != dialplan.HelpEvent {
		return
	}
	if e.Channel == nil {
		a.log.Warn().Msg("help key: user event without a channel")
		return
	}
	ch, name := ari.ChannelID(e.Channel.ID), e.Channel.Name
	var body struct {
		Tenant string `json:"tenant"`
	}
	_ = json.Unmarshal(e.UserEvent, &body) // a missing or odd body fails the tenant check below
	tenant, ext, ok := a.dir.Current().TenantByEndpoint(endpointOf(name))
	if !ok || tenant.ID != body.Tenant {
		// Not one of our phones, or the dialplan gave the key of another tenant to this phone: a
		// request would be raised in the wrong tenant's name.
		a.log.Warn().Str("channel", string(ch)).Str("name", name).Str("event_tenant", body.Tenant).
			Msg("help key on a channel of no extension of that tenant: ignored")
		return
	}
	a.mu.Lock()
	closing := a.closing
	a.mu.Unlock()
	if closing {
		return
	}
	p := Principal{Tenant: tenant.ID, Role: config.RoleAgent, Extension: ext.Number}
	a.spawn(func() {
		// Bounded, so a Redis that does not answer cannot hold App.Run's shutdown.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*a.cfg.CallTimeout+helpRaisedLen+helpNotRaisedLen)
		defer cancel()
		h, err := a.Raise(ctx, p, RaiseRequest{Via: "phone", call: ch})
		log := a.log.With().Str("tenant", tenant.ID).Str("agent", ext.Number).Str("channel", string(ch)).Logger()
		tone, length := helpRaisedTone, helpRaisedLen
		if err != nil {
			log.Info().Err(err).Msg("help key: no request raised")
			tone, length = helpNotRaisedTone, helpNotRaisedLen
		} else {
			log.Info().Str("help_request", h.ID).Msg("help key: request raised")
		}
		a.toneToAgent(ctx, ch, tone, length)
	})
}

// toneToAgent plays tone to the agent of channel ch only, through a snoop of its own that
// whispers out (what the agent hears) and hears nothing; the snoop is hung up after length.
func (a *App) toneToAgent(ctx context.Context, ch ari.ChannelID, tone string, length time.Duration) {
	id := ari.ChannelID(snoopPrefix + "help-" + uuid.NewString())
	up := make(chan struct{})
	a.mu.Lock()
	a.waiters[id] = up
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.waiters, id)
		a.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, helpToneWait+length+2*a.cfg.CallTimeout)
	defer cancel()
	log := a.log.With().Str("channel", string(ch)).Logger()
	if _, err := a.ari.Snoop(ctx, ch, ari.SnoopRequest{
		SnoopID: id, Spy: ari.DirNone, Whisper: ari.DirOut, App: a.cfg.AppName, AppArgs: argSnoop + ",help",
	}); err != nil {
		log.Warn().Err(err).Msg("help key: confirmation snoop")
		return
	}
	defer a.bestEffortHangup(ctx, id)
	select {
	case <-up:
	case <-time.After(helpToneWait):
		return
	case <-ctx.Done():
		return
	}
	pb, err := a.ari.Play(ctx, id, ari.PlayRequest{Media: []string{tone}})
	if err != nil {
		log.Warn().Err(err).Msg("help key: confirmation tone")
		return
	}
	select {
	case <-time.After(length + 100*time.Millisecond):
	case <-ctx.Done():
	}
	if err := a.ari.StopPlayback(ctx, ari.PlaybackID(pb.ID)); err != nil && !errors.Is(err, ari.ErrNotFound) {
		log.Debug().Err(err).Msg("help key: stop confirmation tone")
	}
}
