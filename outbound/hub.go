// Package outbound delivers the app's notifications beyond the process: each one is appended to
// its tenant's Redis event stream (which GET /v1/events reads, on every instance) and, for each
// of the tenant's webhook endpoints, put in a durable outbox in Redis from which it is POSTed,
// signed Standard-Webhooks style, with retries and a record of every delivery (GET
// /v1/webhook-deliveries). The Hub is the app's Notifier.
//
// The outbox (store/outbox.go) is what makes deliveries survive: a delivery is in Redis from
// the moment the hub accepts it until it is delivered or given up, its retries are due times in
// Redis, and instances sharing the Redis share the work, each delivery attempted by one
// instance at a time under a claim that expires if that instance dies. A delivery keeps its id
// (the webhook-id header, by which receivers deduplicate) whoever attempts it, before and after
// a restart.
package outbound

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
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
	DefaultEndpointQueue  = store.DefaultOutboxCap
	DefaultWorkers        = 4
	DefaultAttemptTimeout = 10 * time.Second
	DefaultPollInterval   = time.Second
	DefaultDrainTimeout   = 5 * time.Second
	DefaultSweepInterval  = 10 * time.Second
	DefaultOrphanAfter    = 10 * time.Minute
	DefaultStoreTimeout   = 5 * time.Second
)

// Store is the part of *store.Store the hub uses.
type Store interface {
	// PublishEvent appends a notification to the tenant's event stream.
	PublishEvent(ctx context.Context, tenant, typ string, data []byte) (string, error)
	// SaveDelivery records a webhook delivery and its outcome.
	SaveDelivery(ctx context.Context, d store.Delivery) error

	// The outbox (see store/outbox.go).
	AddOutbox(ctx context.Context, e store.OutboxEntry, max int) error
	ClaimOutbox(ctx context.Context, tenant, endpoint string, max int, lease time.Duration, token string) ([]store.OutboxClaim, time.Duration, error)
	SettleOutbox(ctx context.Context, c store.OutboxClaim, rec store.Delivery, retryIn time.Duration) error
	ReleaseOutbox(ctx context.Context, c store.OutboxClaim) error
	OutboxTenants(ctx context.Context) ([]string, error)
	OutboxEndpoints(ctx context.Context, tenant string) ([]string, error)
	OutboxStats(ctx context.Context) (store.OutboxStats, error)
}

var _ Store = (*store.Store)(nil)

// Config configures a Hub. Store is required; the zero value of every other field is usable.
type Config struct {
	// Store holds the tenants' event streams, the outbox and the delivery records (*store.Store).
	Store Store
	// Endpoints are the tenants' webhook receivers; a tenant without any gets only its event
	// stream.
	Endpoints []Endpoint
	Logger    zerolog.Logger
	// Clock is the time source (time.Now): notification times, signature timestamps, records.
	// When deliveries are due and claims expire is the Redis server's clock.
	Clock func() time.Time
	// Instance names this process in its claims (the hostname, say); a random suffix tells
	// its runs apart.
	Instance string

	// RetrySchedule is the wait before each retry (DefaultRetrySchedule); its length is the
	// number of retries after the first attempt.
	RetrySchedule []time.Duration
	// AttemptTimeout bounds one POST, answer included (10 s).
	AttemptTimeout time.Duration
	// Workers is the number of concurrent POSTs per endpoint (4).
	Workers int
	// NotifyQueue is the capacity of Notify's queue (4096), and the number of notifications
	// kept in memory while Redis does not take them; beyond both, notifications are dropped,
	// counted and logged.
	NotifyQueue int
	// EndpointQueue bounds the deliveries waiting in the outbox for one endpoint, all
	// instances together (10000); beyond it a delivery fails with "outbox full".
	EndpointQueue int
	// ClaimTimeout is how long an attempt holds its delivery: if the instance dies, another
	// takes the delivery over once it has passed (2 × AttemptTimeout + 10 s). It must exceed
	// AttemptTimeout.
	ClaimTimeout time.Duration
	// PollInterval is how often an idle endpoint looks for deliveries other instances left
	// due (1 s; five times that while it has none in the outbox at all); its own are
	// attempted at once.
	PollInterval time.Duration
	// DrainTimeout bounds the end of Run (5 s): attempts in progress get that long to finish
	// and record, and notifications still in memory to reach the outbox. What is cut stays in
	// the outbox for the next start (or another instance).
	DrainTimeout time.Duration
	// SweepInterval is how often the outbox metrics are refreshed and the outbox swept of
	// deliveries for endpoints no longer configured (10 s).
	SweepInterval time.Duration
	// OrphanAfter is how old a delivery for an endpoint that this instance does not know (the
	// endpoint was removed) must be before the sweep gives it up (10 min): long enough for
	// every instance to have caught up with a new directory.
	OrphanAfter time.Duration
	// StoreTimeout bounds each Redis call of the hub (5 s).
	StoreTimeout time.Duration
	// Client, if set, sends every endpoint's POSTs, with its own dial policy. By default each
	// endpoint gets a client that follows no redirects and, unless the endpoint has
	// AllowLocal, connects to no local address (see newClient).
	Client *http.Client
	// Registerer, if set, gets the hub's metrics.
	Registerer prometheus.Registerer
}

