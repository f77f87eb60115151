// Package outbound delivers the app's notifications beyond the process: each one is appended to
// its tenant's Redis event stream (which GET /v1/events reads, on every instance) and POSTed,
// signed Standard-Webhooks style, to each of the tenant's webhook endpoints, with retries and
// a record of every delivery (GET /v1/webhook-deliveries). The Hub is the app's Notifier.
package outbound

import (
	"bytes"
	"container/heap"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// DefaultRetrySchedule is the wait before each retry of a failed delivery (±20% jitter):
// six attempts over about 13 minutes.
var DefaultRetrySchedule = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// Defaults of the zero Config fields.
const (
	DefaultNotifyQueue    = 4096
	DefaultEndpointQueue  = 1000
	DefaultWorkers        = 4
	DefaultAttemptTimeout = 10 * time.Second
)

// storeTimeout bounds each Redis write of the hub.
const storeTimeout = 5 * time.Second

// Store is the part of *store.Store the hub writes.
type Store interface {
	// PublishEvent appends a notification to the tenant's event stream.
	PublishEvent(ctx context.Context, tenant, typ string, data []byte) (string, error)
	// SaveDelivery records a webhook delivery and its outcome.
	SaveDelivery(ctx context.Context, d store.Delivery) error
}

var _ Store = (*store.Store)(nil)

// Config configures a Hub. Store is required; the zero value of every other field is usable.
type Config struct {
	// Store holds the tenants' event streams and the delivery records (*store.Store).
	Store Store
	// Endpoints are the tenants' webhook receivers; a tenant without any gets only its event
	// stream.
	Endpoints []Endpoint
	Logger    zerolog.Logger
	// Clock is the time source (time.Now): notification times, signature timestamps, records.
	Clock func() time.Time

	// RetrySchedule is the wait before each retry (DefaultRetrySchedule); its length is the
	// number of retries after the first attempt.
	RetrySchedule []time.Duration
	// AttemptTimeout bounds one POST, answer included (10 s).
	AttemptTimeout time.Duration
	// Workers is the number of concurrent POSTs per endpoint (4).
	Workers int
	// NotifyQueue is the capacity of Notify's queue (4096); beyond it notifications are
	// dropped, counted and logged.
	NotifyQueue int
	// EndpointQueue is the capacity of each endpoint's queue of deliveries and of retries
	// (1000); beyond it a delivery fails with "queue full".
	EndpointQueue int
	// Client, if set, sends every endpoint's POSTs, with its own dial policy. By default each
	// endpoint gets a client that follows no redirects and, unless the endpoint has
	// AllowLocal, connects to no local address (see newClient).
	Client *http.Client
	// Registerer, if set, gets the hub's metrics.
	Registerer prometheus.Registerer
}

// Hub is the app's Notifier: it publishes each notification to the tenant's Redis event
// stream (read by GET /v1/events on every instance) and POSTs it, signed, to each of the
// tenant's webhook endpoints.
//
// Notify never blocks: notifications go through a bounded queue, and when it is full they are
// dropped, counted (Dropped) and logged. Every endpoint has its own queue, workers and retry
// timer, so a slow or dead receiver only delays its own deliveries. Retries wait in memory: a
// restart loses the pending ones (their records stay "retrying").
type Hub struct {
	cfg   Config
	log   zerolog.Logger
	notes chan app.Notification

	// mu guards byTen, clientFor's clients, and the running endpoints: SetEndpoints swaps them
	// while Run delivers.
	mu      sync.Mutex
	byTen   map[string][]*endpointQueue
	guarded *http.Client // for endpoints refused local addresses, made when first needed
	local   *http.Client // for AllowLocal endpoints, made when first needed
	runCtx  context.Context
	runWG   *sync.WaitGroup

	dropped     atomic.Uint64
	lastDropLog atomic.Int64 // unix seconds of the last "dropped" log line
	attempts    *prometheus.CounterVec
}

var _ app.Notifier = (*Hub)(nil)

// endpointQueue is one endpoint's delivery machinery.
type endpointQueue struct {
	ep     Endpoint
	url    string // ep.URL without its password: what logs and records show
	key    []byte
	client *http.Client
	queue  chan *delivery     // ready to attempt
	retry  chan *delivery     // failed, to be scheduled
	stop   context.CancelFunc // ends its goroutines once removed (nil before Run)
}

// sameAs reports whether eq delivers to ep exactly as ep asks (same URL, secret, local policy).
func (eq *endpointQueue) sameAs(ep Endpoint) bool { return eq.ep == ep }

type delivery struct {
	rec  store.Delivery
	body []byte
	due  time.Time
}

// New builds a hub from cfg (defaults applied to the zero fields). Run it.
func New(cfg Config) (*Hub, error) {
	if cfg.Store == nil {
		return nil, errors.New("outbound.New: Config.Store is nil")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.RetrySchedule == nil {
		cfg.RetrySchedule = DefaultRetrySchedule
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.NotifyQueue <= 0 {
		cfg.NotifyQueue = DefaultNotifyQueue
	}
	if cfg.EndpointQueue <= 0 {
		cfg.EndpointQueue = DefaultEndpointQueue
	}
	h := &Hub{
		cfg: cfg, log: cfg.Logger,
		notes: make(chan app.Notification, cfg.NotifyQueue),
		byTen: map[string][]*endpointQueue{},
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "earpiece_webhook_attempts_total",
			Help: "Outbound webhook POSTs by outcome (delivered, retrying, failed).",
		}, []string{"outcome"}),
	}
	if err := h.SetEndpoints(cfg.Endpoints); err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "earpiece_notifications_dropped_total",
			Help: "Notifications dropped because the hub's queue was full.",
		}, func() float64 { return float64(h.dropped.Load()) })
		for _, c := range []prometheus.Collector{dropped, h.attempts} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("outbound.New: registering metrics: %w", err)
			}
		}
	}
	return h, nil
}

