package dhcp

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// BenchmarkFullDORA is one new client's DISCOVER and REQUEST through the
// handler (decode, lease store, encode) on a real Badger store, from
// parallel workers as the server runs them; no sockets.
func BenchmarkFullDORA(b *testing.B) {
	db := openBadger(b, b.TempDir())
	pool := Pool{
		Network: netip.MustParsePrefix("10.96.0.0/12"), Start: ip("10.96.1.0"), End: ip("10.111.255.254"),
		Router: ip("10.96.0.1"), LeaseTime: time.Hour,
	}
	h := &Handler{ServerIP: net.IPv4(10, 96, 0, 1), Mode: ModeFull, Metrics: NewMetrics(nil),
		Full: &Full{Pools: []Pool{pool}, Leases: openLeases(b, db)}}
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			n := next.Add(1)
			mac := net.HardwareAddr{0x02, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
			d := dhcpMsg(b, mac, dhcpv4.MessageTypeDiscover, giaddr("10.96.0.2"))
			r := h.Handle(ctx, d.ToBytes(), PortDHCP, time.Now())
			if r.Outcome != OutcomeLeaseOffer {
				b.Fatalf("discover: %q", r.Outcome)
			}
			q := dhcpMsg(b, mac, dhcpv4.MessageTypeRequest, giaddr("10.96.0.2"),
				serverID(net.IPv4(10, 96, 0, 1)), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(r.Reply.YourIPAddr)))
			q.TransactionID = d.TransactionID
			if r := h.Handle(ctx, q.ToBytes(), PortDHCP, time.Now()); r.Outcome != OutcomeLeaseAck {
				b.Fatalf("request: %q", r.Outcome)
			}
		}
	})
}
