package app

import (
	"context"
	"errors"

	"github.com/earpiece/earpiece/ari"
)

// resyncLive runs after every (re)connection of the events socket, beside reconcile (which
// removes what no running session owns): the events this instance missed while the socket was
// down may have ended one of its own sessions. A supervisor who hung up meanwhile, or a call
// that ended meanwhile, left no StasisEnd to tell the session; without this, the session stayed
// active for ever (its bridge, its snoop on the agent's channel, its record and its talker slot
// with it), as the chaos suite's ari-socket-cut-supervisor-hangs-up scenario showed. Each
// active session's supervisor channel and agent channel are looked up; a missing one is posted
// to the session as the end it missed.
func (a *App) resyncLive(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*a.cfg.CallTimeout)
	defer cancel()
	a.mu.Lock()
	live := make([]*session, 0, len(a.sessions))
	for _, s := range a.sessions {
		live = append(live, s)
	}
	a.mu.Unlock()
	for _, s := range live {
		v := s.view.Load()
		if v == nil || v.state != "active" {
			continue // ringing or joining: their own steps fail on a channel that is gone
		}
		gone := func(id ari.ChannelID) bool {
			if id == "" {
				return false
			}
			_, err := a.ari.GetChannel(ctx, id)
			return errors.Is(err, ari.ErrNotFound)
		}
		switch {
		case gone(s.supChan):
			s.log.Warn().Msg("resync: the supervisor left while the events socket was down")
			s.postEvent(evChannelEnd{id: s.supChan, destroyed: true, cause: 16})
		case gone(ari.ChannelID(v.agentChan)):
			s.log.Warn().Msg("resync: the call ended while the events socket was down")
			s.postEvent(evLeave{reason: ReasonCallEnded})
		}
	}
}
