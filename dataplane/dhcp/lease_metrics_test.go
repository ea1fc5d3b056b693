package dhcp

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPoolUsageCountsTheAddressesLeasesHoldInEachRange checks
// osim_dhcp_pool_addresses and osim_dhcp_pool_addresses_held, the pair the
// pool-near-exhaustion alert divides: offered, bound and declined leases
// hold their address until they expire; released and expired ones, and
// reservations outside the range, do not count.
func TestPoolUsageCountsTheAddressesLeasesHoldInEachRange(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	f := newFull(t, clk, localPool("10.0.0.100", "10.0.0.110"), relayPool)
	mac := func(b byte) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, 1, b} }
	leases := []Lease{
		{IP: ip("10.0.0.100"), MAC: mac(1), State: LeaseBound, Expires: now.Add(time.Hour)},
		{IP: ip("10.0.0.101"), MAC: mac(2), State: LeaseOffered, Expires: now.Add(30 * time.Second)},
		{IP: ip("10.0.0.102"), State: LeaseDeclined, Expires: now.Add(10 * time.Minute)},
		{IP: ip("10.0.0.103"), MAC: mac(3), State: LeaseReleased, Expires: now.Add(time.Hour)},
		{IP: ip("10.0.0.104"), MAC: mac(4), State: LeaseBound, Expires: now.Add(-time.Second)},
		{IP: ip("10.0.0.21"), MAC: mac(5), State: LeaseBound, Expires: now.Add(time.Hour)}, // a reservation: in the network, not the range
		{IP: ip("10.1.0.10"), MAC: mac(6), State: LeaseBound, Expires: now.Add(time.Hour)},
	}
	err := f.Leases.Update(context.Background(), func(tx LeaseTx) error {
		for _, l := range leases {
			if err := tx.Put(l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	NewLeaseMetrics(reg, f.Pools, f.Leases, clk)

	check := func(when string, local, relay int) {
		t.Helper()
		want := `
# HELP osim_dhcp_pool_addresses Addresses in the pool's range (start to end).
# TYPE osim_dhcp_pool_addresses gauge
osim_dhcp_pool_addresses{pool="10.0.0.0/24"} 11
osim_dhcp_pool_addresses{pool="10.1.0.0/24"} 11
# HELP osim_dhcp_pool_addresses_held Addresses of the pool's range a lease holds now (offered, bound or declined, unexpired): what no new client can get.
# TYPE osim_dhcp_pool_addresses_held gauge
osim_dhcp_pool_addresses_held{pool="10.0.0.0/24"} ` + strconv.Itoa(local) + `
osim_dhcp_pool_addresses_held{pool="10.1.0.0/24"} ` + strconv.Itoa(relay) + "\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "osim_dhcp_pool_addresses", "osim_dhcp_pool_addresses_held"); err != nil {
			t.Errorf("%s: %v", when, err)
		}
		// Any other LeaseStore is read through View, to the same counts.
		held, err := HeldAddresses(struct{ LeaseStore }{f.Leases}, f.Pools, clk.Now())
		if err != nil || held[0] != local || held[1] != relay {
			t.Errorf("%s: HeldAddresses through View = %v, %v; want [%d %d]", when, held, err, local, relay)
		}
	}
	check("now", 3, 1)
	clk.Step(time.Minute) // the offer lapses
	check("a minute later", 2, 1)
}

// TestEveryPoolsCountersAreExportedAtZeroBeforeAnyRequest checks that a
// fresh LeaseMetrics exports, for each configured pool, every per-pool
// counter (and osim_dhcp_refused_total for each reason) at 0: increase()
// sees no rise from a series' first sample, so a counter that appeared
// only on its first Inc would hide the first exhaustion from the
// OsimDHCPPoolExhausted alert.
func TestEveryPoolsCountersAreExportedAtZeroBeforeAnyRequest(t *testing.T) {
	clk := newClock()
	f := newFull(t, clk, localPool("10.0.0.100", "10.0.0.110"), relayPool)
	reg := prometheus.NewRegistry()
	NewLeaseMetrics(reg, f.Pools, f.Leases, clk)

	var want strings.Builder
	var names []string
	for _, c := range []struct{ name, help string }{
		{"osim_dhcp_lease_allocations_total", "Leases bound or extended (DHCPACK with an address), by pool."},
		{"osim_dhcp_lease_declines_total", "Addresses quarantined after a DHCPDECLINE, by pool."},
		{"osim_dhcp_lease_naks_total", "DHCPNAKs sent, by pool."},
		{"osim_dhcp_lease_releases_total", "Addresses freed by a DHCPRELEASE, by pool."},
		{"osim_dhcp_pool_exhausted_total", "DISCOVERs left unanswered because the pool had no free address, by pool."},
	} {
		names = append(names, c.name)
		fmt.Fprintf(&want, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
		for _, p := range f.Pools {
			fmt.Fprintf(&want, "%s{pool=%q} 0\n", c.name, p.Network)
		}
	}
	names = append(names, "osim_dhcp_refused_total")
	want.WriteString("# HELP osim_dhcp_refused_total Requests dropped before any address was allocated, by pool and reason (relay_not_allowed, unknown_cap).\n# TYPE osim_dhcp_refused_total counter\n")
	for _, p := range f.Pools {
		for _, reason := range []string{"relay_not_allowed", "unknown_cap"} {
			fmt.Fprintf(&want, "osim_dhcp_refused_total{pool=%q,reason=%q} 0\n", p.Network, reason)
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()), names...); err != nil {
		t.Error(err)
	}
}
