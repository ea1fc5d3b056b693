package tftp

import (
	"context"
	"net"
	"testing"
)

// serveLoopback runs srv on an ephemeral 127.0.0.1 port until the test ends
// and returns the listening address and a client socket.
func serveLoopback(t *testing.T, srv *Server) (*net.UDPAddr, *net.UDPConn) {
	t.Helper()
	ln := listenLoopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go srv.Serve(ctx, ln)
	return ln.LocalAddr().(*net.UDPAddr), listenLoopback(t)
}

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
