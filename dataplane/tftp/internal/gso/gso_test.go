//go:build linux

package gso

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestSendSplitsIntoSegmentsFromScatteredBuffers(t *testing.T) {
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
	s, err := New(tx, rx.LocalAddr().(*net.UDPAddr).AddrPort(), 8)
	if err != nil {
		t.Fatal(err)
	}
	// Three datagrams of header+payload, the last one short, as a window's end.
	bufs := [][]byte{[]byte("h1"), []byte("aaaa"), []byte("h2"), []byte("bbbb"), []byte("h3"), []byte("c")}
	n, err := s.Send(bufs, 6)
	if err != nil {
		t.Skipf("kernel refuses UDP GSO here: %v", err)
	}
	if n != 15 {
		t.Fatalf("sent %d bytes, want 15", n)
	}
	rx.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 100)
	for _, want := range []string{"h1aaaa", "h2bbbb", "h3c"} {
		m, _, err := rx.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if !bytes.Equal(buf[:m], []byte(want)) {
			t.Fatalf("datagram %q, want %q", buf[:m], want)
		}
	}
	// segSize 0 and a single buffer: one plain datagram, empty payload allowed.
	if _, err := s.Send([][]byte{[]byte("h4"), nil}, 0); err != nil {
		t.Fatal(err)
	}
	m, _, err := rx.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:m]) != "h4" {
		t.Fatalf("plain datagram %q %v", buf[:m], err)
	}
}

func TestNewRefusesIPv6Peers(t *testing.T) {
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if _, err := New(tx, netip.MustParseAddrPort("[::1]:69"), 2); err == nil {
		t.Fatal("accepted an IPv6 peer")
	}
}
