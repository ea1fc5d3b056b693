// Package udpbuf sizes UDP sockets' receive buffers for bursts: when a
// rack powers on, thousands of requests arrive within a second, and the
// kernel default (~208 KiB) drops them before the service reads any.
package udpbuf

import (
	"net"

	"golang.org/x/sys/unix"
)

// RaiseReadBuffer sets conn's receive buffer to n bytes: SO_RCVBUFFORCE
// (root, or CAP_NET_ADMIN: past net.core.rmem_max), else SO_RCVBUF (capped
// by rmem_max). It returns the size the kernel reports afterwards (the
// kernel doubles the value for its bookkeeping), 0 if unknown.
func RaiseReadBuffer(conn *net.UDPConn, n int) int {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0
	}
	var serr error
	_ = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	})
	if serr != nil {
		_ = conn.SetReadBuffer(n)
	}
	got := 0
	_ = rc.Control(func(fd uintptr) {
		got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	return got
}
