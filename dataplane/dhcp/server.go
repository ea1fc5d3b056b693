package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"osim/internal/udpbuf"
)

// ServerConfig says where the proxy listens and where it answers.
type ServerConfig struct {
	DHCPAddr string // listen address for DISCOVERs; default "0.0.0.0:67"
	BootAddr string // listen address for the boot server exchange; default "0.0.0.0:4011"
	// Broadcast is where port-67 answers go when the client has no address
	// yet; default 255.255.255.255:68. Tests point it at a loopback client.
	Broadcast netip.AddrPort
	// RelayPort is the port answers to a relay (giaddr) go to; default 67.
	RelayPort uint16
	Workers   int // goroutines reading each socket; default 8
	// ReadBuffer is each socket's receive buffer in bytes; default 4 MiB.
	// A rack powering on sends thousands of DISCOVERs within a second,
	// and firmware retries in step (4, 8, 16, 32 s): the kernel default
	// (~208 KiB, ~500 requests) drops the rest before a worker reads them.
	ReadBuffer int
	// Guard, when set, sees every datagram before the handler; false
	// drops it unanswered (and uncounted by the DHCP metrics: the guard
	// counts its own). nil: everything goes to the handler.
	Guard Guard
}

// Guard judges a raw datagram received on port (PortDHCP or
// PortBootServer) before any decoding: xdp.Program implements it, as the
// userspace stand-in for its XDP program.
type Guard interface {
	Admit(raw []byte, port int) bool
}

// Server is the UDP loop around Handler: read, Handle, write. Every
// datagram, malformed or not, ends in exactly one outcome of the metrics.
type Server struct {
	h         *Handler
	cfg       ServerConfig
	dhcp, pxe *net.UDPConn
	// The same sockets with IP_PKTINFO on: each request's interface is
	// known, and the answer leaves through it.
	dhcpPC, pxePC *ipv4.PacketConn
}

// NewServer binds both sockets (SO_BROADCAST set, so offers can be broadcast).
func NewServer(h *Handler, cfg ServerConfig) (*Server, error) {
	if cfg.DHCPAddr == "" {
		cfg.DHCPAddr = fmt.Sprintf("0.0.0.0:%d", PortDHCP)
	}
	if cfg.BootAddr == "" {
		cfg.BootAddr = fmt.Sprintf("0.0.0.0:%d", PortBootServer)
	}
	if !cfg.Broadcast.IsValid() {
		cfg.Broadcast = netip.MustParseAddrPort("255.255.255.255:68")
	}
	if cfg.RelayPort == 0 {
		cfg.RelayPort = PortDHCP
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 4 << 20
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
		})
		return errors.Join(err, serr)
	}}
	s := &Server{h: h, cfg: cfg}
	for _, l := range []struct {
		addr string
		conn **net.UDPConn
		pc   **ipv4.PacketConn
	}{{cfg.DHCPAddr, &s.dhcp, &s.dhcpPC}, {cfg.BootAddr, &s.pxe, &s.pxePC}} {
		pc, err := lc.ListenPacket(context.Background(), "udp4", l.addr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("dhcp: listen on %s: %w", l.addr, err)
		}
		*l.conn = pc.(*net.UDPConn)
		udpbuf.RaiseReadBuffer(*l.conn, cfg.ReadBuffer)
		*l.pc = ipv4.NewPacketConn(*l.conn)
		if err := (*l.pc).SetControlMessage(ipv4.FlagInterface, true); err != nil {
			s.Close()
			return nil, fmt.Errorf("dhcp: enable IP_PKTINFO on %s: %w", l.addr, err)
		}
	}
	return s, nil
}

// DHCPAddr and BootAddr are the bound addresses (useful with port 0).
func (s *Server) DHCPAddr() netip.AddrPort { return s.dhcp.LocalAddr().(*net.UDPAddr).AddrPort() }

// BootAddr is the bound address of the port-4011 socket.
func (s *Server) BootAddr() netip.AddrPort { return s.pxe.LocalAddr().(*net.UDPAddr).AddrPort() }

// Close closes both sockets; Serve returns.
func (s *Server) Close() error {
	var errs []error
	for _, c := range []*net.UDPConn{s.dhcp, s.pxe} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Serve answers until ctx is done, then closes the sockets.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	var wg sync.WaitGroup
	for _, l := range []struct {
		pc   *ipv4.PacketConn
		port int
	}{{s.dhcpPC, PortDHCP}, {s.pxePC, PortBootServer}} {
		for range s.cfg.Workers {
			wg.Go(func() { s.loop(ctx, l.pc, l.port) })
		}
	}
	wg.Wait()
	return ctx.Err()
}

func (s *Server) loop(ctx context.Context, pc *ipv4.PacketConn, port int) {
	buf := make([]byte, MaxPacket+1) // one byte more than accepted: larger datagrams show as oversized
	for {
		n, cm, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.h.log().Warn("read", "port", port, "err", err)
				continue
			}
			return
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		src := ua.AddrPort()
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if s.cfg.Guard != nil && !s.cfg.Guard.Admit(buf[:n], port) {
			continue
		}
		r := s.h.Handle(ctx, buf[:n], port, time.Now())
		if r.Bytes == nil {
			continue
		}
		dst := s.replyAddr(r.Request, port, src)
		if nakBroadcast(r.Request, r.Reply) {
			dst = s.cfg.Broadcast
		}
		// Answer out of the interface the request came in on: a broadcast
		// to a client without an address must not depend on the routing
		// table (a provisioning interface often has no route at all).
		var out *ipv4.ControlMessage
		if cm != nil && cm.IfIndex > 0 {
			out = &ipv4.ControlMessage{IfIndex: cm.IfIndex}
		}
		if _, err := pc.WriteTo(r.Bytes, out, net.UDPAddrFromAddrPort(dst)); err != nil {
			s.h.log().Warn("send", "to", dst.String(), "xid", r.Request.TransactionID.String(), "err", err)
		}
	}
}

// replyAddr picks where an answer goes.
func (s *Server) replyAddr(req *dhcpv4.DHCPv4, port int, src netip.AddrPort) netip.AddrPort {
	if port == PortBootServer {
		return src // PXE 2.1 §2.2 step 6: the ACK goes back to the client's address and port
	}
	if a := addr4(req.GatewayIPAddr); a.IsValid() && !a.IsUnspecified() {
		return netip.AddrPortFrom(a, s.cfg.RelayPort) // RFC 2131 §4.1: via the relay
	}
	if a := addr4(req.ClientIPAddr); a.IsValid() && !a.IsUnspecified() {
		return netip.AddrPortFrom(a, 68) // RFC 2131 §4.1: ciaddr set, unicast
	}
	return s.cfg.Broadcast // no address yet (yiaddr is 0 in proxy mode): broadcast
}