// Hub is the app's Notifier: it publishes each notification to the tenant's Redis event
// stream (read by GET /v1/events on every instance) and puts a delivery in the Redis outbox
// for each of the tenant's webhook endpoints, from which it POSTs them, signed.
//
// Notify never blocks: notifications go through a bounded queue to a writer that puts them in
// Redis; while Redis does not answer they wait in memory (bounded too) and are written when
// it is back. Every endpoint has its own workers and claims, so a slow or dead receiver only
// delays its own deliveries. When Run ends, notifications still in memory are written to the
// outbox and attempts in progress get DrainTimeout to finish; every delivery not made stays
// in the outbox for the next start.
type Hub struct {
	cfg   Config
	log   zerolog.Logger
	notes chan app.Notification
	owner string // prefix of this run's claim tokens

	// mu guards byTen, clientFor's clients, and the running endpoints: SetEndpoints swaps them
	// while Run delivers.
	mu         sync.Mutex
	byTen      map[string][]*endpointQueue
	guarded    *http.Client // for endpoints refused local addresses, made when first needed
	local      *http.Client // for AllowLocal endpoints, made when first needed
	claimCtx   context.Context
	attemptCtx context.Context
	runWG      *sync.WaitGroup
	running    bool

	claimSeq    atomic.Uint64
	dropped     atomic.Uint64
	lastDropLog atomic.Int64 // unix seconds of the last "dropped" log line
	buffered    atomic.Int64 // notifications taken from the queue, not yet in Redis
	attempts    *prometheus.CounterVec
	depth       prometheus.Gauge
	oldest      prometheus.Gauge

	// crash makes the end of Run a crash, for tests: nothing is drained, flushed, recorded
	// or released, as when the process is killed.
	crash atomic.Bool
}

var _ app.Notifier = (*Hub)(nil)

// endpointQueue is one endpoint's delivery machinery.
type endpointQueue struct {
	ep     Endpoint
	id     string // the endpoint's due set in the outbox: same URL, same id
	url    string // ep.URL without its password: what logs and records show
	key    []byte
	client *http.Client
	wake   chan struct{}      // a delivery was added or rescheduled: look now
	stop   context.CancelFunc // ends its goroutines once removed (nil before Run)

	mu       sync.Mutex
	inflight map[string]*job // by delivery id
}

// sameAs reports whether eq delivers to ep exactly as ep asks (same URL, secret, local policy).
func (eq *endpointQueue) sameAs(ep Endpoint) bool { return eq.ep == ep }

