package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
)

// activeCall finds the agent's live call: an Up channel of the agent's endpoint that sits in a
// bridge with at least one other channel. That holds for plain dialplan Dial() calls (a basic
// bridge, listed by GET /bridges like any other) and for queue calls where the agent's PJSIP
// channel is bridged to a Local channel: the channel returned is always the agent's own, never a
// Local one, because it comes from the agent's endpoint. earpiece's own bridges are skipped, so a
// supervisor who is also an agent is not "on a call" while supervising. With several calls (one
// on hold, say), the newest is the one being talked on.
//
// The calls index (calls.go) answers it: the agent's endpoint's calls, newest first, each an Up
// channel bridged with a channel other than earpiece's snoops. One GET /channels/{id} confirms
// the newest still exists and is Up (the index can be a few events behind Asterisk), so a join
// costs the same ARI calls whatever the number of calls in progress. When the index cannot be
// trusted — before its first rebuild after a (re)connection of the events socket, or for an
// endpoint whose events the app does not get (not PJSIP) — the join scans Asterisk instead
// (scanActiveCall), as every join did before the index was kept by events.
func (a *App) activeCall(ctx context.Context, agent *config.Extension) (ari.ChannelID, error) {
	tech, resource, ok := strings.Cut(agent.Endpoint, "/")
	if !ok {
		return "", refuse(RefuseNoActiveCall, fmt.Errorf("endpoint %q of %s has no technology", agent.Endpoint, agent.Number))
	}
	if !strings.EqualFold(tech, "PJSIP") || !a.calls.trusted() {
		return a.scanActiveCall(ctx, agent, tech, resource)
	}
	for i, c := range a.calls.callsOfEndpoint(agent.Endpoint) {
		if i == maxCallConfirms {
			break
		}
		ch, err := a.ari.GetChannel(ctx, ari.ChannelID(c.ID))
		switch {
		case errors.Is(err, ari.ErrNotFound):
			continue // ended: its ChannelDestroyed is on its way to the index
		case err != nil:
			return "", refuse(RefuseAsterisk, fmt.Errorf("get channel %s of %s: %w", c.ID, agent.Endpoint, err))
		case ch.State != "Up":
			continue
		}
		return ch.ID, nil
	}
	return "", refuse(RefuseNoActiveCall, fmt.Errorf("%s is not on a bridged call (calls index)", agent.Endpoint))
}

// maxCallConfirms bounds the channels a join confirms: an agent has a call or two (one on hold).
const maxCallConfirms = 3

// scanActiveCall is activeCall from Asterisk's REST API alone: the endpoint's channels, every
// bridge, and each candidate channel. Its cost grows with the number of bridges on Asterisk.
func (a *App) scanActiveCall(ctx context.Context, agent *config.Extension, tech, resource string) (ari.ChannelID, error) {
	ep, err := a.ari.GetEndpoint(ctx, tech, resource)
	switch {
	case errors.Is(err, ari.ErrNotFound):
		return "", refuse(RefuseNoActiveCall, fmt.Errorf("endpoint %s unknown to Asterisk", agent.Endpoint))
	case err != nil:
		return "", refuse(RefuseAsterisk, fmt.Errorf("get endpoint %s: %w", agent.Endpoint, err))
	}
	if len(ep.ChannelIDs) == 0 {
		return "", refuse(RefuseNoActiveCall, fmt.Errorf("%s has no channel", agent.Endpoint))
	}
	mine := make(map[ari.ChannelID]bool, len(ep.ChannelIDs))
	for _, id := range ep.ChannelIDs {
		mine[id] = true
	}
	bridges, err := a.ari.ListBridges(ctx)
	if err != nil {
		return "", refuse(RefuseAsterisk, fmt.Errorf("list bridges: %w", err))
	}
	var best ari.ChannelID
	var bestAt string
	for _, b := range bridges {
		if strings.HasPrefix(b.Name, BridgeNamePrefix) || len(b.Channels) < 2 {
			continue
		}
		for _, cid := range b.Channels {
			if !mine[cid] {
				continue
			}
			ch, err := a.ari.GetChannel(ctx, cid)
			if err != nil || ch.State != "Up" {
				continue
			}
			// Several calls (one on hold, say): the newest is the one being talked on.
			if at := ch.CreationTime.String(); best == "" || at > bestAt {
				best, bestAt = cid, at
			}
		}
	}
	if best == "" {
		return "", refuse(RefuseNoActiveCall, fmt.Errorf("%s is not on a bridged call", agent.Endpoint))
	}
	return best, nil
}
