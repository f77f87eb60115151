package app

import (
	"context"
	"errors"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/config"
)

// The announcement policy: silent monitoring is invisible by default; a tenant with
// announce: beep has a short beep played into the call (both the agent and the customer hear it)
// when a supervisor joins. The beep goes through a snoop of its own with whisper=both, created
// and hung up around the playback, so it never touches the session's snoop: the session's spy
// snoop still has no whisper path.

// beepTone is what the call hears: 1400 Hz for 250 ms, once (indications syntax, "!" = no repeat).
const beepTone = "tone:!1400/250"

// beepWait bounds the wait for the beep snoop's StasisStart.
const beepWait = 2 * time.Second

// announce plays the tenant's join announcement into the agent's call, if it has one. It runs on
// its own goroutine (tracked by the app's WaitGroup) so the join is not delayed by it.
func (s *session) announce(ctx context.Context) {
	if s.tenant.Announce != config.AnnounceBeep {
		return
	}
	a := s.app
	id := ari.ChannelID(snoopPrefix + s.id[len(sessionPrefix):] + "-beep")
	agentChan, log := s.m.agentChan, s.log // the goroutine below must not read the session's fields
	up := make(chan struct{})
	a.mu.Lock()
	a.waiters[id] = up
	a.mu.Unlock()
	a.spawn(func() {
		defer func() {
			a.mu.Lock()
			delete(a.waiters, id)
			a.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), beepWait+a.cfg.CallTimeout)
		defer cancel()
		if _, err := a.ari.Snoop(ctx, agentChan, ari.SnoopRequest{
			SnoopID: id, Spy: ari.DirNone, Whisper: ari.DirBoth, App: a.cfg.AppName, AppArgs: argSnoop + "," + s.id,
		}); err != nil {
			log.Warn().Err(err).Msg("announcement snoop")
			return
		}
		defer a.bestEffortHangup(ctx, id)
		select {
		case <-up:
		case <-time.After(beepWait):
			return
		}
		pb, err := a.ari.Play(ctx, id, ari.PlayRequest{Media: []string{beepTone}})
		if err != nil {
			log.Warn().Err(err).Msg("announcement beep")
			return
		}
		time.Sleep(300 * time.Millisecond)
		if err := a.ari.StopPlayback(ctx, ari.PlaybackID(pb.ID)); err != nil && !errors.Is(err, ari.ErrNotFound) {
			log.Debug().Err(err).Msg("stop beep")
		}
	})
}
