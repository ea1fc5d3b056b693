package tftp

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestTransferSocketsOpenThroughListenUDPHook(t *testing.T) {
	var opened atomic.Int32
	res := &countingResolver{files: map[string][]byte{"nbp": []byte("tiny")}}
	srv, err := NewServer(Config{ListenUDP: func(laddr *net.UDPAddr) (*net.UDPConn, error) {
		opened.Add(1)
		return net.ListenUDP("udp4", laddr)
	}}, res)
	if err != nil {
		t.Fatal(err)
	}
	srvAddr, cl := serveLoopback(t, srv)
	cl.WriteToUDP(rrq(opRRQ, "nbp", "octet"), srvAddr)
	buf := make([]byte, 600)
	cl.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := cl.ReadFromUDP(buf)
	if err != nil || binary.BigEndian.Uint16(buf) != opDATA || string(buf[4:n]) != "tiny" {
		t.Fatalf("got % x, %v", buf[:n], err)
	}
	cl.WriteToUDP([]byte{0, 4, 0, 1}, from)
	if got := opened.Load(); got != 1 {
		t.Fatalf("hook opened %d sockets, want 1", got)
	}
}
