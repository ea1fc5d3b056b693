package manager

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/api"
	"osim/metrics"
)

const subsystem = "manager"

type serverMetrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	syncClients     prometheus.Gauge
	eventsIngested  prometheus.Counter
	eventsDuplicate prometheus.Counter
	eventsRefused   *prometheus.CounterVec
	eventsDropped   *prometheus.CounterVec
	uploadsExpired  prometheus.Counter
}

func newServerMetrics(s *Server, reg prometheus.Registerer) (*serverMetrics, error) {
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: subsystem, Name: "api_requests_total",
			Help: "API requests by route (the mux pattern) and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: subsystem, Name: "api_request_duration_seconds",
			Help:    "API request latency by route; long-polls included.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 60},
		}, []string{"route"}),
		syncClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: subsystem, Name: "sync_clients",
			Help: "Sync long-polls waiting for a change.",
		}),
		eventsIngested: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: subsystem, Name: "events_ingested_total",
			Help: "Events uploaded by boot servers and stored.",
		}),
		eventsDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: subsystem, Name: "events_duplicate_total",
			Help: "Uploaded events dropped as already stored (origin sequence seen).",
		}),
		eventsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: subsystem, Name: "events_refused_total",
			Help: "Event batches refused whole, by reason (foreign_site: an event names another site's order or target).",
		}, []string{"reason"}),
	}
	m.eventsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: subsystem, Name: "events_dropped_total",
		Help: "Stored events deleted by the retention, by reason (age, count).",
	}, []string{"reason"})
	m.uploadsExpired = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: subsystem, Name: "uploads_expired_total",
		Help: "Unfinished blob uploads deleted after sitting idle longer than the upload TTL.",
	})
	m.eventsRefused.WithLabelValues("foreign_site")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.syncClients,
		m.eventsIngested, m.eventsDuplicate, m.eventsRefused, m.eventsDropped, m.uploadsExpired, &storeCollector{s: s}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *serverMetrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// storeCollector reads the store at scrape time.
type storeCollector struct{ s *Server }

var (
	descOrders = prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, subsystem, "orders"),
		"Orders by state.", []string{"state"}, nil)
	descBootServers = prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, subsystem, "boot_servers"),
		"Registered boot servers by health.", []string{"health"}, nil)
	descRevision = prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, subsystem, "revision"),
		"The MDB's current revision.", nil, nil)
	descSyncLag = prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, subsystem, "sync_lag_revisions"),
		"Current revision minus the one the boot server last synced from or reported.", []string{"boot_server"}, nil)
	descOrdersEnded = prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, subsystem, "orders_ended_total"),
		"Orders that entered a final state (done, failed, cancelled) since the manager started; a retried order counts again when it ends again.", []string{"state"}, nil)
	descRollouts = prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, subsystem, "rollouts"),
		"Rollouts by state.", []string{"state"}, nil)
	descRolloutTargets = prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, subsystem, "rollout_targets"),
		"Targets of each rollout not yet done or aborted, by where they stand: done, failed, other (cancelled, or no order made) or remaining.", []string{"rollout", "state"}, nil)
)

// rolloutStates are the values of osim_manager_rollouts' state label.
var rolloutStates = []string{api.RolloutRunning, api.RolloutPaused, api.RolloutStopped, api.RolloutAborted, api.RolloutDone}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descOrders
	ch <- descBootServers
	ch <- descRevision
	ch <- descSyncLag
	ch <- descOrdersEnded
	ch <- descRollouts
	ch <- descRolloutTargets
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	rev, err := s.store.Revision(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descRevision, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descRevision, prometheus.GaugeValue, float64(rev))
	if counts, err := s.store.CountOrders(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(descOrders, err)
	} else {
		for _, st := range api.OrderStates {
			ch <- prometheus.MustNewConstMetric(descOrders, prometheus.GaugeValue, float64(counts[st]), string(st))
		}
	}
	if e, ok := s.store.(interface {
		OrdersEnded() map[api.OrderState]uint64
	}); ok {
		for st, n := range e.OrdersEnded() {
			ch <- prometheus.MustNewConstMetric(descOrdersEnded, prometheus.CounterValue, float64(n), string(st))
		}
	}
	if rs, ok := s.store.(rolloutStore); ok {
		collectRollouts(ctx, rs, ch)
	}
	bss, err := s.store.ListBootServers(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descBootServers, err)
		return
	}
	health := map[string]int{api.HealthHealthy: 0, api.HealthStale: 0, api.HealthDown: 0}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for _, bs := range bss {
		health[s.health(bs)]++
		synced := max(bs.SyncedRevision, s.syncedRevs[bs.ID])
		lag := uint64(0)
		if rev > synced {
			lag = rev - synced
		}
		ch <- prometheus.MustNewConstMetric(descSyncLag, prometheus.GaugeValue, float64(lag), bs.ID)
	}
	for h, n := range health {
		ch <- prometheus.MustNewConstMetric(descBootServers, prometheus.GaugeValue, float64(n), h)
	}
}

// collectRollouts reports the rollouts per state and, for each not done
// or aborted, its targets per outcome (from its waves' counts, which the
// engine keeps up to date while a wave runs): the progress of a rollout
// is its targets not remaining over all of them.
func collectRollouts(ctx context.Context, rs rolloutStore, ch chan<- prometheus.Metric) {
	l, err := rs.ListRollouts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descRollouts, err)
		return
	}
	byState := map[string]int{}
	for _, ro := range l {
		byState[ro.State]++
		if ro.State == api.RolloutDone || ro.State == api.RolloutAborted {
			continue
		}
		var total, done, failed, other int
		for _, w := range ro.Waves {
			total += len(w.Targets)
			done, failed, other = done+w.Done, failed+w.Failed, other+w.Other
		}
		for _, v := range []struct {
			state string
			n     int
		}{{"done", done}, {"failed", failed}, {"other", other}, {"remaining", max(0, total-done-failed-other)}} {
			ch <- prometheus.MustNewConstMetric(descRolloutTargets, prometheus.GaugeValue, float64(v.n), ro.ID, v.state)
		}
	}
	for _, st := range rolloutStates {
		ch <- prometheus.MustNewConstMetric(descRollouts, prometheus.GaugeValue, float64(byState[st]), st)
	}
}
