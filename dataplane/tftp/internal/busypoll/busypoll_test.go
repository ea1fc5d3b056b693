//go:build linux

package busypoll

import (
	"net"
	"testing"
	"time"
)

func TestTryReadReturnsQueuedDatagramOrNothing(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	buf := make([]byte, 64)
	p, err := New(rx, buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := p.TryRead(); ok || err != nil {
		t.Fatalf("empty socket: ok=%v err=%v, want nothing", ok, err)
	}
	tx.WriteToUDP([]byte("ack"), rx.LocalAddr().(*net.UDPAddr))
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		n, from, ok, err := p.TryRead()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		if string(buf[:n]) != "ack" || from != tx.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Fatalf("read %q from %v, want \"ack\" from %v", buf[:n], from, tx.LocalAddr())
		}
		return
	}
	t.Fatal("queued datagram never read")
}
