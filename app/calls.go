package app

import (
	"context"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/earpiece/earpiece/ari"
)

// The calls index: the tenants' calls in progress, for GET /v1/calls and call notifications.
//
// The app subscribes to every PJSIP endpoint (eventSource endpoint:PJSIP), so Asterisk sends it
// the state, bridge and hangup events of the phones' channels even though those calls never
// enter Stasis. Each such event schedules a rebuild of the index from two REST calls (bridges and
// channels); a burst of events costs one rebuild, and readers never wait for one: they read an
// immutable snapshot through an atomic pointer, so listing calls costs no ARI or Redis round trip.
// The index is also rebuilt after every (re)connection, and every few seconds as a safety net.

// callIndex is one immutable snapshot.
type callIndex struct {
	byID    map[string]Call   // call id (agent channel) -> call
	byAgent map[string]string // tenant/extension -> call id
	built   time.Time
}

type calls struct {
	snap    atomic.Pointer[callIndex]
	trigger chan struct{}
}

const (
	callsDebounce = 20 * time.Millisecond
	callsRefresh  = 5 * time.Second
)

// runCalls rebuilds the index when triggered; it is started by Run.
func (a *App) runCalls(ctx context.Context) {
	tick := time.NewTicker(callsRefresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.calls.trigger:
			// Let the burst settle (a call's answer brings a state change, a bridge entry and a
			// Dial event within a few milliseconds), then rebuild once.
			t := time.NewTimer(callsDebounce)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			select {
			case <-a.calls.trigger:
			default:
			}
			a.rebuildCalls(ctx)
		case <-tick.C:
			a.rebuildCalls(ctx)
		}
	}
}

// touchCalls asks for a rebuild (never blocks).
func (a *App) touchCalls() {
	select {
	case a.calls.trigger <- struct{}{}:
	default:
	}
}

// isCallEvent reports whether ev may change the calls index.
func isCallEvent(ev ari.Event) bool {
	switch ev.(type) {
	case *ari.ChannelStateChange, *ari.ChannelDestroyed, *ari.ChannelEnteredBridge, *ari.ChannelLeftBridge, *ari.Dial:
		return true
	}
	return false
}

// rebuildCalls scans Asterisk's bridges and channels and publishes a new snapshot, notifying
// calls that started or ended since the last one.
func (a *App) rebuildCalls(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	bridges, err := a.ari.ListBridges(ctx)
	if err != nil {
		a.log.Debug().Err(err).Msg("calls index: list bridges")
		return
	}
	chans, err := a.ari.ListChannels(ctx)
	if err != nil {
		a.log.Debug().Err(err).Msg("calls index: list channels")
		return
	}
	byID := make(map[ari.ChannelID]ari.Channel, len(chans))
	for _, c := range chans {
		byID[c.ID] = c
	}
	idx := &callIndex{byID: map[string]Call{}, byAgent: map[string]string{}, built: a.cfg.Clock()}
	for _, b := range bridges {
		if strings.HasPrefix(b.Name, BridgeNamePrefix) || len(b.Channels) < 2 {
			continue
		}
		for _, id := range b.Channels {
			ch, ok := byID[id]
			if !ok || ch.State != "Up" {
				continue
			}
			tenant, ext, ok := a.dir.Current().TenantByEndpoint(endpointOf(ch.Name))
			if !ok {
				continue
			}
			c := Call{
				ID: string(ch.ID), Tenant: tenant.ID, Agent: ext.Number,
				CustomerNumber: ch.Connected.Number,
				Direction:      direction(ch),
				StartedAt:      ch.CreationTime.Time,
			}
			if c.CustomerNumber == "" {
				for _, other := range b.Channels {
					if o, ok := byID[other]; ok && other != id {
						c.CustomerNumber = o.Caller.Number
						break
					}
				}
			}
			idx.byID[c.ID] = c
			idx.byAgent[tenant.ID+"/"+ext.Number] = c.ID
		}
	}
	old := a.calls.snap.Swap(idx)
	if old == nil {
		old = &callIndex{}
	}
	if !a.running() {
		return // a standby's index (lease_calls.go): the active notifies
	}
	for id, c := range idx.byID {
		if _, ok := old.byID[id]; !ok {
			a.notify(c.Tenant, NoteCallStarted, c)
		}
	}
	var ended []Call
	for id, c := range old.byID {
		if _, ok := idx.byID[id]; !ok {
			a.notify(c.Tenant, NoteCallEnded, c)
			ended = append(ended, c)
		}
	}
	// A help request ends with its call.
	a.closeHelpOfEndedCalls(ctx, ended)
}

// direction is "inbound" when the phone's channel was created by a Dial() (or a queue) calling
// the phone — Asterisk then shows it running AppDial, "(Outgoing Line)" — and "outbound" when the
// phone placed the call and its channel runs the dialplan itself.
func direction(ch ari.Channel) string {
	if strings.HasPrefix(ch.Dialplan.AppName, "AppDial") {
		return "inbound"
	}
	return "outbound"
}

// callsFor returns the tenant's calls, with this instance's supervisors on each, oldest first.
func (a *App) callsFor(tenant string) []Call {
	idx := a.calls.snap.Load()
	if idx == nil {
		return []Call{}
	}
	parts := a.participants(tenant)
	out := make([]Call, 0, 8)
	for _, c := range idx.byID {
		if c.Tenant != tenant {
			continue
		}
		c.Supervisors = parts[c.ID]
		if c.Supervisors == nil {
			c.Supervisors = []Participant{}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// callOf returns the call with id in tenant, or the call of agent extension in tenant.
func (a *App) callOf(tenant, id, agent string) (Call, bool) {
	idx := a.calls.snap.Load()
	if idx == nil {
		return Call{}, false
	}
	if id == "" {
		id = idx.byAgent[tenant+"/"+agent]
	}
	c, ok := idx.byID[id]
	if !ok || c.Tenant != tenant {
		return Call{}, false
	}
	return c, true
}

// participants lists the supervisors this instance runs on each call of tenant.
func (a *App) participants(tenant string) map[string][]Participant {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]Participant{}
	for _, s := range a.sessions {
		v := s.view.Load()
		if v == nil || v.tenant != tenant || v.agentChan == "" {
			continue
		}
		out[v.agentChan] = append(out[v.agentChan], Participant{
			SessionID: s.id, Extension: v.supervisor, Mode: v.mode, State: v.state,
		})
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i].SessionID < ps[j].SessionID })
	}
	return out
}
