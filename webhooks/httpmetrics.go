package webhooks

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// requestMetrics is the edge's latency histogram: how long each answer took, from the first
// middleware to the handler's (or the error handler's) return, by method, route and status.
//
// Cardinality stays bounded whatever clients send: route is the route's pattern as registered
// (/v1/supervisions/:id), never the path; a request no route matches (404, 405) is counted under
// routeUnmatched; a method that is not a standard one is methodOther; codes are HTTP statuses.
//
// Event streams are left out: a response of type text/event-stream lasts as long as the stream
// (up to Config.MaxStreamLifetime), which says nothing about how fast the edge answers and would
// swamp every bucket; earpiece_event_streams_open and earpiece_event_streams_closed_total count
// them. A /v1/events request refused before it streams (401, 429, 503 too_many_streams) is an
// ordinary answer and is observed.
type requestMetrics struct {
	duration *prometheus.HistogramVec // by method, route, code
}

// Labels of earpiece_http_request_duration_seconds beyond the route patterns.
const (
	routeUnmatched = "unmatched" // no route: 404 not found, 405 method not allowed
	methodOther    = "other"     // a method outside knownMethods
)

// knownMethods are the methods that keep their name as a label.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// requestDurationBuckets span a /readyz (well under a millisecond) to a join or mode switch
// waiting on Asterisk (tens of milliseconds) and an action that runs into its timeout
// (DefaultActionTimeout and beyond).
var requestDurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newRequestMetrics(reg prometheus.Registerer) *requestMetrics {
	m := &requestMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "earpiece_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by method, route pattern (unmatched: no route) and status code; event streams are not observed.",
			Buckets: requestDurationBuckets,
		}, []string{"method", "route", "code"}),
	}
	if reg != nil {
		reg.MustRegister(m.duration)
	}
	return m
}

// middleware observes every request that runs through it; register it first, so that the
// other middlewares' time (request id, limits) is part of what it measures.
func (m *requestMetrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		start := time.Now()
		err := next(c)
		if isEventStream(c) {
			return err
		}
		m.duration.WithLabelValues(methodLabel(c.Request().Method), routeLabel(c), strconv.Itoa(answerStatus(c, err))).
			Observe(time.Since(start).Seconds())
		return err
	}
}

// methodLabel is method when it is a standard one, methodOther otherwise (a client may send any
// token as a method).
func methodLabel(method string) string {
	if knownMethods[method] {
		return method
	}
	return methodOther
}

// routeLabel is the pattern of the route that matched (c.Path()), routeUnmatched when none did.
func routeLabel(c *echo.Context) string {
	switch name := c.RouteInfo().Name; {
	case name == echo.NotFoundRouteName, name == echo.MethodNotAllowedRouteName, c.Path() == "":
		return routeUnmatched
	}
	return c.Path()
}

// answerStatus is the status the client gets: the one written when the answer is already out,
// else the one the error handler (handleError) will write for err, else 200.
func answerStatus(c *echo.Context, err error) int {
	r, uerr := echo.UnwrapResponse(c.Response())
	if uerr == nil && r.Committed {
		if r.Status == 0 {
			return http.StatusOK
		}
		return r.Status
	}
	if err != nil {
		status, _ := errorResponse(err)
		return status
	}
	if uerr == nil && r.Status != 0 {
		return r.Status
	}
	return http.StatusOK
}

// isEventStream says whether the handler answered with a Server-Sent Events stream.
func isEventStream(c *echo.Context) bool {
	ct := c.Response().Header().Get(echo.HeaderContentType)
	return strings.HasPrefix(ct, "text/event-stream")
}