// endpointID is the outbox id of the endpoint at url. Deliveries follow the URL: an endpoint
// whose secret changes keeps its pending deliveries (signed with the new secret).
func endpointID(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:8])
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
	setDefault(&cfg.AttemptTimeout, DefaultAttemptTimeout)
	setDefault(&cfg.Workers, DefaultWorkers)
	setDefault(&cfg.NotifyQueue, DefaultNotifyQueue)
	setDefault(&cfg.EndpointQueue, DefaultEndpointQueue)
	setDefault(&cfg.ClaimTimeout, 2*cfg.AttemptTimeout+10*time.Second)
	setDefault(&cfg.PollInterval, DefaultPollInterval)
	setDefault(&cfg.DrainTimeout, DefaultDrainTimeout)
	setDefault(&cfg.SweepInterval, DefaultSweepInterval)
	setDefault(&cfg.OrphanAfter, DefaultOrphanAfter)
	setDefault(&cfg.StoreTimeout, DefaultStoreTimeout)
	if cfg.ClaimTimeout <= cfg.AttemptTimeout {
		return nil, fmt.Errorf("outbound.New: ClaimTimeout %v must exceed AttemptTimeout %v (an attempt would outlive its claim)", cfg.ClaimTimeout, cfg.AttemptTimeout)
	}
	owner := cfg.Instance
	if owner == "" {
		owner = "hub"
	}
	h := &Hub{
		cfg: cfg, log: cfg.Logger,
		notes: make(chan app.Notification, cfg.NotifyQueue),
		owner: owner + "/" + crand.Text()[:10],
		byTen: map[string][]*endpointQueue{},
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "earpiece_webhook_attempts_total",
			Help: "Outbound webhook POSTs by outcome (delivered, retrying, failed).",
		}, []string{"outcome"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "earpiece_webhook_outbox_depth",
			Help: "Webhook deliveries waiting in the Redis outbox, all tenants and instances together (every instance reports the same figure), as of the last sweep.",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "earpiece_webhook_outbox_oldest_age_seconds",
			Help: "Age of the oldest webhook delivery waiting in the Redis outbox (0 when none), as of the last sweep.",
		}),
	}
	if err := h.SetEndpoints(cfg.Endpoints); err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "earpiece_notifications_dropped_total",
			Help: "Notifications dropped because the hub's queue was full.",
		}, func() float64 { return float64(h.dropped.Load()) })
		buffered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "earpiece_notifications_buffered",
			Help: "Notifications of this instance not yet written to Redis (its queue, and those waiting while Redis does not answer).",
		}, func() float64 { return float64(len(h.notes)) + float64(h.buffered.Load()) })
		for _, c := range []prometheus.Collector{dropped, buffered, h.attempts, h.depth, h.oldest} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("outbound.New: registering metrics: %w", err)
			}
		}
	}
	return h, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Notify queues n for publishing and delivery. It never blocks.
func (h *Hub) Notify(n app.Notification) {
	select {
	case h.notes <- n:
	default:
		h.drop(n, "notification queue full: dropping notifications")
	}
}

// drop counts and (at most once a second) logs a notification dropped.
func (h *Hub) drop(n app.Notification, msg string) {
	total := h.dropped.Add(1)
	now := time.Now().Unix()
	if last := h.lastDropLog.Load(); now > last && h.lastDropLog.CompareAndSwap(last, now) {
		h.log.Error().Uint64("dropped_total", total).Str("tenant", n.Tenant).Str("type", n.Type).Msg(msg)
	}
}

// Dropped is the number of notifications Notify dropped because the queue was full.
func (h *Hub) Dropped() uint64 { return h.dropped.Load() }

