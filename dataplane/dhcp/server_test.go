package dhcp

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"osim/internal/testlab"
)

// loopbackProxy runs a Server on 127.0.0.1 high ports with broadcasts sent
// to a loopback client socket, and returns that client. setup may change
// the handler before it serves.
func loopbackProxy(t *testing.T, b Backend, setup ...func(*Handler)) (*Server, *Handler, *net.UDPConn) {
	t.Helper()
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	h, _ := newTestHandler(b)
	h.Clock = nil
	h.ServerIP = net.IPv4(127, 0, 0, 1).To4()
	for _, f := range setup {
		f(h)
	}
	srv, err := NewServer(h, ServerConfig{
		DHCPAddr:  "127.0.0.1:0",
		BootAddr:  "127.0.0.1:0",
		Broadcast: client.LocalAddr().(*net.UDPAddr).AddrPort(),
		Workers:   2,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return srv, h, client
}

// exchange sends req to dst and waits for one reply (nil on timeout).
func exchange(t *testing.T, c *net.UDPConn, dst netip.AddrPort, raw []byte, wait time.Duration) *dhcpv4.DHCPv4 {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(raw, dst); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1500)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil
	}
	reply, err := dhcpv4.FromBytes(buf[:n])
	if err != nil {
		t.Fatalf("reply does not decode: %v", err)
	}
	return reply
}

func TestServerAnswersDiscoverThenBootServerRequestOverUDP(t *testing.T) {
	srv, _, client := loopbackProxy(t, fakeBackend{d: bootImage})
	disc := pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64)
	offer := exchange(t, client, srv.DHCPAddr(), disc.ToBytes(), 5*time.Second)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer || offer.TransactionID != disc.TransactionID {
		t.Fatalf("offer: %v", offer)
	}
	if offer.BootFileName != "snponly.efi" || !offer.YourIPAddr.Equal(net.IPv4zero) {
		t.Fatalf("offer: %s", offer.Summary())
	}
	// The client now holds an address from the site server and asks the
	// boot server on 4011, as PXE firmware does.
	req, err := dhcpv4.NewRequestFromOffer(offer,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(pxeX64)),
		dhcpv4.WithOption(dhcpv4.OptClientArch(7)),
		dhcpv4.WithClientIP(net.IPv4(127, 0, 0, 1)))
	if err != nil {
		t.Fatal(err)
	}
	ack := exchange(t, client, srv.BootAddr(), req.ToBytes(), 5*time.Second)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "snponly.efi" {
		t.Fatalf("ack: %v", ack)
	}
}

func TestServerDropsBadDatagramsAndKeepsServing(t *testing.T) {
	srv, h, client := loopbackProxy(t, fakeBackend{d: bootImage})
	good := pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64).ToBytes()
	noEnd := append([]byte(nil), good[:optionsStart]...)
	noEnd = append(noEnd, 60, 9)
	noEnd = append(noEnd, "PXEClient"...) // no end option: IsPXE yes, decoder no
	bad := map[Outcome][]byte{
		OutcomeTruncated: good[:100],
		OutcomeOversized: make([]byte, 4000),
		OutcomeMalformed: noEnd,
		OutcomeNotPXE:    pxeRequest(t, dhcpv4.MessageTypeDiscover, "MSFT 5.0", ArchBIOS).ToBytes(),
	}
	for o, raw := range bad {
		if r := exchange(t, client, srv.DHCPAddr(), raw, 200*time.Millisecond); r != nil {
			t.Fatalf("%s: answered %s", o, r.Summary())
		}
	}
	if r := exchange(t, client, srv.DHCPAddr(), good, 5*time.Second); r == nil {
		t.Fatal("no answer after bad datagrams")
	}
	for o := range bad {
		if got := testutil.ToFloat64(h.Metrics.decisions.WithLabelValues(string(o))); got != 1 {
			t.Errorf("decisions{%s} = %v, want 1", o, got)
		}
	}
}

func TestReplyAddressFollowsRFC2131(t *testing.T) {
	s := &Server{cfg: ServerConfig{Broadcast: netip.MustParseAddrPort("255.255.255.255:68"), RelayPort: 67}}
	src := netip.MustParseAddrPort("10.0.0.50:4011")
	base := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		return pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64, mods...)
	}
	cases := []struct {
		name string
		req  *dhcpv4.DHCPv4
		port int
		want string
	}{
		{"no address: broadcast", base(), PortDHCP, "255.255.255.255:68"},
		{"relayed: to the relay", base(dhcpv4.WithRelay(net.IPv4(10, 1, 0, 1))), PortDHCP, "10.1.0.1:67"},
		{"ciaddr set: unicast", base(dhcpv4.WithClientIP(net.IPv4(10, 0, 0, 9))), PortDHCP, "10.0.0.9:68"},
		{"boot server: back to the source", base(dhcpv4.WithRelay(net.IPv4(10, 1, 0, 1))), PortBootServer, "10.0.0.50:4011"},
	}
	for _, c := range cases {
		if got := s.replyAddr(c.req, c.port, src).String(); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// TestServerSocketsHoldARackPoweringOn: both sockets get a receive buffer
// of ReadBuffer (4 MiB by default, room for thousands of DISCOVERs), not
// the kernel default, which drops a rack's burst before a worker reads it.
func TestServerSocketsHoldARackPoweringOn(t *testing.T) {
	testlab.RequireRoot(t, "SO_RCVBUFFORCE past net.core.rmem_max")
	h, _ := newTestHandler(fakeBackend{d: bootImage})
	srv, err := NewServer(h, ServerConfig{DHCPAddr: "127.0.0.1:0", BootAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, c := range []*net.UDPConn{srv.dhcp, srv.pxe} {
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		rc.Control(func(fd uintptr) { got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
		if got < 4<<20 {
			t.Errorf("%s: receive buffer %d bytes, want at least 4 MiB", c.LocalAddr(), got)
		}
	}
}
