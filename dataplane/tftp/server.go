// Package tftp is the boot server's TFTP engine: RFC 1350 with option
// negotiation (RFC 2347), blksize (RFC 2348), timeout and tsize (RFC 2349)
// and windowsize (RFC 7440), built for thousands of concurrent transfers.
package tftp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"osim/internal/udpbuf"
)

// Config tunes the engine. Zero values take the defaults documented on each field.
type Config struct {
	// MaxBlksize caps negotiated blksize. Default 1468: 1468 + 4 (TFTP) + 8
	// (UDP) + 20 (IPv4) = 1500, so a 1500-byte MTU never fragments.
	MaxBlksize int
	// MaxWindow caps negotiated windowsize. Default 64.
	MaxWindow int
	// MaxTransfers caps concurrent transfers. Default 10000.
	MaxTransfers int
	// MaxPerClient caps concurrent transfers per client IP address. Default 64.
	MaxPerClient int
	// PortLo..PortHi is the range of transfer source ports (TIDs); 0..0 lets
	// the kernel pick ephemeral ports.
	PortLo, PortHi int
	// Timeout is the first retransmit timeout when the client asks none. Default 1s.
	Timeout time.Duration
	// MaxTimeout caps the exponential backoff. Default 8s.
	MaxTimeout time.Duration
	// Retries is how many timeouts in a row end a transfer. Default 5.
	Retries int
	// UploadDir enables write requests into that folder; empty refuses them.
	UploadDir string
	// MaxUpload caps one upload's size. Default 64 MiB.
	MaxUpload int64
	// LockstepSpin is how long a lockstep (windowsize 1) transfer busy-polls
	// for the next ACK before parking, while no more transfers run than half
	// the cores. Default 50µs; negative never polls. On loopback and a fast
	// LAN it roughly halves the time per block (bench/RESULTS.md).
	LockstepSpin time.Duration
	// ListenUDP opens each transfer's socket; default net.ListenUDP("udp4").
	// A caller serving inside a network namespace passes one that opens the
	// socket there: transfers run on other goroutines (other OS threads),
	// which do not inherit the namespace of the thread that called Serve.
	ListenUDP func(laddr *net.UDPAddr) (*net.UDPConn, error)
	// DisableGSO sends windows with sendmmsg only, never UDP GSO.
	DisableGSO bool
	// Logger receives one line per transfer; nil discards.
	Logger *slog.Logger
	// Metrics to update; nil creates unregistered ones.
	Metrics *Metrics
}

