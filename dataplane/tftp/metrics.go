package tftp

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus collectors. Children with fixed labels
// are resolved once so the per-block path touches only atomics.
type Metrics struct {
	started          *prometheus.CounterVec
	completed        *prometheus.CounterVec
	failed           *prometheus.CounterVec
	refusals         *prometheus.CounterVec
	probes           prometheus.Counter
	bytesSent        prometheus.Counter
	bytesRecv        prometheus.Counter
	retransmits      prometheus.Counter
	dupAcks          prometheus.Counter
	dupRequests      prometheus.Counter
	unknownTID       prometheus.Counter
	malformed        *prometheus.CounterVec
	active           prometheus.Gauge
	unacked          prometheus.Gauge
	unackedEvicted   prometheus.Counter
	unackedSpared    prometheus.Counter
	firstAckTimeouts prometheus.Counter
	blksize          prometheus.Histogram
	windowsize       prometheus.Histogram
	duration         *prometheus.HistogramVec
	cacheHits        prometheus.Counter
	cacheMisses      prometheus.Counter
	cacheBytes       prometheus.Gauge
}

// NewMetrics creates the collectors and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "osim", "tftp"
	m := &Metrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "transfers_started_total", Help: "Transfers started, by direction (read, write)."}, []string{"direction"}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "transfers_completed_total", Help: "Transfers that delivered every byte, by direction."}, []string{"direction"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "transfers_failed_total", Help: "Transfers that ended early, by direction and reason."}, []string{"direction", "reason"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "refusals_total", Help: "Requests refused with an error packet, by reason."}, []string{"reason"}),
		probes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "tsize_probes_total", Help: "Read requests the client ended after the OACK (the UEFI tsize probe)."}),
		bytesSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "bytes_sent_total", Help: "Payload bytes sent in DATA packets, retransmits included."}),
		bytesRecv: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "bytes_received_total", Help: "Payload bytes accepted from uploads."}),
		retransmits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "retransmits_total", Help: "Packets sent again after a timeout or a gap reported by the client."}),
		dupAcks: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "duplicate_acks_total", Help: "Duplicate ACKs ignored (never answered with a send)."}),
		dupRequests: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "duplicate_requests_total", Help: "Retried requests folded into their running transfer."}),
		unknownTID: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "unknown_tid_packets_total", Help: "Packets from a wrong address/port on a transfer port, answered with error 5."}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "malformed_packets_total", Help: "Packets dropped as malformed or unexpected, by where they arrived."}, []string{"where"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "active_transfers", Help: "Transfers in progress."}),
		unacked: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "unacked_transfers", Help: "Transfers whose client has not acknowledged anything yet (possibly forged requests)."}),
		unackedEvicted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "unacked_evicted_total", Help: "Unacknowledged transfers dropped to admit a newer request (the class or the total was full)."}),
		unackedSpared: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "unacked_spared_total", Help: "Times eviction passed over an unacknowledged transfer with a datagram already waiting (likely its first ACK)."}),
		firstAckTimeouts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "first_ack_timeouts_total", Help: "Transfers ended because their first flight, sent twice, was never acknowledged."}),
		blksize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "negotiated_blksize_bytes", Help: "Block size of each transfer after negotiation.",
			Buckets: []float64{512, 1024, 1408, 1432, 1456, 1468, 4096, 8192, 16384, 65464}}),
		windowsize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "negotiated_windowsize_blocks", Help: "Window size of each read transfer after negotiation.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "transfer_duration_seconds", Help: "Duration of completed transfers.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}, []string{"direction"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "cache_hits_total", Help: "Files served from the shared in-memory cache."}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "cache_misses_total", Help: "Cacheable files read from the resolver into the cache."}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "cache_bytes", Help: "Bytes held by the shared file cache."}),
	}
	if reg != nil {
		reg.MustRegister(m.started, m.completed, m.failed, m.refusals, m.probes, m.bytesSent,
			m.bytesRecv, m.retransmits, m.dupAcks, m.dupRequests, m.unknownTID, m.malformed,
			m.active, m.unacked, m.unackedEvicted, m.unackedSpared, m.firstAckTimeouts, m.blksize, m.windowsize, m.duration, m.cacheHits, m.cacheMisses, m.cacheBytes)
	}
	return m
}
