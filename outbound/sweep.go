package outbound

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/earpiece/earpiece/store"
)

// orphanBatch is how many deliveries of one unknown endpoint a sweep looks at.
const orphanBatch = 100

// errEndpointGone is the last error recorded for a delivery given up because no instance has
// its endpoint any more.
const errEndpointGone = "webhook endpoint no longer configured: given up"

// sweepLoop sweeps at once and every SweepInterval until ctx ends.
func (h *Hub) sweepLoop(ctx context.Context) {
	t := time.NewTicker(h.cfg.SweepInterval)
	defer t.Stop()
	for {
		h.sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep refreshes the outbox gauges, and gives up the deliveries that wait for an endpoint
// this hub does not have (removed from the directory) once they are OrphanAfter old: nobody
// would ever attempt them, and their records would say "pending" or "retrying" forever.
func (h *Hub) sweep(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, h.cfg.StoreTimeout)
	st, err := h.cfg.Store.OutboxStats(sctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			h.log.Debug().Err(err).Msg("outbox metrics not refreshed")
		}
		return
	}
	h.depth.Set(float64(st.Depth))
	h.oldest.Set(st.Oldest.Seconds())
	if st.Depth == 0 {
		return
	}

	known := map[string]map[string]bool{}
	h.mu.Lock()
	for tenant, eqs := range h.byTen {
		known[tenant] = map[string]bool{}
		for _, eq := range eqs {
			known[tenant][eq.id] = true
		}
	}
	h.mu.Unlock()
	sctx, cancel = context.WithTimeout(ctx, h.cfg.StoreTimeout)
	tenants, err := h.cfg.Store.OutboxTenants(sctx)
	cancel()
	if err != nil {
		return
	}
	for _, tenant := range tenants {
		sctx, cancel := context.WithTimeout(ctx, h.cfg.StoreTimeout)
		eps, err := h.cfg.Store.OutboxEndpoints(sctx, tenant)
		cancel()
		if err != nil {
			continue
		}
		for _, ep := range eps {
			if !known[tenant][ep] && ctx.Err() == nil {
				h.sweepOrphans(ctx, tenant, ep)
			}
		}
	}
}

// sweepOrphans looks at the due deliveries of an endpoint this hub does not have: those
// OrphanAfter old are given up (recorded failed), the others released untouched.
func (h *Hub) sweepOrphans(ctx context.Context, tenant, ep string) {
	token := h.owner + ".sweep." + strconv.FormatUint(h.claimSeq.Add(1), 36)
	sctx, cancel := context.WithTimeout(ctx, h.cfg.StoreTimeout)
	claims, _, err := h.cfg.Store.ClaimOutbox(sctx, tenant, ep, orphanBatch, h.cfg.ClaimTimeout, token)
	cancel()
	if err != nil {
		return
	}
	for _, c := range claims {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.StoreTimeout)
		if c.Age < h.cfg.OrphanAfter {
			err = h.cfg.Store.ReleaseOutbox(sctx, c)
		} else {
			rec := c.Delivery
			rec.Status, rec.LastError = store.DeliveryFailed, errEndpointGone
			rec.UpdatedAt, rec.NextAttemptAt = h.cfg.Clock().UTC(), time.Time{}
			err = h.cfg.Store.SettleOutbox(sctx, c, rec, 0)
			if err == nil {
				h.log.Warn().Str("tenant", tenant).Str("url", rec.URL).Str("delivery", rec.ID).Dur("age", c.Age).
					Msg("webhook delivery for an endpoint no longer configured: given up")
			}
		}
		cancel()
		if err != nil && !errors.Is(err, store.ErrNotOwner) {
			h.log.Debug().Err(err).Str("tenant", tenant).Str("delivery", c.Delivery.ID).Msg("sweeping the outbox")
		}
	}
}
