package dhcp

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"osim/internal/clock"
)

// knownBackend knows the MACs in its set (a target each) and reports the
// rest as the file backend does with `unknown: ignore`.
type knownBackend map[string]bool

func (k knownBackend) Lookup(_ context.Context, mac net.HardwareAddr, _ Arch) (Decision, error) {
	if k[mac.String()] {
		return Decision{Action: ActionBootLocal}, nil
	}
	return Decision{}, ErrUnknownMAC
}

// guardedPool is localPool with the hardening a config gives by default.
func guardedPool(start, end string, maxUnknown int) Pool {
	p := localPool(start, end)
	p.UnknownLeaseTime, p.MaxUnknown = 5*time.Minute, maxUnknown
	return p
}

// dora runs DISCOVER and REQUEST for mac through h; the ACK, or nil and
// the outcome that stopped it.
func dora(t *testing.T, h *Handler, clk *clock.Fake, mac net.HardwareAddr, mods ...dhcpv4.Modifier) (*dhcpv4.DHCPv4, Outcome) {
	t.Helper()
	ctx := context.Background()
	r := h.Handle(ctx, dhcpMsg(t, mac, dhcpv4.MessageTypeDiscover, mods...).ToBytes(), PortDHCP, clk.Now())
	if r.Reply == nil {
		return nil, r.Outcome
	}
	req := dhcpMsg(t, mac, dhcpv4.MessageTypeRequest, append(mods, serverID(serverIP), requested(r.Reply.YourIPAddr.String()))...)
	r = h.Handle(ctx, req.ToBytes(), PortDHCP, clk.Now())
	if r.Reply == nil || r.Reply.MessageType() != dhcpv4.MessageTypeAck {
		return nil, r.Outcome
	}
	return r.Reply, r.Outcome
}

func randomMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xee, byte(i >> 16), byte(i >> 8), byte(i), 0x01}
}

