package webhooks

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the edge's own counters. What is refused for being too much (rate limits,
// stream caps) is counted here and not logged: a flood must not flood the log too.
type metrics struct {
	authFailures   *prometheus.CounterVec // by error code
	rateLimited    *prometheus.CounterVec // by budget
	streamsOpen    prometheus.Gauge
	streamsRefused *prometheus.CounterVec // by cap
	streamsClosed  *prometheus.CounterVec // by reason
}

// Labels of the metrics.
const (
	budgetAddress    = "address"     // Config.RateLimits.PerAddress
	budgetKey        = "key"         // Config.RateLimits.PerKey
	budgetFailedAuth = "failed_auth" // Config.RateLimits.FailedAuthPerAddress

	capInstance = "instance"
	capTenant   = "tenant"
	capKey      = "key"

	closedClient     = "client"      // the client left (or its connection failed)
	closedShutdown   = "shutdown"    // Server.Shutdown
	closedLifetime   = "lifetime"    // Config.MaxStreamLifetime
	closedRevoked    = "revoked"     // the key was revoked
	closedSlowReader = "slow_reader" // a write did not complete within StreamWriteTimeout
	closedRedis      = "redis"       // reading the tenant's events failed
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "earpiece_http_auth_failures_total",
			Help: "Requests to /v1 refused at authentication, by error code (unauthorized, forbidden, invalid_signature, ...).",
		}, []string{"code"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "earpiece_http_rate_limited_total",
			Help: "Requests to /v1 refused with 429, by budget (address, key, failed_auth).",
		}, []string{"budget"}),
		streamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "earpiece_event_streams_open",
			Help: "Open event streams (GET /v1/events) on this instance.",
		}),
		streamsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "earpiece_event_streams_refused_total",
			Help: "Event streams refused, by the cap reached (instance, tenant, key).",
		}, []string{"cap"}),
		streamsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "earpiece_event_streams_closed_total",
			Help: "Event streams ended, by reason (client, shutdown, lifetime, revoked, slow_reader, redis).",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.authFailures, m.rateLimited, m.streamsOpen, m.streamsRefused, m.streamsClosed)
	}
	return m
}
