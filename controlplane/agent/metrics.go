package agent

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

type agentMetrics struct {
	syncedRevision prometheus.Gauge
	syncRequests   *prometheus.CounterVec
	snapshots      prometheus.Counter
	reachable      prometheus.Gauge
	eventsPending  prometheus.Gauge
	eventsEmitted  *prometheus.CounterVec
	eventsUploaded prometheus.Counter
	eventsRefused  prometheus.Counter
	eventsDropped  *prometheus.CounterVec
	blobsStaged    prometheus.Counter
	blobBytes      prometheus.Counter
	stageFailures  prometheus.Counter
	ordersLive     prometheus.Gauge
	regRefused     *prometheus.CounterVec
	pending        atomicInt
}

func newMetrics(reg prometheus.Registerer) (*agentMetrics, error) {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "osim", Subsystem: "agent", Name: name, Help: help}
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts(opts(name, help)))
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts(opts(name, help)))
	}
	m := &agentMetrics{
		syncedRevision: g("synced_revision", "MDB revision the local store is at."),
		syncRequests: prometheus.NewCounterVec(prometheus.CounterOpts(opts("sync_requests_total",
			"Sync requests to the manager by result (changes, empty, snapshot, error).")), []string{"result"}),
		snapshots:     c("snapshot_total", "Snapshots taken (the whole view replaced)."),
		reachable:     g("manager_reachable", "1 when the last call to the manager succeeded, else 0."),
		eventsPending: g("events_pending", "Events buffered in Badger waiting for upload."),
		eventsEmitted: prometheus.NewCounterVec(prometheus.CounterOpts(opts("events_emitted_total",
			"Events written to the upload buffer, by type.")), []string{"type"}),
		eventsUploaded: c("events_uploaded_total", "Events the manager acknowledged."),
		eventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts(opts("events_dropped_total",
			"Events not buffered because the data dir's free space is below its reserve, by type.")), []string{"type"}),
		eventsRefused: c("events_refused_total", "Buffered events dropped because the manager refused them as another site's (the machine moved to another site)."),
		blobsStaged:   c("blobs_staged_total", "Blobs downloaded, verified and stored."),
		blobBytes:     c("blob_bytes_downloaded_total", "Bytes of blobs downloaded from the manager."),
		stageFailures: c("stage_failures_total", "Blob downloads that failed (transfer, size or sha256)."),
		ordersLive:    g("orders_live", "Live orders in the local view."),
		regRefused: prometheus.NewCounterVec(prometheus.CounterOpts(opts("register_refused_total",
			"Registrations the manager refused, by HTTP status (409: the name is taken, retried with backoff; 401/403: the join token, not retried).")), []string{"code"}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.syncedRevision, m.syncRequests, m.snapshots, m.reachable,
			m.eventsPending, m.eventsEmitted, m.eventsUploaded, m.eventsRefused, m.eventsDropped, m.blobsStaged, m.blobBytes, m.stageFailures, m.ordersLive, m.regRefused} {
			if err := reg.Register(col); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// atomicInt mirrors events_pending for the heartbeat.
type atomicInt struct{ v atomic.Int64 }

func (m *agentMetrics) addPending(n int64) {
	m.eventsPending.Set(float64(m.pending.v.Add(n)))
}

func (m *agentMetrics) pendingValue() int64 { return m.pending.v.Load() }
