package pxeclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"osim/internal/udpbuf"
)

// dhcpConn is what one stage's DHCP needs of its socket: a *net.UDPConn
// bound to port 68, or one target's view of a SharedDHCP.
type dhcpConn interface {
	WriteToUDP(b []byte, addr *net.UDPAddr) (int, error)
	ReadFromUDP(b []byte) (int, *net.UDPAddr, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// SharedDHCP is one 0.0.0.0:68 socket on one interface that many simulated
// targets share, so thousands of them need one veth instead of one each.
// Each target sends with its own MAC as chaddr and the broadcast flag set
// (as the recorded firmware does); a reader hands every reply to the
// target whose chaddr it carries. It counts what went out and came in by
// DHCP message type, for comparing with the server's own counters.
//
// For TFTP and HTTP each target then needs its own source address on that
// interface: in full mode the leased one (Config.BindLease), in proxy mode
// the one the site gave it (Config.ClientIP). A route such as
// "local 10.78.16.0/20 dev lo" in the clients' namespace makes every
// address of the pool local there at once, without 2,000 "ip addr add".
type SharedDHCP struct {
	conn *net.UDPConn

	mu   sync.Mutex
	subs map[[6]byte]*sharedConn

	sent, recv [256]atomic.Int64 // by option 53 message type
	unmatched  atomic.Int64      // replies for no attached chaddr
	overflow   atomic.Int64      // replies dropped: the target's queue was full
	done       chan struct{}
}

// OpenSharedDHCP binds 0.0.0.0:68 on ifc (inside the namespace do runs in;
// nil: here) with a large receive buffer and starts its reader.
func OpenSharedDHCP(ifc string, do func(func() error) error) (*SharedDHCP, error) {
	if do == nil {
		do = func(f func() error) error { return f() }
	}
	var conn *net.UDPConn
	err := do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = errors.Join(
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1),
					unix.BindToDevice(int(fd), ifc))
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
			})
			return errors.Join(err, serr)
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
		if err != nil {
			return err
		}
		conn = pc.(*net.UDPConn)
		// A burst of thousands of offers must not overflow the default
		// buffer (best effort: past rmem_max needs CAP_NET_ADMIN).
		udpbuf.RaiseReadBuffer(conn, 32<<20)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pxeclient: shared DHCP socket on %s: %w", ifc, err)
	}
	s := &SharedDHCP{conn: conn, subs: map[[6]byte]*sharedConn{}, done: make(chan struct{})}
	go s.read()
	return s, nil
}

// Close ends the reader and the socket.
func (s *SharedDHCP) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// Sent is how many packets of DHCP message type t went out (53: 1
// DISCOVER, 3 REQUEST, …), retries included.
func (s *SharedDHCP) Sent(t uint8) int64 { return s.sent[t].Load() }

// Received is how many replies of message type t came in, for any target.
func (s *SharedDHCP) Received(t uint8) int64 { return s.recv[t].Load() }

// Unmatched is how many replies named a chaddr no target was waiting on
// (late replies after a target moved on count here too).
func (s *SharedDHCP) Unmatched() int64 { return s.unmatched.Load() }

// Overflow is how many replies were dropped because their target's queue
// was full.
func (s *SharedDHCP) Overflow() int64 { return s.overflow.Load() }

// msgType finds option 53 in a BOOTP packet; 0 when absent.
func msgType(p []byte) uint8 {
	if len(p) < 240 {
		return 0
	}
	for i := 240; i < len(p); {
		switch code := p[i]; code {
		case 0:
			i++
		case 255:
			return 0
		default:
			if i+1 >= len(p) {
				return 0
			}
			l := int(p[i+1])
			if code == 53 && l == 1 && i+2 < len(p) {
				return p[i+2]
			}
			i += 2 + l
		}
	}
	return 0
}

type packet struct {
	b    []byte
	from *net.UDPAddr
}

func (s *SharedDHCP) read() {
	defer close(s.done)
	buf := make([]byte, 2048)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.mu.Lock()
				for _, c := range s.subs {
					c.close()
				}
				s.mu.Unlock()
				return
			}
			continue
		}
		if n < 240 || buf[0] != 2 { // BOOTREPLY only
			continue
		}
		s.recv[msgType(buf[:n])].Add(1)
		var mac [6]byte
		copy(mac[:], buf[28:34])
		s.mu.Lock()
		c := s.subs[mac]
		s.mu.Unlock()
		if c == nil {
			s.unmatched.Add(1)
			continue
		}
		select {
		case c.in <- packet{b: append([]byte(nil), buf[:n]...), from: from}:
		default:
			s.overflow.Add(1)
		}
	}
}

// attach gives one target (by chaddr) its view of the socket.
func (s *SharedDHCP) attach(mac net.HardwareAddr) (dhcpConn, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("shared DHCP needs a 6-byte MAC, got %q", mac)
	}
	var k [6]byte
	copy(k[:], mac)
	c := &sharedConn{s: s, key: k, in: make(chan packet, 64), kick: make(chan struct{}, 1), closed: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.subs[k]; dup {
		return nil, fmt.Errorf("shared DHCP: %s already attached", mac)
	}
	s.subs[k] = c
	return c, nil
}

type sharedConn struct {
	s    *SharedDHCP
	key  [6]byte
	in   chan packet
	kick chan struct{}

	mu       sync.Mutex
	deadline time.Time

	closeOnce sync.Once
	closed    chan struct{}
}

func (c *sharedConn) close() { c.closeOnce.Do(func() { close(c.closed) }) }

func (c *sharedConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	n, err := c.s.conn.WriteToUDP(b, addr)
	if err == nil {
		c.s.sent[msgType(b)].Add(1)
	}
	return n, err
}

func (c *sharedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

func (c *sharedConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	for {
		c.mu.Lock()
		d := c.deadline
		c.mu.Unlock()
		var timer <-chan time.Time
		var t *time.Timer
		if !d.IsZero() {
			wait := time.Until(d)
			if wait <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			t = time.NewTimer(wait)
			timer = t.C
		}
		stop := func() {
			if t != nil {
				t.Stop()
			}
		}
		select {
		case p := <-c.in:
			stop()
			return copy(b, p.b), p.from, nil
		case <-timer:
			return 0, nil, os.ErrDeadlineExceeded
		case <-c.kick: // deadline moved: look again
			stop()
		case <-c.closed:
			stop()
			return 0, nil, net.ErrClosed
		}
	}
}

// Close detaches the target; its socket stays open for the others.
func (c *sharedConn) Close() error {
	c.s.mu.Lock()
	if c.s.subs[c.key] == c {
		delete(c.s.subs, c.key)
	}
	c.s.mu.Unlock()
	c.close()
	return nil
}