// Notify queues n for publishing and delivery. It never blocks.
func (h *Hub) Notify(n app.Notification) {
	select {
	case h.notes <- n:
	default:
		total := h.dropped.Add(1)
		now := time.Now().Unix()
		if last := h.lastDropLog.Load(); now > last && h.lastDropLog.CompareAndSwap(last, now) {
			h.log.Error().Uint64("dropped_total", total).Str("tenant", n.Tenant).Str("type", n.Type).
				Msg("notification queue full: dropping notifications")
		}
	}
}

// Dropped is the number of notifications Notify dropped because the queue was full.
func (h *Hub) Dropped() uint64 { return h.dropped.Load() }

// Run publishes and delivers until ctx ends, then waits for its goroutines (in-flight POSTs
// are cancelled; queued and scheduled deliveries are abandoned) and returns nil.
func (h *Hub) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	h.mu.Lock()
	h.runCtx, h.runWG = ctx, &wg
	for _, eqs := range h.byTen {
		for _, eq := range eqs {
			h.start(eq)
		}
	}
	h.mu.Unlock()
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case n := <-h.notes:
				h.publish(ctx, n)
			}
		}
	})
	<-ctx.Done()
	h.mu.Lock()
	h.runCtx = nil // SetEndpoints starts nothing more
	h.mu.Unlock()
	wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range []*http.Client{h.cfg.Client, h.guarded, h.local} {
		if c != nil {
			c.CloseIdleConnections()
		}
	}
	return nil
}

