package dhcp

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// portGuard admits nothing on the ports it blocks and records what it saw.
type portGuard struct {
	mu    sync.Mutex
	block map[int]bool
	seen  []int
}

func (g *portGuard) Admit(raw []byte, port int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, port)
	return !g.block[port]
}

func TestGuardDropsBeforeTheHandler(t *testing.T) {
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	h, _ := newTestHandler(fakeBackend{d: bootImage})
	h.Clock = nil
	h.ServerIP = net.IPv4(127, 0, 0, 1).To4()
	g := &portGuard{block: map[int]bool{PortDHCP: true}}
	srv, err := NewServer(h, ServerConfig{DHCPAddr: "127.0.0.1:0", BootAddr: "127.0.0.1:0",
		Broadcast: client.LocalAddr().(*net.UDPAddr).AddrPort(), Workers: 1, Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx)

	disc := pxeRequest(t, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64)
	if r := exchange(t, client, srv.DHCPAddr(), disc.ToBytes(), 300*time.Millisecond); r != nil {
		t.Fatalf("guard refused port 67, yet an answer came: %s", r.Summary())
	}
	req := pxeRequest(t, dhcpv4.MessageTypeRequest, pxeX64, ArchEFIx64)
	if r := exchange(t, client, srv.BootAddr(), req.ToBytes(), 5*time.Second); r == nil || r.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("guard admits port 4011, want an ACK, got %v", r)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.seen) != 2 || g.seen[0] != PortDHCP || g.seen[1] != PortBootServer {
		t.Errorf("guard saw ports %v, want [67 4011]", g.seen)
	}
}
