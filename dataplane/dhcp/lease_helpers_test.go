package dhcp

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/insomniacslk/dhcp/dhcpv4"

	"osim/internal/clock"
)

// newClock is the tests' clock, moved by hand (Step).
func newClock() *clock.Fake { return clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }

// openBadger opens a real Badger database in dir; closed at cleanup
// unless the test closes it first.
func openBadger(t testing.TB, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatalf("open badger in %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if !db.IsClosed() {
			db.Close()
		}
	})
	return db
}

// openLeases loads the lease store of db.
func openLeases(t testing.TB, db *badger.DB) *BadgerLeases {
	t.Helper()
	s, err := OpenBadgerLeases(db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	macB = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x02}
	macC = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x03}
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// localPool is the subnet of serverIP (10.0.0.1); relayPool sits behind a
// relay at 10.1.0.1.
func localPool(start, end string) Pool {
	return Pool{
		Network: netip.MustParsePrefix("10.0.0.0/24"), Start: ip(start), End: ip(end),
		Router: ip("10.0.0.254"), DNS: []netip.Addr{ip("10.0.0.53"), ip("10.0.0.54")},
		Domain: "lab.example", LeaseTime: time.Hour,
	}
}

var relayPool = Pool{
	Network: netip.MustParsePrefix("10.1.0.0/24"), Start: ip("10.1.0.10"), End: ip("10.1.0.20"),
	Router: ip("10.1.0.1"), LeaseTime: 2 * time.Hour,
	AllowedRelays: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/32")},
}

// newFull builds full mode over a fresh Badger directory.
func newFull(t testing.TB, clk *clock.Fake, pools ...Pool) *Full {
	t.Helper()
	return &Full{Pools: pools, Leases: openLeases(t, openBadger(t, t.TempDir())), Clock: clk}
}

var in67 = Inbound{ServerIP: serverIP, Port: PortDHCP, URLs: urls}

// dhcpMsg builds a plain (non-PXE) client message.
func dhcpMsg(t testing.TB, mac net.HardwareAddr, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(mt)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func requested(a string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(a)))
}

func serverID(a net.IP) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptServerIdentifier(a)) }

func ciaddr(a string) dhcpv4.Modifier { return dhcpv4.WithClientIP(net.ParseIP(a)) }

func giaddr(a string) dhcpv4.Modifier { return dhcpv4.WithGatewayIP(net.ParseIP(a)) }

// respond runs one message through f and fails on store errors.
func respond(t testing.TB, f *Full, req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, Outcome) {
	t.Helper()
	reply, o, err := f.Respond(context.Background(), req, in67, Peer{})
	if err != nil && o != OutcomePoolExhausted {
		t.Fatalf("%s from %s: %v", req.MessageType(), req.ClientHWAddr, err)
	}
	return reply, o
}

// putLease stores l directly.
func putLease(t testing.TB, f *Full, l Lease) {
	t.Helper()
	if err := f.Leases.Update(context.Background(), func(tx LeaseTx) error { return tx.Put(l) }); err != nil {
		t.Fatal(err)
	}
}

func getLease(t testing.TB, f *Full, a string) (Lease, bool) {
	t.Helper()
	var (
		l  Lease
		ok bool
	)
	if err := f.Leases.View(func(tx LeaseTx) (err error) { l, ok, err = tx.Get(ip(a)); return err }); err != nil {
		t.Fatal(err)
	}
	return l, ok
}

func yi(r *dhcpv4.DHCPv4) string {
	if r == nil {
		return "<silence>"
	}
	return r.YourIPAddr.String()
}