func (c *Config) setDefaults() error {
	if c.MaxBlksize == 0 {
		c.MaxBlksize = 1468
	}
	if c.MaxWindow == 0 {
		c.MaxWindow = 64
	}
	if c.MaxTransfers == 0 {
		c.MaxTransfers = 10000
	}
	if c.MaxPerClient == 0 {
		c.MaxPerClient = 64
	}
	if c.Timeout == 0 {
		c.Timeout = time.Second
	}
	if c.MaxTimeout == 0 {
		c.MaxTimeout = 8 * time.Second
	}
	if c.LockstepSpin == 0 {
		c.LockstepSpin = 50 * time.Microsecond
	}
	if c.Retries == 0 {
		c.Retries = 5
	}
	if c.MaxUpload == 0 {
		c.MaxUpload = 64 << 20
	}
	if c.ListenUDP == nil {
		c.ListenUDP = func(laddr *net.UDPAddr) (*net.UDPConn, error) { return net.ListenUDP("udp4", laddr) }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	switch {
	case c.MaxBlksize < minBlksize || c.MaxBlksize > maxBlksize:
		return fmt.Errorf("tftp: max blksize %d outside %d..%d", c.MaxBlksize, minBlksize, maxBlksize)
	case c.MaxWindow < 1 || c.MaxWindow > maxWindow:
		return fmt.Errorf("tftp: max windowsize %d outside 1..%d", c.MaxWindow, maxWindow)
	case c.MaxTransfers < 1 || c.MaxPerClient < 1:
		return fmt.Errorf("tftp: transfer caps must be positive (got %d global, %d per client)", c.MaxTransfers, c.MaxPerClient)
	case c.PortLo < 0 || c.PortHi > 65535 || c.PortLo > c.PortHi || (c.PortLo == 0) != (c.PortHi == 0):
		return fmt.Errorf("tftp: port range %d:%d is not LO:HI within 1..65535", c.PortLo, c.PortHi)
	case c.Timeout < 0 || c.MaxTimeout < c.Timeout || c.Retries < 1:
		return fmt.Errorf("tftp: timeout %v, max timeout %v, retries %d are inconsistent", c.Timeout, c.MaxTimeout, c.Retries)
	}
	return nil
}

// Server is a TFTP server. Create it with NewServer, run it with Serve,
// stop it with Shutdown.
type Server struct {
	cfg      Config
	resolver Resolver
	uploads  *os.Root
	m        *Metrics
	log      *slog.Logger

	ctx    context.Context // ends every transfer when cancelled
	cancel context.CancelFunc
	wg     sync.WaitGroup

	gsoOff        atomic.Bool  // set once the kernel refused UDP_SEGMENT
	activeN       atomic.Int64 // transfers running, read without the lock
	spinMaxActive int64

	mu        sync.Mutex
	active    map[transferKey]struct{}
	perClient map[netip.Addr]int
	nextPort  int
}

// transferKey identifies a transfer for duplicate detection: a retried
// request is byte-identical and comes from the same address and port.
type transferKey struct {
	client netip.AddrPort
	req    string
}

// NewServer checks cfg and returns a server reading files through r.
func NewServer(cfg Config, r Resolver) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.New("tftp: nil resolver")
	}
	s := &Server{
		cfg: cfg, resolver: r, m: cfg.Metrics, log: cfg.Logger,
		active: map[transferKey]struct{}{}, perClient: map[netip.Addr]int{},
		nextPort: cfg.PortLo, spinMaxActive: int64(max(1, runtime.GOMAXPROCS(0)/2)),
	}
	if cfg.UploadDir != "" {
		root, err := os.OpenRoot(cfg.UploadDir)
		if err != nil {
			return nil, fmt.Errorf("tftp: open upload folder: %w", err)
		}
		s.uploads = root
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// ListenAndServe binds addr (IPv4 "host:port") and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return fmt.Errorf("tftp: listen address %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return fmt.Errorf("tftp: listen on %q: %w", addr, err)
	}
	defer conn.Close()
	return s.Serve(ctx, conn)
}

// Serve reads requests from conn until ctx ends, then returns nil without
// waiting for running transfers (see Shutdown). conn is not closed.
func (s *Server) Serve(ctx context.Context, conn *net.UDPConn) error {
	udpbuf.RaiseReadBuffer(conn, 8<<20)
	local := conn.LocalAddr().(*net.UDPAddr)
	localIP, _ := netip.AddrFromSlice(local.IP)
	localIP = localIP.Unmap()
	pc := ipv4.NewPacketConn(conn)
	wantDst := localIP.IsUnspecified()
	if wantDst {
		// Learn the address each request was sent to, so the transfer socket
		// answers from it (the client checks the source IP too).
		if err := pc.SetControlMessage(ipv4.FlagDst, true); err != nil {
			return fmt.Errorf("tftp: enable IP_PKTINFO: %w", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	s.log.Info("tftp serving", "listen", local.String(), "max_blksize", s.cfg.MaxBlksize,
		"max_window", s.cfg.MaxWindow, "max_transfers", s.cfg.MaxTransfers)
	buf := make([]byte, 65536)
	for {
		n, cm, src, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("tftp: read request: %w", err)
		}
		ua, ok := src.(*net.UDPAddr)
		if !ok {
			continue
		}
		client := ua.AddrPort()
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		dst := localIP
		if wantDst && cm != nil {
			if d, ok := netip.AddrFromSlice(cm.Dst); ok {
				dst = d.Unmap()
			}
		}
		s.handleRequest(conn, buf[:n], client, dst)
	}
}

// Shutdown waits for running transfers until ctx ends, then cuts the rest.
// Call it after Serve returned.
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return fmt.Errorf("tftp: shutdown cut running transfers: %w", ctx.Err())
	}
}

