package outbound

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"time"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/store"
)

// pending is a notification on its way to Redis: the deliveries it owes the tenant's endpoints
// (each one an outbox entry with its id made once, here), then its event. What is written is
// struck off, so that a retry writes only the rest.
type pending struct {
	tenant, typ string
	body        []byte
	entries     []store.OutboxEntry
	published   bool
}

// write takes notifications from Notify's queue and writes them to Redis, in order, until ctx
// ends; then it flushes what is left. While Redis fails it keeps up to NotifyQueue of them in
// memory, retrying with backoff; beyond that Notify's queue fills and Notify drops.
func (h *Hub) write(ctx context.Context) {
	var buf []*pending
	var retry *time.Timer // set while backing off
	var wait time.Duration
	failing := false
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		h.buffered.Store(int64(len(buf)))
		if len(buf) > 0 && retry == nil && ctx.Err() == nil {
			n, err := h.writeSome(ctx, buf, time.Time{})
			buf = buf[n:]
			if err != nil {
				wait = backoff(wait)
				retry = time.NewTimer(wait)
				if !failing {
					h.log.Warn().Err(err).Int("waiting", len(buf)).
						Msg("writing notifications to Redis: keeping them in memory and retrying")
					failing = true
				}
			} else {
				wait = 0
				if failing {
					h.log.Info().Msg("notifications written to Redis again")
					failing = false
				}
			}
			if len(buf) == 0 {
				buf = nil // let go of the array
			}
			continue
		}
		notes := h.notes
		if len(buf) >= h.cfg.NotifyQueue {
			notes = nil // full: Notify's queue fills, then Notify drops
		}
		var retryC <-chan time.Time
		if retry != nil {
			retryC = retry.C
		}
		select {
		case <-ctx.Done():
			h.flush(buf)
			h.buffered.Store(0)
			return
		case n := <-notes:
			if p := h.prepare(n); p != nil {
				buf = append(buf, p)
			}
		case <-retryC:
			retry = nil
		}
	}
}

// flush writes what is in memory, Notify's queue included, to Redis: the end of Run. It
// tries until DrainTimeout has passed; what is still not written then is lost, and logged.
func (h *Hub) flush(buf []*pending) {
	if h.crash.Load() {
		return
	}
	deadline := time.Now().Add(h.cfg.DrainTimeout)
	for more := true; more; {
		select {
		case n := <-h.notes:
			if p := h.prepare(n); p != nil {
				buf = append(buf, p)
			}
		default:
			more = false
		}
	}
	var wait time.Duration
	for len(buf) > 0 && time.Until(deadline) > 0 {
		n, err := h.writeSome(context.Background(), buf, deadline)
		buf = buf[n:]
		if err != nil {
			wait = backoff(wait)
			time.Sleep(min(wait, max(time.Until(deadline), 0)))
		}
	}
	if len(buf) > 0 {
		deliveries, events := 0, 0
		for _, p := range buf {
			deliveries += len(p.entries)
			if !p.published {
				events++
			}
		}
		h.log.Error().Int("notifications", len(buf)).Int("deliveries", deliveries).Int("events", events).
			Dur("drain_timeout", h.cfg.DrainTimeout).
			Msg("shutting down: Redis did not take these notifications in time; they are lost")
	}
}

// prepare turns a notification into what Redis is to get: its body, and a delivery for each
// of the tenant's endpoints as they are now. Nil for a notification that cannot be sent.
func (h *Hub) prepare(n app.Notification) *pending {
	log := h.log.With().Str("tenant", n.Tenant).Str("type", n.Type).Logger()
	if n.Tenant == "" || n.Type == "" {
		log.Error().Msg("notification without tenant or type: dropped")
		return nil
	}
	now := h.cfg.Clock().UTC()
	if n.Time.IsZero() {
		n.Time = now
	}
	body, err := json.Marshal(n)
	if err != nil {
		log.Error().Err(err).Msg("encoding notification: dropped")
		return nil
	}
	p := &pending{tenant: n.Tenant, typ: n.Type, body: body}
	h.mu.Lock()
	eqs := h.byTen[n.Tenant]
	h.mu.Unlock()
	for _, eq := range eqs {
		p.entries = append(p.entries, store.OutboxEntry{
			Endpoint: eq.id,
			Body:     body,
			Delivery: store.Delivery{
				ID: "msg_" + crand.Text(), Tenant: n.Tenant, URL: eq.url, Type: n.Type,
				Status: store.DeliveryPending, CreatedAt: now, UpdatedAt: now,
			},
		})
	}
	return p
}

// writeSome writes buf's notifications in order until one fails, and returns how many were
// written and that failure. Each Redis call is bounded by StoreTimeout and deadline (if set),
// and cut when ctx ends (Run's: flush takes over, and writes what was cut again; an outbox add
// is idempotent).
func (h *Hub) writeSome(ctx context.Context, buf []*pending, deadline time.Time) (int, error) {
	for i, p := range buf {
		if err := h.writeOne(ctx, p, deadline); err != nil {
			return i, err
		}
	}
	return len(buf), nil
}

// writeOne writes p's deliveries to the outbox (the first step of each: nothing is accepted
// until it is in Redis), then its event. An error means Redis did not take something, which is
// left in p to retry; what cannot ever be written is logged and dropped.
func (h *Hub) writeOne(parent context.Context, p *pending, deadline time.Time) error {
	log := h.log.With().Str("tenant", p.tenant).Str("type", p.typ).Logger()
	for len(p.entries) > 0 {
		e := p.entries[0]
		ctx, cancel := h.writeCtx(parent, deadline)
		err := h.cfg.Store.AddOutbox(ctx, e, h.cfg.EndpointQueue)
		cancel()
		switch {
		case err == nil:
			h.wakeEndpoint(p.tenant, e.Endpoint)
		case errors.Is(err, store.ErrOutboxFull):
			rec := e.Delivery
			rec.Status, rec.LastError = store.DeliveryFailed, "outbox full: too many deliveries wait for this endpoint"
			h.attempts.WithLabelValues(store.DeliveryFailed).Inc()
			log.Error().Str("url", rec.URL).Str("delivery", rec.ID).Int("endpoint_queue", h.cfg.EndpointQueue).
				Msg("webhook outbox full for this endpoint: delivery dropped")
			ctx, cancel := h.writeCtx(parent, deadline)
			if err := h.cfg.Store.SaveDelivery(ctx, rec); err != nil {
				log.Warn().Err(err).Str("delivery", rec.ID).Msg("recording a webhook delivery")
			}
			cancel()
		case errors.Is(err, store.ErrInvalid):
			log.Error().Err(err).Msg("webhook delivery cannot be stored: dropped")
		default:
			return err
		}
		p.entries = p.entries[1:]
	}
	if !p.published {
		ctx, cancel := h.writeCtx(parent, deadline)
		_, err := h.cfg.Store.PublishEvent(ctx, p.tenant, p.typ, p.body)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, store.ErrInvalid):
			log.Error().Err(err).Msg("publishing notification to the event stream: dropped")
		default:
			return err
		}
		p.published = true
	}
	return nil
}

// writeCtx bounds one write of the writer: StoreTimeout, deadline if set, and parent.
func (h *Hub) writeCtx(parent context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	d := h.cfg.StoreTimeout
	if !deadline.IsZero() {
		d = min(d, max(time.Until(deadline), time.Millisecond))
	}
	return context.WithTimeout(parent, d)
}
