package outbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// idlePolls is how many PollIntervals an endpoint with an empty outbox waits between looks.
const idlePolls = 5

// job is a claimed delivery being attempted here. Its claim's token may change under it: when
// the claim outlived its lease (Redis was away while the attempt recorded) and this hub claimed
// the delivery again, the attempt in progress adopts the new claim rather than a second worker
// attempting it.
type job struct {
	id    string // the delivery's
	mu    sync.Mutex
	claim store.OutboxClaim
}

func (j *job) current() store.OutboxClaim {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.claim
}

// track registers c as in flight on eq: a new job, or nil when the delivery is in flight here
// already (its job then takes c's token).
func (eq *endpointQueue) track(c store.OutboxClaim) *job {
	eq.mu.Lock()
	defer eq.mu.Unlock()
	if j := eq.inflight[c.Delivery.ID]; j != nil {
		j.mu.Lock()
		j.claim.Token = c.Token
		j.mu.Unlock()
		return nil
	}
	j := &job{id: c.Delivery.ID, claim: c}
	eq.inflight[c.Delivery.ID] = j
	return j
}

func (eq *endpointQueue) untrack(j *job) {
	eq.mu.Lock()
	defer eq.mu.Unlock()
	delete(eq.inflight, j.id)
}

// claim feeds eq's workers: whenever some are idle it claims that many of the endpoint's due
// deliveries, then sleeps until the next one is due (as the outbox says), a delivery is added
// or rescheduled here (wake), or PollInterval has passed (deliveries other instances added,
// claims of dead instances expiring; 5 × PollInterval while the endpoint has nothing at all in
// the outbox: what another instance adds, that instance attempts). It returns when ctx ends.
func (h *Hub) claim(ctx context.Context, eq *endpointQueue, jobs chan<- *job, idle chan struct{}) {
	log := h.log.With().Str("tenant", eq.ep.Tenant).Str("url", eq.url).Logger()
	var wait time.Duration // backoff while Redis fails
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-idle:
		}
		n := 1
	more:
		for n < h.cfg.Workers {
			select {
			case <-idle:
				n++
			default:
				break more
			}
		}
		token := h.owner + "." + strconv.FormatUint(h.claimSeq.Add(1), 36)
		sctx, cancel := context.WithTimeout(ctx, h.cfg.StoreTimeout)
		claims, next, err := h.cfg.Store.ClaimOutbox(sctx, eq.ep.Tenant, eq.id, n, h.cfg.ClaimTimeout, token)
		cancel()
		used := 0
		for _, c := range claims {
			if j := eq.track(c); j != nil {
				jobs <- j // never blocks: at most Workers jobs are out
				used++
			}
		}
		for range n - used {
			idle <- struct{}{}
		}
		var sleep time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			wait = backoff(wait)
			sleep = wait
			if !failing {
				log.Warn().Err(err).Msg("claiming webhook deliveries from the outbox: retrying")
				failing = true
			}
		case len(claims) == n:
			wait, failing = 0, false
			continue // there may be more due
		default:
			if failing {
				log.Info().Msg("claiming webhook deliveries from the outbox again")
			}
			wait, failing = 0, false
			sleep = h.cfg.PollInterval
			switch {
			case next < 0:
				sleep = idlePolls * h.cfg.PollInterval
			case next < sleep:
				sleep = next
			}
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-eq.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// attempt POSTs a claimed delivery once and settles it: the record of the outcome is written
// with the removal of the delivery from the outbox (delivered, or no retries left) or with its
// retry's due time. A delivery claimed as the hub stopped (claimCtx ended) is not attempted,
// and an attempt cut (attemptCtx ended) is not counted: both are released to the outbox.
func (h *Hub) attempt(claimCtx, attemptCtx context.Context, eq *endpointQueue, j *job) {
	defer eq.untrack(j)
	if claimCtx.Err() != nil {
		h.release(eq, j)
		return
	}
	c := j.current()
	rec := c.Delivery
	rec.Attempts++
	status, err := h.post(attemptCtx, eq, rec.ID, c.Body)
	if err != nil && attemptCtx.Err() != nil {
		h.release(eq, j) // cut, not failed
		return
	}
	if err != nil {
		// The record and the log show the URL without its password, whatever the error says.
		err = errors.New(config.RedactError(err, eq.ep.URL))
	}
	now := h.cfg.Clock().UTC()
	rec.UpdatedAt, rec.LastStatus, rec.NextAttemptAt = now, status, time.Time{}
	log := h.log.With().Str("tenant", rec.Tenant).Str("url", eq.url).Str("delivery", rec.ID).
		Int("attempt", rec.Attempts).Logger()
	var retryIn time.Duration
	switch {
	case err == nil:
		rec.Status, rec.LastError = store.DeliveryDelivered, ""
	case rec.Attempts <= len(h.cfg.RetrySchedule):
		retryIn = jitter(h.cfg.RetrySchedule[rec.Attempts-1])
		rec.Status, rec.LastError, rec.NextAttemptAt = store.DeliveryRetrying, err.Error(), now.Add(retryIn)
		log.Warn().Err(err).Dur("retry_in", retryIn).Msg("webhook attempt failed")
	default:
		rec.Status, rec.LastError = store.DeliveryFailed, err.Error()
		log.Error().Err(err).Msg("webhook delivery failed: no retries left")
	}
	h.attempts.WithLabelValues(rec.Status).Inc()
	h.settle(attemptCtx, eq, j, rec, retryIn)
	if rec.Status == store.DeliveryRetrying {
		eq.poke() // the claimer learns when the retry is due
	}
}

