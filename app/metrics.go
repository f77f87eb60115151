package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/dialplan"
)

// metrics are the app's Prometheus series. With a nil Registerer they are kept but not exported.
type metrics struct {
	started   *prometheus.CounterVec
	ended     *prometheus.CounterVec
	active    prometheus.Gauge
	refusals  *prometheus.CounterVec
	switches  *prometheus.CounterVec
	prepare   prometheus.Histogram
	join      *prometheus.HistogramVec
	switching *prometheus.HistogramVec
	connected prometheus.Gauge
}

// latencyBuckets span 0.5 ms to about 4 s: a switch takes milliseconds, a join tens of them, and
// anything past a second is an incident worth seeing.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 14)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "earpiece_sessions_started_total", Help: "Supervision sessions that reached the active state, by origin.",
		}, []string{"origin"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "earpiece_sessions_ended_total", Help: "Supervision sessions ended, by reason.",
		}, []string{"reason"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "earpiece_sessions_active", Help: "Supervision sessions active on this instance.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "earpiece_refusals_total", Help: "Refused supervision attempts and mode changes, by reason.",
		}, []string{"reason"}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "earpiece_mode_switches_total", Help: "Mode switches, by new mode.",
		}, []string{"mode"}),
		prepare: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "earpiece_join_prepare_seconds", Help: "Time from StasisStart to the bridge being ready (lookups, audit, store).",
			Buckets: latencyBuckets,
		}),
		join: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "earpiece_join_seconds",
			Help:    "Time from the supervisor's answer (a feature code's StasisStart; an API leg's answer) to the supervisor being in the bridge, hearing the call, by origin.",
			Buckets: latencyBuckets,
		}, []string{"origin"}),
		switching: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "earpiece_switch_seconds",
			Help:    "Time from a mode request (the DTMF digit's event, or the API request) to the new mode being live on Asterisk, by new mode.",
			Buckets: latencyBuckets,
		}, []string{"mode"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "earpiece_ari_connected", Help: "1 while the ARI events socket is connected.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.started, m.ended, m.active, m.refusals, m.switches, m.prepare, m.join, m.switching, m.connected)
	}
	return m
}

func (m *metrics) sessionStarted(origin string) {
	m.started.WithLabelValues(origin).Inc()
	m.active.Inc()
}
func (m *metrics) sessionEnded(reason string)   { m.ended.WithLabelValues(reason).Inc(); m.active.Dec() }
func (m *metrics) refused(reason string)        { m.refusals.WithLabelValues(reason).Inc() }
func (m *metrics) joinPrepared(d time.Duration) { m.prepare.Observe(d.Seconds()) }
func (m *metrics) modeSwitched(_, to dialplan.Mode, took time.Duration) {
	m.switches.WithLabelValues(to.String()).Inc()
	if took > 0 {
		m.switching.WithLabelValues(to.String()).Observe(took.Seconds())
	}
}

func (m *metrics) joined(origin string, took time.Duration) {
	m.join.WithLabelValues(origin).Observe(took.Seconds())
}

func (m *metrics) connState(s ari.ConnState) {
	switch s {
	case ari.Connected:
		m.connected.Set(1)
	default:
		m.connected.Set(0)
	}
}
