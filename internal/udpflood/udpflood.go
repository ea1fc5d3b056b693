// Package udpflood sends datagrams as many forged sources would: one
// non-blocking socket per source, each bound to its own loopback address
// (127.<net>.x.y), read only at the end. The TFTP flood test and
// osim-tftpbench's flood share it. Loopback only: the addresses are in
// 127.0.0.0/8.
package udpflood

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Sources are the sockets of one flood.
type Sources struct{ fds []int }

// Open binds n sockets to 127.<net>.0.1, 127.<net>.0.2, …
func Open(n int, net byte) (*Sources, error) {
	s := &Sources{}
	for i := range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("udpflood: socket %d: %w", i, err)
		}
		s.fds = append(s.fds, fd)
		k := i + 1
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, net, byte(k >> 8), byte(k)}}); err != nil {
			s.Close()
			return nil, fmt.Errorf("udpflood: bind 127.%d.%d.%d: %w", net, byte(k>>8), byte(k), err)
		}
	}
	return s, nil
}

// Send sends every packet of pkts from every source to to, spread in
// 10 ms steps over d (0: as fast as it goes). A full socket buffer drops
// the datagram, as a flood would.
func (s *Sources) Send(to netip.AddrPort, d time.Duration, pkts ...[]byte) error {
	sa := &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()}
	steps := max(1, int(d/(10*time.Millisecond)))
	start := time.Now()
	for i, fd := range s.fds {
		if d > 0 {
			if due := start.Add(time.Duration(i*steps/len(s.fds)) * d / time.Duration(steps)); time.Until(due) > 0 {
				time.Sleep(time.Until(due))
			}
		}
		for _, p := range pkts {
			if err := unix.Sendto(fd, p, 0, sa); err != nil && !errors.Is(err, unix.EAGAIN) {
				return fmt.Errorf("udpflood: send: %w", err)
			}
		}
	}
	return nil
}

// Replies drains every source: datagrams by their first two bytes (a
// TFTP opcode) and payload bytes in all.
func (s *Sources) Replies() (map[uint16]int, int) {
	byOp := map[uint16]int{}
	total := 0
	buf := make([]byte, 65536)
	for _, fd := range s.fds {
		for {
			n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if err != nil || n < 2 {
				break
			}
			byOp[uint16(buf[0])<<8|uint16(buf[1])]++
			total += n
		}
	}
	return byOp, total
}

// Close closes every source.
func (s *Sources) Close() {
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	s.fds = nil
}