// settle records rec and ends j's claim (store.SettleOutbox), retrying while Redis fails so
// that the record tells the last outcome: until it is written, or ctx (the attempts' context)
// ends. Then it tries once more, briefly: an outcome reached just as the hub stops is still
// recorded if Redis answers. What is not recorded stays in the outbox, claimed until the claim
// expires, and is attempted again (the same webhook-id: receivers deduplicate).
func (h *Hub) settle(ctx context.Context, eq *endpointQueue, j *job, rec store.Delivery, retryIn time.Duration) {
	log := h.log.With().Str("tenant", rec.Tenant).Str("url", eq.url).Str("delivery", rec.ID).
		Str("status", rec.Status).Logger()
	var wait time.Duration
	failures := 0
	for {
		if h.crash.Load() {
			return
		}
		c := j.current()
		timeout := h.cfg.StoreTimeout
		if ctx.Err() != nil {
			timeout = min(timeout, time.Second)
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		err := h.cfg.Store.SettleOutbox(sctx, c, rec, retryIn)
		cancel()
		switch {
		case err == nil:
			if failures > 0 {
				log.Info().Int("tries", failures+1).Msg("webhook delivery recorded once Redis answered")
			}
			return
		case errors.Is(err, store.ErrNotOwner):
			if j.current().Token != c.Token {
				continue // claimed again here meanwhile: settle under the new claim
			}
			// Claimed by another since (this claim expired), or settled already (by another, or by
			// an earlier try of this loop whose answer was lost): whoever holds it records it.
			log.Info().Err(err).Msg("webhook delivery no longer held by this attempt: not recorded by it")
			return
		case errors.Is(err, store.ErrInvalid):
			log.Error().Err(err).Msg("recording a webhook delivery")
			return
		}
		failures++
		if failures == 1 {
			log.Warn().Err(err).Msg("recording a webhook delivery: retrying until Redis answers")
		}
		if ctx.Err() != nil {
			log.Error().Err(err).Msg("webhook delivery not recorded before the hub stopped: it stays in the outbox and will be attempted again")
			return
		}
		wait = backoff(wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// release gives j's delivery back to the outbox unattempted, due at once; if Redis does not
// answer, the claim expires by itself.
func (h *Hub) release(eq *endpointQueue, j *job) {
	if h.crash.Load() {
		return
	}
	c := j.current()
	ctx, cancel := context.WithTimeout(context.Background(), min(h.cfg.StoreTimeout, time.Second))
	defer cancel()
	if err := h.cfg.Store.ReleaseOutbox(ctx, c); err != nil && !errors.Is(err, store.ErrNotOwner) {
		h.log.Warn().Err(err).Str("tenant", c.Delivery.Tenant).Str("url", eq.url).Str("delivery", c.Delivery.ID).
			Dur("claim_timeout", h.cfg.ClaimTimeout).Msg("releasing a webhook delivery: its claim will expire instead")
	}
}

// post sends one attempt. The timestamp and signature are made per attempt; the id is the
// delivery's, the same on every attempt, so receivers can deduplicate.
func (h *Hub) post(ctx context.Context, eq *endpointQueue, id string, body []byte) (int, error) {
	actx, cancel := context.WithTimeout(ctx, h.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, eq.ep.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := strconv.FormatInt(h.cfg.Clock().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "earpiece-webhooks/1")
	req.Header.Set(HeaderWebhookID, id)
	req.Header.Set(HeaderWebhookTimestamp, ts)
	req.Header.Set(HeaderWebhookSignature, Sign(eq.key, id, ts, body))
	resp, err := eq.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return 0, fmt.Errorf("no answer within %v", h.cfg.AttemptTimeout)
		}
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// jitter spreads d by ±20%, so that many deliveries failing together do not retry together.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	spread := int64(d) * 2 / 5
	if spread <= 0 {
		return d
	}
	return time.Duration(int64(d) - spread/2 + rand.Int64N(spread+1))
}