// Run writes notifications to Redis and delivers the outbox until ctx ends. Then it drains,
// within DrainTimeout: it claims nothing more, writes the notifications still in memory (those
// Notify queued before ctx ended included) to Redis, and lets the attempts in progress finish
// and record their outcome; those still running at the bound are cut and their deliveries
// released for the next start or another instance. It returns nil once every goroutine has
// ended.
func (h *Hub) Run(ctx context.Context) error {
	claimCtx, stopClaims := context.WithCancel(context.Background())
	defer stopClaims()
	attemptCtx, cutAttempts := context.WithCancel(context.Background())
	defer cutAttempts()
	var endpoints sync.WaitGroup
	h.mu.Lock()
	if h.running {
		h.mu.Unlock()
		return errors.New("outbound: Hub.Run is running already")
	}
	h.running = true
	h.claimCtx, h.attemptCtx, h.runWG = claimCtx, attemptCtx, &endpoints
	for _, eqs := range h.byTen {
		for _, eq := range eqs {
			h.start(eq)
		}
	}
	h.mu.Unlock()

	var side sync.WaitGroup
	side.Go(func() { h.write(ctx) })
	side.Go(func() { h.sweepLoop(claimCtx) })

	<-ctx.Done()
	deadline := time.Now().Add(h.cfg.DrainTimeout)
	h.mu.Lock()
	h.claimCtx = nil // SetEndpoints starts nothing more
	h.mu.Unlock()
	stopClaims()
	if h.crash.Load() {
		cutAttempts()
	}
	drained := make(chan struct{})
	go func() {
		endpoints.Wait()
		close(drained)
	}()
	bound := time.NewTimer(time.Until(deadline))
	select {
	case <-drained:
	case <-bound.C:
		h.log.Warn().Dur("drain_timeout", h.cfg.DrainTimeout).
			Msg("webhook attempts still running at the drain bound: cut; their deliveries stay in the outbox")
		cutAttempts()
		<-drained
	}
	bound.Stop()
	side.Wait()

	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = false
	for _, c := range []*http.Client{h.cfg.Client, h.guarded, h.local} {
		if c != nil {
			c.CloseIdleConnections()
		}
	}
	return nil
}

// SetEndpoints replaces the tenants' webhook receivers (the directory changed): endpoints that
// stay as they were keep going; removed ones stop (attempts in progress are cut and their
// deliveries released). Deliveries in the outbox follow their endpoint's URL: an endpoint whose
// secret or local policy changed takes over its predecessor's, and those of a URL no instance
// has any more are given up by the sweep (OrphanAfter). New endpoints start. It validates
// every endpoint first and changes nothing when one is invalid.
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
				ep: ep, id: endpointID(ep.URL), url: config.RedactURL(ep.URL), key: key, client: h.clientFor(ep),
				wake: make(chan struct{}, 1), inflight: map[string]*job{},
			}
			if h.claimCtx != nil {
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

// start runs eq's claimer and workers under Run's contexts. Called with mu held, while Run runs.
func (h *Hub) start(eq *endpointQueue) {
	claimCtx, stopClaims := context.WithCancel(h.claimCtx)
	attemptCtx, cut := context.WithCancel(h.attemptCtx)
	eq.stop = func() { stopClaims(); cut() }
	jobs := make(chan *job, h.cfg.Workers)
	idle := make(chan struct{}, h.cfg.Workers) // a token per idle worker
	for range h.cfg.Workers {
		idle <- struct{}{}
	}
	h.runWG.Go(func() {
		defer close(jobs)
		h.claim(claimCtx, eq, jobs, idle)
	})
	for range h.cfg.Workers {
		h.runWG.Go(func() {
			for j := range jobs {
				h.attempt(claimCtx, attemptCtx, eq, j)
				idle <- struct{}{}
			}
		})
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

// wakeEndpoint tells the tenant's endpoints with outbox id ep that a delivery is due.
func (h *Hub) wakeEndpoint(tenant, ep string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, eq := range h.byTen[tenant] {
		if eq.id == ep {
			eq.poke()
		}
	}
}

func (eq *endpointQueue) poke() {
	select {
	case eq.wake <- struct{}{}:
	default:
	}
}

// backoff is the next wait of a retry loop on Redis: 50 ms doubling to 2 s.
func backoff(prev time.Duration) time.Duration {
	if prev <= 0 {
		return 50 * time.Millisecond
	}
	return min(2*prev, 2*time.Second)
}