// leaseCount is the number of lease records of the store, any state.
func leaseCount(t *testing.T, f *Full) int {
	t.Helper()
	n := 0
	if err := f.Leases.View(func(tx LeaseTx) error {
		return tx.Each(func(Lease) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRandomMACFloodIsCappedAndKnownClientsStillServed(t *testing.T) {
	clk := newClock()
	known := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x77}
	h, _ := newFullHandler(t, knownBackend{known.String(): true}, clk, guardedPool("10.0.0.100", "10.0.0.119", 5))
	bound := 0
	for i := range 500 {
		ack, o := dora(t, h, clk, randomMAC(i))
		switch {
		case ack != nil:
			bound++
			if lt := ack.IPAddressLeaseTime(0); lt != 5*time.Minute {
				t.Fatalf("unknown client %d: lease %s, want 5m", i, lt)
			}
		case o != OutcomeUnknownCap:
			t.Fatalf("unknown client %d stopped by %q, want %q", i, o, OutcomeUnknownCap)
		}
	}
	if bound != 5 {
		t.Fatalf("%d unknown clients bound, want the cap of 5", bound)
	}
	if got := testutil.ToFloat64(h.Full.Metrics.refused.WithLabelValues("10.0.0.0/24", "unknown_cap")); got != 495 {
		t.Fatalf("osim_dhcp_refused_total{reason=unknown_cap} = %v, want 495", got)
	}
	ack, o := dora(t, h, clk, known)
	if ack == nil || ack.IPAddressLeaseTime(0) != time.Hour {
		t.Fatalf("known client during the flood: %q, %v", o, ack)
	}
	// The flood's leases lapse (5 min) and free the cap; the known
	// client's hour-long lease stays.
	clk.Step(5*time.Minute + time.Second)
	if ack, o := dora(t, h, clk, randomMAC(1000)); ack == nil {
		t.Fatalf("unknown client after the flood lapsed: %q", o)
	}
}

func TestUnknownClientsRenewTheirOwnAddressAtTheCap(t *testing.T) {
	clk := newClock()
	h, _ := newFullHandler(t, knownBackend{}, clk, guardedPool("10.0.0.100", "10.0.0.119", 1))
	first, _ := dora(t, h, clk, macA)
	if first == nil {
		t.Fatal("first unknown client refused")
	}
	clk.Step(2 * time.Minute)
	renew := dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, ciaddr(first.YourIPAddr.String()))
	if r := h.Handle(context.Background(), renew.ToBytes(), PortDHCP, clk.Now()); r.Outcome != OutcomeLeaseAck {
		t.Fatalf("renewal at the cap: %q", r.Outcome)
	}
	if ack, _ := dora(t, h, clk, macA); ack == nil || !ack.YourIPAddr.Equal(first.YourIPAddr) {
		t.Fatalf("rediscovery at the cap: %v", ack)
	}
	if _, o := dora(t, h, clk, macB); o != OutcomeUnknownCap {
		t.Fatalf("second unknown client: %q, want %q", o, OutcomeUnknownCap)
	}
}

func TestUnknownClientGetsAShortLeaseUntilTheBackendKnowsIt(t *testing.T) {
	clk := newClock()
	backend := knownBackend{}
	h, _ := newFullHandler(t, backend, clk, guardedPool("10.0.0.100", "10.0.0.119", 1))
	ack, _ := dora(t, h, clk, macA)
	if ack == nil || ack.IPAddressLeaseTime(0) != 5*time.Minute || ack.IPAddressRenewalTime(0) != 150*time.Second {
		t.Fatalf("unknown client's ACK: %v", ack)
	}
	if l, _ := getLease(t, h.Full, ack.YourIPAddr.String()); !l.Expires.Equal(clk.Now().Add(5 * time.Minute)) {
		t.Fatalf("stored lease ends %s, want in 5m", l.Expires)
	}
	backend[macA.String()] = true // registered by its discovery boot
	renew := dhcpMsg(t, macA, dhcpv4.MessageTypeRequest, ciaddr(ack.YourIPAddr.String()))
	r := h.Handle(context.Background(), renew.ToBytes(), PortDHCP, clk.Now())
	if r.Outcome != OutcomeLeaseAck || r.Reply.IPAddressLeaseTime(0) != time.Hour {
		t.Fatalf("renewal once known: %q, %v", r.Outcome, r.Reply)
	}
	// Known now, it no longer holds the one unknown place.
	if ack, o := dora(t, h, clk, macB); ack == nil {
		t.Fatalf("next unknown client: %q", o)
	}
}

func TestSpoofedGiaddrAllocatesNothing(t *testing.T) {
	closed := relayPool
	closed.AllowedRelays = nil
	clk := newClock()
	h, _ := newFullHandler(t, knownBackend{}, clk, localPool("10.0.0.100", "10.0.0.110"), closed)
	for i := range 50 {
		for _, gi := range []string{"10.1.0.1", "10.0.0.7"} { // the relayed pool, and our own subnet
			if _, o := dora(t, h, clk, randomMAC(i), giaddr(gi)); o != OutcomeRelayNotAllowed {
				t.Fatalf("giaddr %s: %q, want %q", gi, o, OutcomeRelayNotAllowed)
			}
		}
	}
	if n := leaseCount(t, h.Full); n != 0 {
		t.Fatalf("%d leases after relayed requests from no allowed relay, want 0", n)
	}
	for pool, want := range map[string]float64{"10.1.0.0/24": 50, "10.0.0.0/24": 50} {
		if got := testutil.ToFloat64(h.Full.Metrics.refused.WithLabelValues(pool, "relay_not_allowed")); got != want {
			t.Errorf("osim_dhcp_refused_total{pool=%s,reason=relay_not_allowed} = %v, want %v", pool, got, want)
		}
	}
	// A relay the pool names is served.
	open := newFull(t, clk, relayPool)
	if reply, o := respond(t, open, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover, giaddr("10.1.0.1"))); yi(reply) != "10.1.0.10" {
		t.Fatalf("allowed relay: %s (%q)", yi(reply), o)
	}
	if reply, o := respond(t, open, dhcpMsg(t, macA, dhcpv4.MessageTypeDiscover, giaddr("10.1.0.2"))); o != OutcomeRelayNotAllowed {
		t.Fatalf("another address of the relayed subnet: %s (%q)", yi(reply), o)
	}
}

func TestNewPoolsReadsTheRefusalKeys(t *testing.T) {
	base := PoolConfig{Network: "10.0.0.0/24", Start: "10.0.0.100", End: "10.0.0.199"}
	pools, err := NewPools([]PoolConfig{base})
	if err != nil {
		t.Fatal(err)
	}
	if p := pools[0]; p.UnknownLeaseTime != DefaultUnknownLeaseTime || p.MaxUnknown != 50 || len(p.AllowedRelays) != 0 {
		t.Fatalf("defaults: unknown lease %s, max unknown %d, relays %v", p.UnknownLeaseTime, p.MaxUnknown, p.AllowedRelays)
	}
	set := base
	set.AllowedRelays, set.UnknownLeaseTime, set.MaxUnknownLeases = []string{"10.9.0.1", "10.8.0.0/16"}, "10m", "20%"
	pools, err = NewPools([]PoolConfig{set})
	if err != nil {
		t.Fatal(err)
	}
	p := pools[0]
	if p.UnknownLeaseTime != 10*time.Minute || p.MaxUnknown != 20 || !p.RelayAllowed(ip("10.9.0.1")) || !p.RelayAllowed(ip("10.8.3.4")) || p.RelayAllowed(ip("10.9.0.2")) {
		t.Fatalf("set: %+v", p)
	}
	for s, want := range map[string]int{"off": 0, "7": 7, "100%": 100, "1%": 1} {
		c := base
		c.MaxUnknownLeases = s
		if pools, err := NewPools([]PoolConfig{c}); err != nil || pools[0].MaxUnknown != want {
			t.Errorf("max_unknown_leases %q: %v, %v; want %d", s, pools, err, want)
		}
	}
	cases := []struct {
		name string
		edit func(*PoolConfig)
		want string
	}{
		{"bad relay", func(c *PoolConfig) { c.AllowedRelays = []string{"10.0.0.1", "relay1"} }, `pools[0] (10.0.0.0/24): allowed_relays[1]: "relay1" is not an IPv4 address or CIDR`},
		{"short unknown lease", func(c *PoolConfig) { c.UnknownLeaseTime = "30s" }, `unknown_lease_time "30s" is not a duration of at least 1m`},
		{"zero cap", func(c *PoolConfig) { c.MaxUnknownLeases = "0" }, `max_unknown_leases "0" is not a count of at least 1, a share like 50%, or off`},
		{"share over 100", func(c *PoolConfig) { c.MaxUnknownLeases = "150%" }, `max_unknown_leases "150%"`},
		{"words", func(c *PoolConfig) { c.MaxUnknownLeases = "half" }, `max_unknown_leases "half"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			c.edit(&cfg)
			_, err := NewPools([]PoolConfig{cfg})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestUnknownLeaseTimeNeverLengthensTheLease(t *testing.T) {
	p := Pool{LeaseTime: 2 * time.Minute, UnknownLeaseTime: 5 * time.Minute}
	if p.leaseTime(false) != 2*time.Minute || p.leaseTime(true) != 2*time.Minute {
		t.Fatalf("lease times %s, %s", p.leaseTime(false), p.leaseTime(true))
	}
}
