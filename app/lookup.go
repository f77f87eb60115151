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
// supervisor who is also an agent is not "on a call" while supervising.
func (a *App) activeCall(ctx context.Context, agent *config.Extension) (ari.ChannelID, error) {
	tech, resource, ok := strings.Cut(agent.Endpoint, "/")
	if !ok {
		return "", refuse(RefuseNoActiveCall, fmt.Errorf("endpoint %q of %s has no technology", agent.Endpoint, agent.Number))
	}
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
		mine[ari.ChannelID(id)] = true
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
		for _, id := range b.Channels {
			cid := ari.ChannelID(id)
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
