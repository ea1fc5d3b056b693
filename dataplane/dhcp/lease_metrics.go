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

	// Their children by pool, made for every pool by NewLeaseMetrics (a
	// lookup by label formats the pool's network each time).
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

// refusalReasons are osim_dhcp_refused_total's reasons.
var refusalReasons = []Outcome{OutcomeRelayNotAllowed, OutcomeUnknownCap}

// NewLeaseMetrics creates the collectors and registers them on reg (nil:
// not registered). leases and clk feed osim_dhcp_leases_active and, per
// pool, osim_dhcp_pool_addresses_held (clk nil: the system clock).
//
// Every pool's counters are exported from the start, at 0. Made on first
// use instead, a counter's first sample is already 1 or more, and
// increase() sees no rise from a series' first sample: a pool that first
// runs out between two scrapes would never fire OsimDHCPPoolExhausted
// (increase(osim_dhcp_pool_exhausted_total[10m]) > 0).
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
	for _, p := range pools {
		for _, vec := range []*prometheus.CounterVec{m.allocations, m.naks, m.declines, m.releases, m.exhausted} {
			m.poolChild(vec, p.Network)
		}
		for _, o := range refusalReasons {
			m.refusedChild(p.Network, o)
		}
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
		m.refusedChild(p.Network, o).Inc()
		return
	default:
		return
	}
	m.poolChild(c, p.Network).Inc()
}

// poolChild is vec's child for pool.
func (m *LeaseMetrics) poolChild(vec *prometheus.CounterVec, pool netip.Prefix) prometheus.Counter {
	return m.byPool.Get(poolCounter{vec, pool}, func() prometheus.Counter { return vec.WithLabelValues(pool.String()) })
}

// refusedChild is osim_dhcp_refused_total's child for pool and reason.
func (m *LeaseMetrics) refusedChild(pool netip.Prefix, reason Outcome) prometheus.Counter {
	return m.refusedBy.Get(refusal{pool, reason}, func() prometheus.Counter {
		return m.refused.WithLabelValues(pool.String(), string(reason))
	})
}
