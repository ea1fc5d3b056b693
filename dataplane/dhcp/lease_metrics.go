package dhcp

import (
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"osim/internal/clock"
	"osim/metrics"
)

// LeaseMetrics are full mode's collectors. The active-leases gauge and
// the pools' usage read the store at scrape time, so they are right after
// a restart too.
type LeaseMetrics struct {
	allocations *prometheus.CounterVec
	naks        *prometheus.CounterVec
	declines    *prometheus.CounterVec
	releases    *prometheus.CounterVec
	exhausted   *prometheus.CounterVec
	refused     *prometheus.CounterVec // by pool and reason

	// Their children by pool, made on first use: a lookup by label
	// formats the pool's network each time.
	byPool    metrics.Children[poolCounter, prometheus.Counter]
	refusedBy metrics.Children[refusal, prometheus.Counter]
}

type refusal struct {
	pool   netip.Prefix
	reason Outcome
}

type poolCounter struct {
	vec  *prometheus.CounterVec
	pool netip.Prefix
}

// NewLeaseMetrics creates the collectors and registers them on reg (nil:
// not registered). leases and clk feed osim_dhcp_leases_active and, per
// pool, osim_dhcp_pool_addresses_held (clk nil: the system clock).
func NewLeaseMetrics(reg prometheus.Registerer, pools []Pool, leases LeaseStore, clk clock.Clock) *LeaseMetrics {
	const ns, sub = metrics.Namespace, "dhcp"
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, []string{"pool"})
	}
	m := &LeaseMetrics{
		allocations: counter("lease_allocations_total", "Leases bound or extended (DHCPACK with an address), by pool."),
		naks:        counter("lease_naks_total", "DHCPNAKs sent, by pool."),
		declines:    counter("lease_declines_total", "Addresses quarantined after a DHCPDECLINE, by pool."),
		releases:    counter("lease_releases_total", "Addresses freed by a DHCPRELEASE, by pool."),
		exhausted:   counter("pool_exhausted_total", "DISCOVERs left unanswered because the pool had no free address, by pool."),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "refused_total",
			Help: "Requests dropped before any address was allocated, by pool and reason (relay_not_allowed, unknown_cap)."},
			[]string{"pool", "reason"}),
	}
	clk = clock.Or(clk)
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
		Name: "leases_active", Help: "Bound, unexpired leases in the lease store."},
		func() float64 {
			n, _ := ActiveLeases(leases, clk.Now())
			return float64(n)
		})
	if reg != nil {
		reg.MustRegister(m.allocations, m.naks, m.declines, m.releases, m.exhausted, m.refused, active,
			&poolCollector{pools: pools, leases: leases, clk: clk})
	}
	return m
}

var (
	descPoolAddresses = prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, "dhcp", "pool_addresses"),
		"Addresses in the pool's range (start to end).", []string{"pool"}, nil)
	descPoolHeld = prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, "dhcp", "pool_addresses_held"),
		"Addresses of the pool's range a lease holds now (offered, bound or declined, unexpired): what no new client can get.", []string{"pool"}, nil)
)

// poolCollector reports each pool's size and the addresses held in it,
// read from the store at scrape time: held over size is how near the
// pool is to exhaustion.
type poolCollector struct {
	pools  []Pool
	leases LeaseStore
	clk    clock.Clock
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPoolAddresses
	ch <- descPoolHeld
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	held, err := HeldAddresses(c.leases, c.pools, c.clk.Now())
	for i, p := range c.pools {
		pool := p.Network.String()
		ch <- prometheus.MustNewConstMetric(descPoolAddresses, prometheus.GaugeValue, float64(p.Size()), pool)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descPoolHeld, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(descPoolHeld, prometheus.GaugeValue, float64(held[i]), pool)
	}
}

// HeldAddresses counts, for each of pools, the addresses of its range
// that a lease holds at now (Lease.Active: offered, bound or declined,
// not expired), the ones a DISCOVER cannot be given.
func HeldAddresses(s LeaseStore, pools []Pool, now time.Time) ([]int, error) {
	held := make([]int, len(pools))
	count := func(ip netip.Addr) {
		for i, p := range pools {
			if p.InRange(ip) {
				held[i]++
				return
			}
		}
	}
	if b, ok := s.(*BadgerLeases); ok {
		b.eachActive(now, count) // no Lease built per record
		return held, nil
	}
	err := s.View(func(tx LeaseTx) error {
		return tx.Each(func(l Lease) error {
			if l.Active(now) {
				count(l.IP)
			}
			return nil
		})
	})
	return held, err
}

// ActiveLeases counts bound, unexpired leases at now.
func ActiveLeases(s LeaseStore, now time.Time) (int, error) {
	if c, ok := s.(interface{ CountActive(time.Time) int }); ok {
		return c.CountActive(now), nil // no Lease built per record
	}
	n := 0
	err := s.View(func(tx LeaseTx) error {
		return tx.Each(func(l Lease) error {
			if l.State == LeaseBound && l.Active(now) {
				n++
			}
			return nil
		})
	})
	return n, err
}

func (m *LeaseMetrics) count(o Outcome, p Pool) {
	if m == nil {
		return
	}
	var c *prometheus.CounterVec
	switch o {
	case OutcomeLeaseAck:
		c = m.allocations
	case OutcomeLeaseNak:
		c = m.naks
	case OutcomeDeclined:
		c = m.declines
	case OutcomeReleased:
		c = m.releases
	case OutcomePoolExhausted:
		c = m.exhausted
	case OutcomeRelayNotAllowed, OutcomeUnknownCap:
		m.refusedBy.Get(refusal{p.Network, o}, func() prometheus.Counter {
			return m.refused.WithLabelValues(p.Network.String(), string(o))
		}).Inc()
		return
	default:
		return
	}
	k := poolCounter{c, p.Network}
	m.byPool.Get(k, func() prometheus.Counter { return k.vec.WithLabelValues(k.pool.String()) }).Inc()
}