// Active is the number of transfers in progress.
func (s *Server) Active() int { return int(s.activeN.Load()) }

func (s *Server) handleRequest(conn *net.UDPConn, pkt []byte, client netip.AddrPort, local netip.Addr) {
	req, err := ParseRequest(pkt)
	if err != nil {
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			pe = &ProtocolError{Code: ErrIllegalOp, Msg: err.Error()}
		}
		s.m.malformed.WithLabelValues("request").Inc()
		s.refuse(conn, client, "malformed", pe.Code, pe.Msg, "")
		return
	}
	key := transferKey{client: client, req: string(pkt)}
	s.mu.Lock()
	if _, dup := s.active[key]; dup {
		s.mu.Unlock()
		// A retried request: the running transfer's own retransmits answer it.
		s.m.dupRequests.Inc()
		return
	}
	if n := len(s.active); n >= s.cfg.MaxTransfers {
		s.mu.Unlock()
		s.refuse(conn, client, "server_busy", ErrUndefined,
			fmt.Sprintf("server busy: %d transfers active (cap %d), retry later", n, s.cfg.MaxTransfers), req.Filename)
		return
	}
	if n := s.perClient[client.Addr()]; n >= s.cfg.MaxPerClient {
		s.mu.Unlock()
		s.refuse(conn, client, "client_busy", ErrUndefined,
			fmt.Sprintf("too many transfers from %s: %d active (cap %d)", client.Addr(), n, s.cfg.MaxPerClient), req.Filename)
		return
	}
	s.active[key] = struct{}{}
	s.perClient[client.Addr()]++
	s.wg.Add(1)
	s.activeN.Add(1)
	s.m.active.Inc()
	s.mu.Unlock()
	go func() {
		defer s.release(key)
		if req.Write {
			s.runWrite(conn, req, client, local)
		} else {
			s.runRead(conn, req, client, local)
		}
	}()
}

func (s *Server) release(key transferKey) {
	s.mu.Lock()
	delete(s.active, key)
	if s.perClient[key.client.Addr()]--; s.perClient[key.client.Addr()] <= 0 {
		delete(s.perClient, key.client.Addr())
	}
	s.mu.Unlock()
	s.activeN.Add(-1)
	s.m.active.Dec()
	s.wg.Done()
}

// refuse answers a request with an error packet from the listening socket,
// logs and counts it.
func (s *Server) refuse(conn *net.UDPConn, client netip.AddrPort, reason string, code ErrorCode, msg, file string) {
	s.m.refusals.WithLabelValues(reason).Inc()
	s.log.Info("tftp request refused", "client", client.String(), "file", file, "reason", reason, "code", int(code), "msg", msg)
	var b [512]byte
	_, _ = conn.WriteToUDPAddrPort(appendError(b[:0], code, msg), client)
}

// refusalFor maps a resolver error to a reason label and an error packet.
func refusalFor(err error) (string, ErrorCode) {
	var pe *ProtocolError
	switch {
	case errors.As(err, &pe):
		if pe.Code == ErrOptionRefuse {
			return "bad_option", pe.Code
		}
		return "refused", pe.Code
	case errors.Is(err, ErrAccessDenied):
		return "access_violation", ErrAccess
	case errors.Is(err, ErrFileNotFound):
		return "not_found", ErrNotFound
	default:
		return "resolver_error", ErrUndefined
	}
}

// bindTransfer opens the transfer's own socket (its TID, RFC 1350 section 4)
// on the address the request arrived at, from the configured port range.
func (s *Server) bindTransfer(local netip.Addr) (*net.UDPConn, error) {
	if s.cfg.PortLo == 0 {
		return s.cfg.ListenUDP(net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	}
	span := s.cfg.PortHi - s.cfg.PortLo + 1
	for range span {
		s.mu.Lock()
		p := s.nextPort
		if s.nextPort++; s.nextPort > s.cfg.PortHi {
			s.nextPort = s.cfg.PortLo
		}
		s.mu.Unlock()
		c, err := s.cfg.ListenUDP(net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, uint16(p))))
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no free port in %d:%d", s.cfg.PortLo, s.cfg.PortHi)
}
