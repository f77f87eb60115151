package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/store"
)

// TestE2EReconcileOrphans: what a crashed instance left (a bridge named earpiece:<session> and a
// live session record of this instance) is removed on reconnection; a live session of another
// instance sharing the Redis is left alone.
func TestE2EReconcileOrphans(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(r.Ctx, 10*time.Second)
	defer cancel()
	mk := func(sid, instance string) ari.BridgeID {
		t.Helper()
		b, err := r.Client.CreateBridge(ctx, ari.CreateBridgeRequest{BridgeID: bridgeID(sid), Types: []string{"mixing"}, Name: BridgeNamePrefix + sid})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if err := r.Store.CreateSession(ctx, store.Session{
			ID: sid, Tenant: "acme", Supervisor: "700", Agent: "744", CallID: "c-" + sid, Origin: "feature_code",
			Mode: "spy", State: store.StateActive, SupervisorChannel: "sup-chan-" + sid, AgentChannel: "agent-" + sid,
			BridgeID: string(b.ID), Instance: instance, StartedAt: now, UpdatedAt: now,
		}); err != nil {
			t.Fatal(err)
		}
		return b.ID
	}
	crashed := mk(sessionPrefix+"00000000-0000-0000-0000-00000000dead", "test")
	other := mk(sessionPrefix+"00000000-0000-0000-0000-0000000a11ve", "other-instance")
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r.Client.DestroyBridge(cctx, other)
	})

	r.app.reconcile(ctx)

	// The app's own reconciliation after connecting may be the one that removes it: wait for
	// the outcome, bounded.
	e2etest.WaitFor(t, 5*time.Second, "the orphaned bridge removed", func() bool {
		_, err := r.Client.GetBridge(ctx, crashed)
		return errors.Is(err, ari.ErrNotFound)
	})
	// Adopted (its instance restarted under its name), then ended through its own teardown
	// (adopt.go): the bridge goes before the record ends.
	var s store.Session
	var err error
	e2etest.WaitFor(t, 5*time.Second, "the orphaned session ended", func() bool {
		s, err = r.Store.GetSession(ctx, sessionPrefix+"00000000-0000-0000-0000-00000000dead")
		return err == nil && !s.Live()
	})
	if s.EndReason != ReasonLost {
		t.Errorf("orphaned session: %v %+v", err, s)
	}
	if _, err := r.Client.GetBridge(ctx, other); err != nil {
		t.Errorf("another instance's bridge was removed: %v", err)
	}
	if s, err := r.Store.GetSession(ctx, sessionPrefix+"00000000-0000-0000-0000-0000000a11ve"); err != nil || !s.Live() {
		t.Errorf("another instance's session was ended: %v %+v", err, s)
	}
	if _, ok := e2etest.FindAudit(r.Audit("acme"), "end", "ok", ReasonLost); !ok {
		t.Error("no audit entry for the lost session")
	}
}