// SetEndpoints replaces the tenants' webhook receivers (the directory changed): endpoints that
// stay as they were keep their queues and pending retries; removed ones stop (their queued
// and pending deliveries are abandoned, and their records stay as they are); new ones start.
// It validates every endpoint first and changes nothing when one is invalid.
func (h *Hub) SetEndpoints(eps []Endpoint) error {
	var errs []error
	for _, ep := range eps {
		if err := ep.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.byTen
	next := map[string][]*endpointQueue{}
	kept := map[*endpointQueue]bool{}
	for _, ep := range eps {
		var eq *endpointQueue
		for _, o := range old[ep.Tenant] {
			if o.sameAs(ep) && !kept[o] {
				eq = o
				break
			}
		}
		if eq == nil {
			key, _ := signingKey(ep.Secret)
			eq = &endpointQueue{
				ep: ep, url: config.RedactURL(ep.URL), key: key, client: h.clientFor(ep),
				queue: make(chan *delivery, h.cfg.EndpointQueue),
				retry: make(chan *delivery, h.cfg.EndpointQueue),
			}
			if h.runCtx != nil {
				h.start(eq)
			}
		}
		kept[eq] = true
		next[ep.Tenant] = append(next[ep.Tenant], eq)
	}
	for _, eqs := range old {
		for _, eq := range eqs {
			if !kept[eq] && eq.stop != nil {
				eq.stop()
			}
		}
	}
	h.byTen = next
	return nil
}

// start runs eq's scheduler and workers under Run's context. Called with mu held, while Run runs.
func (h *Hub) start(eq *endpointQueue) {
	ctx, stop := context.WithCancel(h.runCtx)
	eq.stop = stop
	h.runWG.Go(func() { h.schedule(ctx, eq) })
	for range h.cfg.Workers {
		h.runWG.Go(func() { h.work(ctx, eq) })
	}
}

// clientFor returns the HTTP client for ep's address policy. Called with mu held.
func (h *Hub) clientFor(ep Endpoint) *http.Client {
	switch {
	case h.cfg.Client != nil:
		return h.cfg.Client
	case ep.AllowLocal:
		if h.local == nil {
			h.local = newClient(true)
		}
		return h.local
	default:
		if h.guarded == nil {
			h.guarded = newClient(false)
		}
		return h.guarded
	}
}

// publish queues the notification for the tenant's endpoints, then appends it to the
// tenant's event stream. Queuing first: a slow Redis must not hold back the webhooks.
func (h *Hub) publish(ctx context.Context, n app.Notification) {
	log := h.log.With().Str("tenant", n.Tenant).Str("type", n.Type).Logger()
	if n.Tenant == "" || n.Type == "" {
		log.Error().Msg("notification without tenant or type: dropped")
		return
	}
	now := h.cfg.Clock().UTC()
	if n.Time.IsZero() {
		n.Time = now
	}
	body, err := json.Marshal(n)
	if err != nil {
		log.Error().Err(err).Msg("encoding notification: dropped")
		return
	}
	h.mu.Lock()
	eqs := h.byTen[n.Tenant]
	h.mu.Unlock()
	for _, eq := range eqs {
		d := &delivery{body: body, rec: store.Delivery{
			ID: "msg_" + crand.Text(), Tenant: n.Tenant, URL: eq.url, Type: n.Type,
			Status: store.DeliveryPending, CreatedAt: now, UpdatedAt: now,
		}}
		select {
		case eq.queue <- d:
		default:
			d.rec.Status, d.rec.LastError = store.DeliveryFailed, "endpoint queue full"
			h.attempts.WithLabelValues(store.DeliveryFailed).Inc()
			log.Error().Str("url", eq.url).Str("delivery", d.rec.ID).Msg("webhook queue full: delivery dropped")
			h.save(ctx, d.rec)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if _, err := h.cfg.Store.PublishEvent(pctx, n.Tenant, n.Type, body); err != nil && ctx.Err() == nil {
		log.Error().Err(err).Msg("publishing notification to the event stream")
	}
}

// work attempts the endpoint's deliveries one at a time.
func (h *Hub) work(ctx context.Context, eq *endpointQueue) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-eq.queue:
			h.attempt(ctx, eq, d)
		}
	}
}

