//go:build linux

// Package gso sends a run of equal-size UDP datagrams in one sendmsg with
// UDP generic segmentation offload (UDP_SEGMENT, Linux 4.18+): the kernel
// splits one large send into datagrams of the segment size, so a whole TFTP
// window costs one syscall and one pass down the stack. Buffers are passed
// as an iovec, so header and payload need not be contiguous (no copy).
package gso

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Limits of one GSO send on Linux: at most 64 segments (UDP_MAX_SEGMENTS on
// older kernels) and one IPv4 datagram's worth of payload.
const (
	MaxSegments = 64
	MaxBytes    = 65507
)

// ErrUnsupported means the kernel or socket refused UDP_SEGMENT.
var ErrUnsupported = errors.New("gso: UDP_SEGMENT not supported")

// Sender sends to one peer over one socket. It is not safe for concurrent
// use; one per transfer. After New, Send allocates nothing.
type Sender struct {
	rc   syscall.RawConn
	msg  unix.Msghdr
	iov  []unix.Iovec
	sa   unix.RawSockaddrInet4
	oob  []byte
	fn   func(fd uintptr) bool
	err  error
	sent int
}

// New prepares a sender from conn to the IPv4 address to, with room for
// maxBuffers iovec entries per send.
func New(conn *net.UDPConn, to netip.AddrPort, maxBuffers int) (*Sender, error) {
	if !to.Addr().Unmap().Is4() {
		return nil, fmt.Errorf("gso: %s is not IPv4", to)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("gso: %w", err)
	}
	s := &Sender{rc: rc, iov: make([]unix.Iovec, maxBuffers), oob: make([]byte, unix.CmsgSpace(2))}
	s.sa.Family = unix.AF_INET
	s.sa.Addr = to.Addr().Unmap().As4()
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&s.sa.Port))[:], to.Port())
	h := (*unix.Cmsghdr)(unsafe.Pointer(&s.oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	s.msg.Name = (*byte)(unsafe.Pointer(&s.sa))
	s.msg.Namelen = unix.SizeofSockaddrInet4
	s.fn = s.write
	return s, nil
}

// Send sends bufs, concatenated, as datagrams of segSize bytes each (the
// last may be shorter). segSize 0 sends them as one plain datagram.
// The caller keeps within MaxSegments and MaxBytes.
func (s *Sender) Send(bufs [][]byte, segSize int) (int, error) {
	if len(bufs) > len(s.iov) {
		return 0, fmt.Errorf("gso: %d buffers, room for %d", len(bufs), len(s.iov))
	}
	n := 0
	for i, b := range bufs {
		if len(b) > 0 {
			s.iov[i].Base = &b[0]
		} else {
			s.iov[i].Base = nil
		}
		s.iov[i].SetLen(len(b))
		n += len(b)
	}
	s.msg.Iov = &s.iov[0]
	s.msg.SetIovlen(len(bufs))
	if segSize > 0 && n > segSize {
		binary.NativeEndian.PutUint16(s.oob[unix.CmsgLen(0):], uint16(segSize))
		s.msg.Control = &s.oob[0]
		s.msg.SetControllen(len(s.oob))
	} else {
		s.msg.Control = nil
		s.msg.SetControllen(0)
	}
	s.err, s.sent = nil, 0
	if err := s.rc.Write(s.fn); err != nil {
		return 0, err
	}
	if s.err != nil {
		if segSize > 0 && (errors.Is(s.err, unix.EIO) || errors.Is(s.err, unix.EINVAL) || errors.Is(s.err, unix.ENOPROTOOPT)) {
			return 0, fmt.Errorf("%w: %v", ErrUnsupported, s.err)
		}
		return 0, fmt.Errorf("gso: sendmsg: %w", s.err)
	}
	return s.sent, nil
}

// write runs inside RawConn.Write; false means "not writable yet, wait".
func (s *Sender) write(fd uintptr) bool {
	r, _, errno := unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&s.msg)), 0)
	if errno == unix.EAGAIN {
		return false
	}
	if errno != 0 {
		s.err = errno
		return true
	}
	s.sent = int(r)
	return true
}
