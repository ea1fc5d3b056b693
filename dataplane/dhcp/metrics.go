package dhcp

import (
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"osim/metrics"
)

// Metrics are the DHCP service's Prometheus collectors. Handler updates
// them; Decide and Inspect stay pure.
type Metrics struct {
	packets   *prometheus.CounterVec
	decisions *prometheus.CounterVec
	latency   prometheus.Histogram

	// The children of packets and decisions, by label set, made on first
	// use: WithLabelValues hashes its labels on every call, and the type
	// label costs a String and a ToLower, too much per packet.
	packetsBy   metrics.Children[packetKey, prometheus.Counter]
	decisionsBy metrics.Children[Outcome, prometheus.Counter]
}

// packetKey is a label set of packets_total; typ 0 is "unknown".
type packetKey struct {
	typ    dhcpv4.MessageType
	class  Class
	action string
}

// NewMetrics creates the collectors and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = metrics.Namespace, "dhcp"
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

// count records one datagram: its message type (0 if not decoded), class,
// action and outcome.
func (m *Metrics) count(typ dhcpv4.MessageType, class Class, action string, o Outcome) {
	if !knownType(typ) {
		typ = 0
	}
	k := packetKey{typ, class, action}
	m.packetsBy.Get(k, func() prometheus.Counter {
		return m.packets.WithLabelValues(typeLabel(k.typ), k.class.String(), k.action)
	}).Inc()
	m.decisionsBy.Get(o, func() prometheus.Counter { return m.decisions.WithLabelValues(string(o)) }).Inc()
}

// typeLabel bounds the message type label to the eight RFC 2132 §9.6 types.
func typeLabel(t dhcpv4.MessageType) string {
	if knownType(t) {
		return strings.ToLower(t.String())
	}
	return "unknown"
}

func knownType(t dhcpv4.MessageType) bool {
	return t >= dhcpv4.MessageTypeDiscover && t <= dhcpv4.MessageTypeInform
}