// attempt POSTs d once and records the outcome; a failure with retries left goes to the
// endpoint's scheduler.
func (h *Hub) attempt(ctx context.Context, eq *endpointQueue, d *delivery) {
	d.rec.Attempts++
	status, err := h.post(ctx, eq, d)
	if ctx.Err() != nil {
		return // shutting down: the attempt was cut, not failed
	}
	if err != nil {
		// The record and the log show the URL without its password, whatever the error says.
		err = errors.New(config.RedactError(err, eq.ep.URL))
	}
	now := h.cfg.Clock().UTC()
	d.rec.UpdatedAt, d.rec.LastStatus, d.rec.NextAttemptAt = now, status, time.Time{}
	log := h.log.With().Str("tenant", d.rec.Tenant).Str("url", eq.url).Str("delivery", d.rec.ID).
		Int("attempt", d.rec.Attempts).Logger()
	switch {
	case err == nil:
		d.rec.Status, d.rec.LastError = store.DeliveryDelivered, ""
	case d.rec.Attempts <= len(h.cfg.RetrySchedule):
		wait := jitter(h.cfg.RetrySchedule[d.rec.Attempts-1])
		d.rec.Status, d.rec.LastError, d.rec.NextAttemptAt = store.DeliveryRetrying, err.Error(), now.Add(wait)
		d.due = time.Now().Add(wait)
		// Record before handing d over: the next attempt's record must land after this one,
		// and d belongs to the scheduler once sent.
		h.save(ctx, d.rec)
		rec := d.rec
		select {
		case eq.retry <- d:
			h.attempts.WithLabelValues(store.DeliveryRetrying).Inc()
			log.Warn().Err(err).Dur("retry_in", wait).Msg("webhook attempt failed")
		default:
			rec.Status, rec.NextAttemptAt = store.DeliveryFailed, time.Time{}
			rec.LastError += " (retry queue full)"
			h.attempts.WithLabelValues(store.DeliveryFailed).Inc()
			log.Error().Err(err).Msg("webhook attempt failed; retry queue full: giving up")
			h.save(ctx, rec)
		}
		return
	default:
		d.rec.Status, d.rec.LastError = store.DeliveryFailed, err.Error()
		log.Error().Err(err).Msg("webhook delivery failed: no retries left")
	}
	h.attempts.WithLabelValues(d.rec.Status).Inc()
	h.save(ctx, d.rec)
}

// post sends one attempt. The timestamp and signature are made per attempt; the id is the
// delivery's, the same on every attempt, so receivers can deduplicate.
func (h *Hub) post(ctx context.Context, eq *endpointQueue, d *delivery) (int, error) {
	actx, cancel := context.WithTimeout(ctx, h.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, eq.ep.URL, bytes.NewReader(d.body))
	if err != nil {
		return 0, err
	}
	ts := strconv.FormatInt(h.cfg.Clock().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "earpiece-webhooks/1")
	req.Header.Set(HeaderWebhookID, d.rec.ID)
	req.Header.Set(HeaderWebhookTimestamp, ts)
	req.Header.Set(HeaderWebhookSignature, Sign(eq.key, d.rec.ID, ts, d.body))
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

// schedule holds the endpoint's failed deliveries until their retry is due, then queues them.
func (h *Hub) schedule(ctx context.Context, eq *endpointQueue) {
	var pending retryHeap
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if len(pending) > 0 {
			timer.Reset(time.Until(pending[0].due))
		}
		select {
		case <-ctx.Done():
			return
		case d := <-eq.retry:
			heap.Push(&pending, d)
		case <-timer.C:
			for len(pending) > 0 && !pending[0].due.After(time.Now()) {
				d := heap.Pop(&pending).(*delivery)
				select {
				case eq.queue <- d:
				case <-ctx.Done():
					return
				}
			}
		}
		timer.Stop()
	}
}

// save records a delivery; failures are logged (the delivery itself goes on).
func (h *Hub) save(ctx context.Context, d store.Delivery) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := h.cfg.Store.SaveDelivery(sctx, d); err != nil {
		h.log.Warn().Err(err).Str("tenant", d.Tenant).Str("delivery", d.ID).Msg("recording a webhook delivery")
	}
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

// retryHeap orders deliveries by due time.
type retryHeap []*delivery

func (r retryHeap) Len() int           { return len(r) }
func (r retryHeap) Less(i, j int) bool { return r[i].due.Before(r[j].due) }
func (r retryHeap) Swap(i, j int)      { r[i], r[j] = r[j], r[i] }
func (r *retryHeap) Push(x any)        { *r = append(*r, x.(*delivery)) }
func (r *retryHeap) Pop() any {
	old := *r
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*r = old[:len(old)-1]
	return d
}
