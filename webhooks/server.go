// Package webhooks is earpiece's CRM-facing HTTP edge, served by echo: health and readiness
// probes, Prometheus metrics, and the /v1 API for CRMs and dashboards (calls in progress,
// supervision sessions, API keys, live events over Server-Sent Events, webhook delivery records,
// the OpenAPI document). The name is the product's: "webhooks" is what the CRM integration is
// called, both ways. Sending the outbound webhooks themselves is package outbound's job; this
// package only lists their delivery records.
//
// Handlers stay thin: authenticate, bind, validate, call the app, answer. Who may do what is
// the app's rule (app.Principal.Authorize and the App's methods); the edge has none of its own.
// Errors become JSON ({"error":{"code","message"}}) in one place (errorResponse), with fixed
// messages: the cause of a failure goes to the log with the request's X-Request-Id, never to
// the client.
package webhooks

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
)

// Check is a readiness probe of one dependency (Redis, the ARI socket...).
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Defaults of the zero Config fields.
const (
	DefaultMaxBodyBytes        = 64 << 10
	DefaultMaxHeaderBytes      = 64 << 10
	DefaultHeartbeatInterval   = 15 * time.Second
	DefaultMaxStreams          = 64
	DefaultMaxStreamsPerTenant = 32
	DefaultMaxStreamsPerKey    = 8
	DefaultMaxStreamLifetime   = time.Hour
	DefaultStreamWriteTimeout  = 10 * time.Second
	DefaultStreamSendBuffer    = 32 << 10
	DefaultKeyCheckInterval    = 5 * time.Second
	DefaultSignatureTolerance  = 300 * time.Second
	DefaultIdempotencyTTL      = 24 * time.Hour
	DefaultIdempotencyWait     = 10 * time.Second
	DefaultActionTimeout       = 30 * time.Second
)

// Default request budgets (see Config.RateLimits).
var (
	DefaultPerKeyRate     = config.Rate{PerSecond: 20, Burst: 40}
	DefaultPerAddressRate = config.Rate{PerSecond: 50, Burst: 100}
	DefaultFailedAuthRate = config.Rate{PerSecond: 0.5, Burst: 10}
)

// Config configures the server.
type Config struct {
	Listen   string
	Checks   []Check
	Gatherer prometheus.Gatherer // metrics source (default prometheus.DefaultGatherer)
	// Registerer, if set, gets the edge's own metrics (failed authentications, rate
	// limiting, event streams).
	Registerer prometheus.Registerer
	Logger     zerolog.Logger
	// ReadTimeout, WriteTimeout, IdleTimeout bound every connection (10 s, 30 s, 120 s). An
	// event stream pushes its write deadline forward by StreamWriteTimeout before each write.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration

	// The /v1 API is served when Service is set; Directory and Store are then required.
	Service Service
	// Directory authenticates the configuration's bootstrap API keys and knows the tenants'
	// extensions and which tenants require signed requests.
	Directory config.Source
	// Store holds API keys created through the API, idempotency records, event streams and
	// webhook delivery records (*store.Store).
	Store Store
	// Admin, when set (with Service), serves the directory administration routes
	// (/v1/tenants...; *app.Admin). Directory should then be the same directory it changes
	// (the DirectorySync's Live), so that authentication follows its changes.
	Admin Admin

	// HeartbeatInterval is how often an idle event stream gets a comment line (15 s).
	HeartbeatInterval time.Duration
	// Clock is the time source (time.Now): call durations, signature windows, records.
	Clock func() time.Time

	// MaxBodyBytes caps request bodies (64 KiB); larger ones get 413.
	MaxBodyBytes int64
	// MaxHeaderBytes caps the request line and headers (64 KiB); larger ones get a JSON 431.
	// net/http itself refuses headers above twice that (plus its 4 KiB slack) with a plain
	// text 431, before any handler runs.
	MaxHeaderBytes int
	// MaxStreams caps concurrent event streams on this instance (64). Each holds a Redis
	// connection of Store's client while it waits (XREAD BLOCK, up to 1 s at a time): give
	// the edge a Store on its own client with PoolSize above MaxStreams, so that dashboards
	// cannot starve call handling of connections. Beyond it: 503 too_many_streams.
	MaxStreams int
	// MaxStreamsPerTenant and MaxStreamsPerKey cap the streams of one tenant (32) and of
	// one API key (8) on this instance, so that no tenant can take every stream. Beyond
	// them: 429 too_many_streams.
	MaxStreamsPerTenant, MaxStreamsPerKey int
	// MaxStreamLifetime ends a stream after this long (1 h); EventSource clients reconnect
	// and resume with Last-Event-ID, authenticating again.
	MaxStreamLifetime time.Duration
	// StreamWriteTimeout bounds each write of a stream (10 s); with the socket's send
	// buffer cut to StreamSendBuffer (32 KiB) a client that stops reading is dropped once
	// that and its own receive buffer are full.
	StreamWriteTimeout time.Duration
	StreamSendBuffer   int
	// KeyCheckInterval is how often a stream made with a key created through the API checks
	// that the key still exists (5 s): a key revoked on any instance cuts its streams
	// within about this long (at once on the instance that revoked it).
	KeyCheckInterval time.Duration
	// RateLimits are the /v1 API's request budgets per instance; zero fields take
	// DefaultPerKeyRate, DefaultPerAddressRate and DefaultFailedAuthRate.
	RateLimits config.RateLimits
	// SignatureTolerance is how far X-Earpiece-Timestamp may be from now (300 s). Which
	// requests must be signed is the configuration's (a tenant's request_signatures) and the
	// key's (require_signatures).
	SignatureTolerance time.Duration
	// IdempotencyTTL is how long an Idempotency-Key's answer is kept (24 h).
	IdempotencyTTL time.Duration
	// IdempotencyWait is how long a duplicate request waits for the first one with the same
	// Idempotency-Key to finish before it gets 409 (10 s).
	IdempotencyWait time.Duration
	// ActionTimeout bounds app calls that change state (join, mode, leave), which run
	// detached from the client's connection so a disconnect cannot cut them half-way (30 s).
	ActionTimeout time.Duration
	// SessionLifetime and SessionIdle bound a dashboard session (session.go): it ends
	// SessionLifetime after sign-in (8 h) or SessionIdle after its last request (1 h).
	SessionLifetime, SessionIdle time.Duration
}

