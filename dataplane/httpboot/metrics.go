package httpboot

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"osim/metrics"
)

// Metrics are the HTTP boot server's Prometheus collectors.
type Metrics struct {
	requests      *prometheus.CounterVec
	bytes         *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	renders       *prometheus.CounterVec
	statusReports *prometheus.CounterVec
	statusRefused *prometheus.CounterVec
	statusUnbound prometheus.Counter
	discover      *prometheus.CounterVec
	installPlans  *prometheus.CounterVec
	answers       *prometheus.CounterVec
	firstboots    *prometheus.CounterVec

	// The per-request children, by route (and code), made on first use.
	requestsBy metrics.Children[routeCode, prometheus.Counter]
	bytesBy    metrics.Children[string, prometheus.Counter]
	durationBy metrics.Children[string, prometheus.Observer]
}

type routeCode struct {
	route string
	code  int
}

// request records one answered request.
func (m *Metrics) request(route string, code int, n int64, d time.Duration) {
	k := routeCode{route, code}
	m.requestsBy.Get(k, func() prometheus.Counter { return m.requests.WithLabelValues(k.route, strconv.Itoa(k.code)) }).Inc()
	m.bytesBy.Get(route, func() prometheus.Counter { return m.bytes.WithLabelValues(route) }).Add(float64(n))
	m.durationBy.Get(route, func() prometheus.Observer { return m.duration.WithLabelValues(route) }).Observe(d.Seconds())
}

// NewMetrics creates the collectors and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = metrics.Namespace, "httpboot"
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_total", Help: "HTTP requests answered, by route (script, file, status, discover, other) and status code."},
			[]string{"route", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "response_bytes_total", Help: "Response body bytes written, by route."}, []string{"route"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "request_duration_seconds", Help: "Time from request to the end of the response, by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, []string{"route"}),
		renders: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "script_renders_total", Help: "iPXE script requests, by outcome (boot, local, unknown_target, bad_mac, bad_platform, invalid, too_large, too_slow, error)."},
			[]string{"outcome"}),
		statusReports: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "status_reports_total", Help: "Installer status reports, by phase accepted, or refused (4xx), sink_error or backend_error (token lookup failed)."},
			[]string{"phase"}),
		statusRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "status_refused_total", Help: "Installer status reports refused, by reason (bad_order, content_type, no_token, unknown_order, bad_token, address, too_large, bad_body, invalid)."},
			[]string{"reason"}),
		statusUnbound: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "status_unbound_total", Help: "Installer status reports accepted with no address known for the order's target (script not fetched here since the start, no lease, no fixed address)."}),
		discover: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "discover_reports_total", Help: "Discovery reports of unknown machines, by outcome (accepted, rate_limited, too_soon, known, bad_mac, content_type, too_large, bad_body, invalid, sink_error, disabled)."},
			[]string{"outcome"}),
		installPlans: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "install_plans_total", Help: "Install plan requests, by outcome (served, refused, unknown_order, conflict, invalid, disabled, error)."},
			[]string{"outcome"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "answers_total", Help: "Answer file requests of vendor installers, by outcome (served, refused, unknown_order, conflict, invalid, disabled, error)."},
			[]string{"outcome"}),
		firstboots: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "firstboot_reports_total", Help: "First-boot procedure reports, by outcome (succeeded and failed: recorded with exit code 0 or not; refused, gone: after the report window, error: not recorded)."},
			[]string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.bytes, m.duration, m.renders, m.statusReports, m.statusRefused, m.statusUnbound, m.discover, m.installPlans, m.answers, m.firstboots)
	}
	return m
}
