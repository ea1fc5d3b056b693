package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

func TestOpenerSocketsLiveInTheNamespace(t *testing.T) {
	// CI must run this test: there a missing privilege is a failure, not a skip.
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("needs root to create a network namespace")
	}
	ctx := context.Background()
	ns, err := Create(ctx, fmt.Sprintf("%stest-%d", Prefix, os.Getpid()))
	if err != nil {
		skip("cannot create a namespace here: %v", err)
	}
	defer ns.Delete()
	op, err := ns.Opener()
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()

	// Two sockets in the namespace reach each other over its loopback...
	a, err := op.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := op.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.WriteToUDPAddrPort([]byte("hi"), b.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 8)
	if n, _, err := b.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("inside the namespace: got %q, %v", buf[:n], err)
	}

	// ...but not a socket of the host's loopback.
	host, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	a.WriteToUDPAddrPort([]byte("hi"), host.LocalAddr().(*net.UDPAddr).AddrPort())
	host.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, _, err := host.ReadFromUDPAddrPort(buf); err == nil {
		t.Error("a packet from the namespace reached the host's loopback")
	}
}