// Server is the HTTP server.
type Server struct {
	cfg  Config
	log  zerolog.Logger
	echo *echo.Echo
	http *http.Server

	// closing is closed by Shutdown, so event streams (which never finish by themselves)
	// end and http.Server.Shutdown can complete.
	closing   chan struct{}
	closeOnce sync.Once
	streams   *streamSet // open event streams
	limits    *limits    // request budgets
	met       *metrics
	reqMet    *requestMetrics // earpiece_http_request_duration_seconds (httpmetrics.go)
	// notReady is the last /readyz failure logged, so a dependency that stays down is
	// logged once, not at every probe.
	notReady atomic.Pointer[string]
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"` // the request field at fault, when there is one
	// Fields are the problems of an invalid directory change, each naming its directory
	// field (tenants[acme].dialing_rules.spy_prefix), as check-config does.
	Fields []app.FieldProblem `json:"fields,omitempty"`
}

// New builds the server (not yet listening). It panics when Service is set without Directory
// or Store: that is a wiring mistake in main, not a runtime condition.
func New(cfg Config) *Server {
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.MaxStreamsPerTenant <= 0 {
		cfg.MaxStreamsPerTenant = DefaultMaxStreamsPerTenant
	}
	if cfg.MaxStreamsPerKey <= 0 {
		cfg.MaxStreamsPerKey = DefaultMaxStreamsPerKey
	}
	if cfg.MaxStreamLifetime <= 0 {
		cfg.MaxStreamLifetime = DefaultMaxStreamLifetime
	}
	if cfg.StreamWriteTimeout <= 0 {
		cfg.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	if cfg.StreamSendBuffer <= 0 {
		cfg.StreamSendBuffer = DefaultStreamSendBuffer
	}
	if cfg.KeyCheckInterval <= 0 {
		cfg.KeyCheckInterval = DefaultKeyCheckInterval
	}
	for _, r := range []struct {
		dst *config.Rate
		def config.Rate
	}{
		{&cfg.RateLimits.PerKey, DefaultPerKeyRate},
		{&cfg.RateLimits.PerAddress, DefaultPerAddressRate},
		{&cfg.RateLimits.FailedAuthPerAddress, DefaultFailedAuthRate},
	} {
		if r.dst.PerSecond <= 0 {
			r.dst.PerSecond = r.def.PerSecond
		}
		if r.dst.Burst <= 0 {
			r.dst.Burst = r.def.Burst
		}
	}
	if cfg.SignatureTolerance <= 0 {
		cfg.SignatureTolerance = DefaultSignatureTolerance
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if cfg.IdempotencyWait <= 0 {
		cfg.IdempotencyWait = DefaultIdempotencyWait
	}
	if cfg.ActionTimeout <= 0 {
		cfg.ActionTimeout = DefaultActionTimeout
	}
	if cfg.Service != nil && (cfg.Directory == nil || cfg.Store == nil) {
		panic("webhooks.New: Config.Service is set but Directory or Store is nil")
	}
	e := echo.New()
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		echo:    e,
		closing: make(chan struct{}),
		streams: newStreamSet(),
		limits:  newLimits(cfg.RateLimits),
		met:     newMetrics(cfg.Registerer),
		reqMet:  newRequestMetrics(cfg.Registerer),
	}
	e.HTTPErrorHandler = s.handleError
	e.Use(s.reqMet.middleware, s.requestID, s.recoverPanics, s.limitHeaders, s.limitBody)

	e.GET("/healthz", func(c *echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", s.ready)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})))
	if cfg.Service != nil {
		s.routes()
	}

	s.http = &http.Server{
		Addr:              cfg.Listen,
		Handler:           e,
		ReadTimeout:       cfg.ReadTimeout,
		ReadHeaderTimeout: cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		// net/http answers headers above this with plain text before any handler runs;
		// limitHeaders answers those between MaxHeaderBytes and this in JSON.
		MaxHeaderBytes: 2 * cfg.MaxHeaderBytes,
		// Event streams find their connection (send buffer) through the context.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ErrorLog: httpErrorLog(cfg.Logger),
	}
	return s
}

// connKey is the context key of a request's net.Conn.
type connKey struct{}

// routes registers the /v1 API. Every route but the OpenAPI document authenticates first,
// then needs the app's permission listed per route.
func (s *Server) routes() {
	// Per route, not on the group: group middleware would turn 405s into 404s.
	v1 := s.echo.Group("/v1")
	var (
		limit = s.limitAddress
		auth  = s.authenticate
		sup   = s.allow(app.PermSupervise)
		admin = s.allow(app.PermAdminister)
	)
	v1.GET("/openapi.json", s.openAPI, limit)
	v1.GET("/calls", s.listCalls, limit, auth, sup)
	v1.POST("/supervisions", s.createSupervision, limit, auth, sup)
	v1.GET("/supervisions", s.listSupervisions, limit, auth, sup)
	v1.GET("/supervisions/:id", s.getSupervision, limit, auth, sup)
	v1.PATCH("/supervisions/:id", s.patchSupervision, limit, auth, sup)
	v1.DELETE("/supervisions/:id", s.deleteSupervision, limit, auth, sup)
	v1.POST("/api-keys", s.createAPIKey, limit, auth, admin)
	v1.GET("/api-keys", s.listAPIKeys, limit, auth, admin)
	v1.DELETE("/api-keys/:name", s.deleteAPIKey, limit, auth, admin)
	// The same in a named tenant: the operator's in any (a new tenant's first key), an admin's
	// in its own (apikeys.go).
	v1.POST("/tenants/:tenant/api-keys", s.createTenantAPIKey, limit, auth, s.allow(app.PermDirectory))
	v1.GET("/tenants/:tenant/api-keys", s.listTenantAPIKeys, limit, auth, s.allow(app.PermDirectory))
	v1.DELETE("/tenants/:tenant/api-keys/:name", s.deleteTenantAPIKey, limit, auth, s.allow(app.PermDirectory))
	v1.GET("/events", s.events, limit, auth, s.allow(app.PermEvents)) // events.go filters per principal
	v1.GET("/webhook-deliveries", s.listDeliveries, limit, auth, admin)
	s.helpRoutes(v1, limit, auth, s.inTenant) // help.go: the app applies the role rules
	s.auditRoutes(v1, limit, auth, admin)     // audit.go
	s.reportRoutes(v1, limit, auth, sup)      // report.go: the app limits a supervisor to its own
	s.sessionRoutes(v1, limit, auth)          // session.go: the dashboard's sign-in
	s.dashboardRoutes()                       // dashboard.go: the browser dashboard at /
	if s.cfg.Admin != nil {
		s.adminRoutes(v1, limit, auth, s.allow(app.PermDirectory)) // admin.go: app.Admin decides the rest
	}
}

// Handler is the server's router (for tests).
func (s *Server) Handler() http.Handler { return s.echo }

// ready answers 200 {"status":"ready"} when every check passes, 503 {"status":"unavailable"}
// otherwise. The probe is unauthenticated, so it says nothing more: which dependency failed
// and why (a Redis address, say) goes to the log, once per change.
func (s *Server) ready(c *echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	var failed []string
	causes := map[string]error{}
	for _, ch := range s.cfg.Checks {
		if err := ch.Fn(ctx); err != nil {
			failed = append(failed, ch.Name)
			causes[ch.Name] = err
		}
	}
	slices.Sort(failed)
	now := strings.Join(failed, ",")
	if prev := s.notReady.Swap(&now); prev == nil && now != "" || prev != nil && *prev != now {
		if now == "" {
			s.log.Info().Msg("ready")
		} else {
			ev := s.log.Warn().Strs("failed", failed)
			for _, name := range failed {
				ev = ev.AnErr(name, causes[name])
			}
			ev.Msg("not ready")
		}
	}
	if len(failed) > 0 {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// ListenAndServe serves until Shutdown; it returns nil after a graceful shutdown.
func (s *Server) ListenAndServe() error {
	if err := s.http.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Serve is ListenAndServe on a listener of the caller's.
func (s *Server) Serve(l net.Listener) error {
	if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting connections, ends the open event streams (clients reconnect to
// another instance with Last-Event-ID) and waits for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closing) })
	return s.http.Shutdown(ctx)
}

// httpErrorLog is net/http's error log (accept errors, panics it recovered, bad TLS) as warnings
// of the JSON log, not plain text beside it.
func httpErrorLog(l zerolog.Logger) *log.Logger {
	return log.New(logWriter{l}, "", 0)
}

type logWriter struct{ l zerolog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Warn().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// now is the configured clock.
func (s *Server) now() time.Time { return s.cfg.Clock() }
