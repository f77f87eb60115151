package webhooks

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
	"golang.org/x/time/rate"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
)

// Request budgets: token buckets (golang.org/x/time/rate, maintained with Go itself) per client
// address on /v1, per API key after authentication, and per client address for failed
// authentications. They are per instance: n instances allow n times the budget, which still
// bounds what one client can do. A request over budget gets 429 rate_limited with Retry-After.

// maxBuckets bounds each budget's table of buckets; past it (a flood from very many
// addresses), new clients share one bucket until idle ones are dropped.
const maxBuckets = 10_000

// limits are the server's budgets.
type limits struct {
	perAddress, perKey, failedAuth *buckets
}

func newLimits(cfg config.RateLimits) *limits {
	return &limits{
		perAddress: newBuckets(cfg.PerAddress),
		perKey:     newBuckets(cfg.PerKey),
		failedAuth: newBuckets(cfg.FailedAuthPerAddress),
	}
}

// buckets is one budget: a token bucket per client.
type buckets struct {
	limit rate.Limit
	burst int
	// full is how long an untouched bucket takes to fill up: one idle that long is the same
	// as a new one, and may be dropped.
	full time.Duration

	mu       sync.Mutex
	m        map[string]*bucket
	overflow *rate.Limiter
	swept    time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newBuckets(r config.Rate) *buckets {
	return &buckets{
		limit:    rate.Limit(r.PerSecond),
		burst:    r.Burst,
		full:     time.Duration(float64(r.Burst) / r.PerSecond * float64(time.Second)),
		m:        map[string]*bucket{},
		overflow: rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst),
	}
}

// get returns key's bucket.
func (b *buckets) get(key string, now time.Time) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bk, ok := b.m[key]; ok {
		bk.seen = now
		return bk.lim
	}
	if len(b.m) >= maxBuckets && now.Sub(b.swept) > time.Second {
		b.swept = now
		for k, bk := range b.m {
			if now.Sub(bk.seen) >= b.full {
				delete(b.m, k)
			}
		}
	}
	if len(b.m) >= maxBuckets {
		return b.overflow
	}
	bk := &bucket{lim: rate.NewLimiter(b.limit, b.burst), seen: now}
	b.m[key] = bk
	return bk.lim
}

// take takes a token from key's bucket; with none left it takes nothing and says how long
// until there is one.
func (b *buckets) take(key string, now time.Time) (wait time.Duration, ok bool) {
	r := b.get(key, now).ReserveN(now, 1)
	if !r.OK() {
		return time.Minute, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// spent reports whether key's bucket is empty, and how long until it is not, taking nothing.
func (b *buckets) spent(key string, now time.Time) (time.Duration, bool) {
	tokens := b.get(key, now).TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	return time.Duration((1 - tokens) / float64(b.limit) * float64(time.Second)), true
}

// clientAddr is the budget key of a request's client: its TCP peer address, IPv6 addresses by
// their /64 (what one host or customer usually gets). Forwarding headers are not consulted:
// whoever sends them chooses them.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// keyID names an API key in the budgets and the stream caps: key names are unique per tenant.
func keyID(p app.Principal) string { return p.Tenant + "\x00" + p.KeyName }

// tooMany is a 429 rate_limited answer telling the client to wait.
func tooMany(wait time.Duration, msg string) *apiError {
	e := newError(http.StatusTooManyRequests, codeRateLimited, "%s", msg)
	e.retryAfter = wait
	return e
}

// retryAfterSeconds is wait as a Retry-After value: whole seconds, rounded up, at least 1.
func retryAfterSeconds(wait time.Duration) string {
	return strconv.Itoa(max(int(math.Ceil(wait.Seconds())), 1))
}

// limitAddress spends the client address's budget on every /v1 request.
func (s *Server) limitAddress(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if wait, ok := s.limits.perAddress.take(clientAddr(c.Request()), time.Now()); !ok {
			s.met.rateLimited.WithLabelValues(budgetAddress).Inc()
			return tooMany(wait, "too many requests from this address; retry later")
		}
		return next(c)
	}
}
