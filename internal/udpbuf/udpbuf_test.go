package udpbuf

import (
	"net"
	"os"
	"testing"
)

func TestRaiseReadBufferGrowsTheSocketBuffer(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := RaiseReadBuffer(c, 4<<20)
	if os.Geteuid() == 0 && got < 4<<20 {
		t.Fatalf("as root the buffer is %d bytes, want at least 4 MiB", got)
	}
	if got <= 0 {
		t.Fatalf("buffer size unknown after raising: %d", got)
	}
}
