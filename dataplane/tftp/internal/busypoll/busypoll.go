//go:build linux

// Package busypoll reads a UDP socket without parking the goroutine: one
// non-blocking recvfrom per try. A lockstep transfer to a close client gets
// its ACK back within microseconds; polling for that long avoids a trip
// through the scheduler and the netpoller, which costs more than the wait.
package busypoll

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Poller tries reads on one socket. Not safe for concurrent use. After New,
// TryRead allocates nothing.
type Poller struct {
	rc    syscall.RawConn
	buf   []byte
	sa    unix.RawSockaddrInet4
	salen uint32
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

// New prepares a poller reading into buf.
func New(conn *net.UDPConn, buf []byte) (*Poller, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	p := &Poller{rc: rc, buf: buf}
	p.fn = p.read
	return p, nil
}

// TryRead returns a datagram if one is queued; ok is false if none is.
func (p *Poller) TryRead() (n int, from netip.AddrPort, ok bool, err error) {
	p.n, p.errno = 0, 0
	if err := p.rc.Read(p.fn); err != nil {
		return 0, netip.AddrPort{}, false, err
	}
	switch p.errno {
	case 0:
	case unix.EAGAIN, unix.EINTR:
		return 0, netip.AddrPort{}, false, nil
	default:
		return 0, netip.AddrPort{}, false, p.errno
	}
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.sa.Port))[:])
	return p.n, netip.AddrPortFrom(netip.AddrFrom4(p.sa.Addr), port), true, nil
}

// read runs inside RawConn.Read and always returns true: never wait.
func (p *Poller) read(fd uintptr) bool {
	p.salen = unix.SizeofSockaddrInet4
	r, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p.buf[0])), uintptr(len(p.buf)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&p.sa)), uintptr(unsafe.Pointer(&p.salen)))
	p.n, p.errno = int(r), errno
	return true
}
