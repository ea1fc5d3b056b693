package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"osim/internal/pxeclient"
	"osim/internal/testlab"
)

func TestSocketsOpenedInsideLiveInTheNamespace(t *testing.T) {
	testlab.RequireRoot(t, "to create a network namespace")
	ctx := context.Background()
	ns, err := testlab.Create(ctx, fmt.Sprintf("osim-labtest-%d", os.Getpid()))
	if err != nil {
		testlab.Unavailable(t, "cannot create a namespace here: %v", err)
	}
	defer ns.Delete()
	in, err := pxeclient.OpenNetns(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()

	// Two sockets in the namespace reach each other over its loopback...
	a, err := ListenLoopback(in)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ListenLoopback(in)
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
