package dhcp

import (
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the DHCP service's Prometheus collectors. Handler updates
// them; Decide and Inspect stay pure.
type Metrics struct {
	packets   *prometheus.CounterVec
	decisions *prometheus.CounterVec
	latency   prometheus.Histogram
}

// NewMetrics creates the collectors and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "osim", "dhcp"
	m := &Metrics{
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "packets_total", Help: "DHCP packets received, by message type, client class (pxe, http, ipxe, other) and action taken (offer, ack, drop)."},
			[]string{"type", "class", "action"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "decisions_total", Help: "What became of each received packet: boot_image or discovery (answered) or the reason for silence."},
			[]string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "reply_latency_seconds", Help: "Time from receiving a request to having its reply encoded, backend lookup included.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 12)}),
	}
	if reg != nil {
		reg.MustRegister(m.packets, m.decisions, m.latency)
	}
	return m
}

// typeLabel bounds the message type label to the eight RFC 2132 §9.6 types.
func typeLabel(t dhcpv4.MessageType) string {
	if t >= dhcpv4.MessageTypeDiscover && t <= dhcpv4.MessageTypeInform {
		return strings.ToLower(t.String())
	}
	return "unknown"
}
