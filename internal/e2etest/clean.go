package e2etest

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/earpiece/earpiece/store"
)

// AssertClean checks, for up to 3 s, that nothing earpiece made is left: no bridge or snoop
// channel of the app's on Asterisk (see Owned), no live session of the tenant in Redis, no
// session running in the app.
func (r *Rig) AssertClean(tenant string) {
	r.T.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := r.Leftovers(tenant)
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			r.T.Fatalf("left behind: %s", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Leftovers describes what AssertClean looks for and finds ("" when nothing).
func (r *Rig) Leftovers(tenant string) string {
	ctx, cancel := context.WithTimeout(r.Ctx, 2*time.Second)
	defer cancel()
	var out []string
	bridges, err := r.Client.ListBridges(ctx)
	if err != nil {
		return "list bridges: " + err.Error()
	}
	for _, b := range bridges {
		if hasPrefix(b.Name, r.owned.BridgeNamePrefix) || hasPrefix(string(b.ID), r.owned.BridgeIDPrefix) {
			out = append(out, "bridge "+string(b.ID))
		}
	}
	chans, err := r.Client.ListChannels(ctx)
	if err != nil {
		return "list channels: " + err.Error()
	}
	for _, c := range chans {
		if hasPrefix(string(c.ID), r.owned.ChannelIDPrefix) || strings.HasPrefix(c.Name, "Snoop/") {
			out = append(out, "channel "+c.Name)
		}
	}
	live, err := r.Store.ListSessions(ctx, tenant)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "list sessions: " + err.Error()
	}
	for _, s := range live {
		out = append(out, "session "+s.ID+" ("+s.State+")")
	}
	if r.app != nil {
		if ids := r.app.Live(); len(ids) > 0 {
			out = append(out, "app sessions "+strings.Join(ids, ","))
		}
	}
	return strings.Join(out, "; ")
}

// hasPrefix is strings.HasPrefix where an empty prefix matches nothing.
func hasPrefix(s, prefix string) bool { return prefix != "" && strings.HasPrefix(s, prefix) }

// Audit returns the tenant's audit entries so far.
func (r *Rig) Audit(tenant string) []store.AuditEntry {
	r.T.Helper()
	ctx, cancel := context.WithTimeout(r.Ctx, 2*time.Second)
	defer cancel()
	es, err := r.Store.Audit(ctx, tenant, time.Time{}, time.Now().Add(time.Minute), 1000)
	if err != nil {
		r.T.Fatal(err)
	}
	return es
}

// FindAudit returns the first entry with action and outcome (and reason, when not "").
func FindAudit(es []store.AuditEntry, action, outcome, reason string) (store.AuditEntry, bool) {
	for _, e := range es {
		if e.Action == action && e.Outcome == outcome && (reason == "" || e.Reason == reason) {
			return e, true
		}
	}
	return store.AuditEntry{}, false
}
