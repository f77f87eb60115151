package app

import (
	"context"
	"sort"
	"time"
)

// The calls list on every instance. Its calls come from the calls index, which the active keeps
// current from the events of the phones' channels; a standby gets no events, so it rebuilds the
// index from Asterisk's REST API when asked, at most once a second (standbyCalls), without
// notifying anything (the active notifies). Its supervisors come from Redis, the live sessions of
// the tenant whichever instance runs them (supervisorsFromStore).

// standbyRefresh is how old a standby's calls index may be when it answers.
const standbyRefresh = time.Second

// standbyCalls rebuilds the calls index if this instance is not running the app and its index is
// older than standbyRefresh.
func (a *App) standbyCalls(ctx context.Context) {
	if a.running() {
		return
	}
	a.ha.callsMu.Lock()
	defer a.ha.callsMu.Unlock()
	if at := a.calls.builtAt(); !at.IsZero() && a.cfg.Clock().Sub(at) < standbyRefresh {
		return
	}
	a.rebuildCalls(ctx)
}

// supervisorsFromStore sets each call's supervisors from the tenant's live sessions in Redis (the
// index's own, this instance's, are kept when Redis does not answer).
func (a *App) supervisorsFromStore(ctx context.Context, tenant string, calls []Call) {
	if len(calls) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	live, err := a.store.ListSessions(cctx, tenant)
	if err != nil {
		a.log.Debug().Err(err).Msg("calls: supervisors from Redis")
		return
	}
	by := map[string][]Participant{}
	for _, rec := range live {
		if !rec.Live() || rec.CallID == "" {
			continue
		}
		by[rec.CallID] = append(by[rec.CallID], Participant{
			SessionID: rec.ID, Extension: rec.Supervisor, Mode: rec.Mode, State: rec.State,
		})
	}
	for i := range calls {
		ps := by[calls[i].ID]
		if ps == nil {
			ps = []Participant{}
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].SessionID < ps[j].SessionID })
		calls[i].Supervisors = ps
	}
}
