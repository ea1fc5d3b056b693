// Package tftp is the boot server's TFTP engine: RFC 1350 with option
// negotiation (RFC 2347), blksize (RFC 2348), timeout and tsize (RFC 2349)
// and windowsize (RFC 7440), built for thousands of concurrent transfers.
package tftp

import (
	"bytes"
	"container/list"
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
	"syscall"
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
	// MaxTransfers caps concurrent transfers, acknowledged or not. Only
	// acknowledged ones make a request wait: unacknowledged ones give way.
	// Default 10000.
	MaxTransfers int
	// MaxPerClient caps concurrent acknowledged transfers per client IP
	// address. Default 64.
	MaxPerClient int
	// MaxUnacked caps transfers that have not heard from their client yet
	// (no ACK of the OACK or of block 1; for uploads no DATA 1). Their
	// source address may be forged, so they are a class of their own: when
	// it is full, or the total is at MaxTransfers, the oldest of them is
	// dropped to admit a new request, never an acknowledged transfer.
	// Default 256: a real client leaves the class after one round trip
	// (well under a millisecond on a LAN), so 256 first flights out at once
	// is far beyond any rack powering on; and as a transfer keeps its place
	// for at least 50 ms after its first flight (minFirstAckWait), a flood
	// goes through the full class at 256/50 ms = 5,120 requests/s at most,
	// about what one boot server opens transfer sockets for on 2 cores,
	// with 256 sockets. Above MaxTransfers it is lowered to MaxTransfers.
	MaxUnacked int
	// FirstAckTimeout bounds the wait for a transfer's first ACK: the first
	// flight (OACK or DATA 1) is sent again once, after min(timeout,
	// FirstAckTimeout/2), and the transfer ends FirstAckTimeout after the
	// request if nothing was acknowledged. One forged request so draws at
	// most two packets back. Default 2s.
	FirstAckTimeout time.Duration
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
	if c.MaxUnacked == 0 {
		c.MaxUnacked = 256
	}
	if c.FirstAckTimeout == 0 {
		c.FirstAckTimeout = 2 * time.Second
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
	c.MaxUnacked = min(c.MaxUnacked, c.MaxTransfers)
	switch {
	case c.MaxBlksize < minBlksize || c.MaxBlksize > maxBlksize:
		return fmt.Errorf("tftp: max blksize %d outside %d..%d", c.MaxBlksize, minBlksize, maxBlksize)
	case c.MaxWindow < 1 || c.MaxWindow > maxWindow:
		return fmt.Errorf("tftp: max windowsize %d outside 1..%d", c.MaxWindow, maxWindow)
	case c.MaxTransfers < 1 || c.MaxPerClient < 1 || c.MaxUnacked < 1:
		return fmt.Errorf("tftp: transfer caps must be positive (got %d global, %d per client, %d unacknowledged)",
			c.MaxTransfers, c.MaxPerClient, c.MaxUnacked)
	case c.FirstAckTimeout < 2*time.Millisecond:
		return fmt.Errorf("tftp: first-ACK timeout %v is below 2ms", c.FirstAckTimeout)
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

	mu         sync.Mutex
	active     map[transferKey]*slot // running transfers, for duplicate requests
	unacked    list.List             // of *slot never acknowledged, oldest first
	dying      int                   // evicted transfers whose goroutine has not ended yet
	maxDying   int                   // evictions in flight at once while admitting
	classMoved sync.Cond             // on mu: a transfer sent its first flight, was acknowledged or ended
	ackedN     int                   // acknowledged transfers running
	perClient  map[netip.Addr]int    // acknowledged transfers per client IP
	nextPort   int
}

// slot is a running transfer's place under the caps. It starts in the
// unacknowledged class and moves to the acknowledged one at the client's
// first ACK (first DATA of an upload); only the former can be evicted.
type slot struct {
	key     transferKey
	ctx     context.Context // ends the transfer: eviction or shutdown
	cancel  context.CancelFunc
	elem    *list.Element // in Server.unacked while unacknowledged
	acked   bool
	evicted bool
	spared  int             // times eviction passed it over (see evictOneLocked)
	since   time.Time       // admitted
	sentAt  time.Time       // when its first flight went out
	resent  atomic.Bool     // its one timed resend of the first flight went out
	conn    *net.UDPConn    // the transfer's socket, once its first flight went out
	raw     syscall.RawConn // the same, to look at its receive queue
	first   []byte          // that first flight (OACK, DATA 1 or ACK 0), for retried requests
}

// maxSpares bounds how often eviction passes over one transfer, so that
// each admission costs a bounded number of looks (see evictOneLocked).
const maxSpares = 4

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
		cfg: cfg, resolver: r, m: cfg.Metrics, log: cfg.Logger.With("component", "tftp"),
		active: map[transferKey]*slot{}, perClient: map[netip.Addr]int{},
		nextPort: cfg.PortLo, spinMaxActive: int64(max(1, runtime.GOMAXPROCS(0)/2)),
	}
	s.classMoved.L = &s.mu
	s.maxDying = max(1, cfg.MaxUnacked/4)
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
	sl, reason, msg := s.admit(key)
	switch {
	case reason == "duplicate":
		// A retried request is folded into its transfer, whose own
		// retransmits answer it once acknowledged; before that, see answerRetry.
		s.m.dupRequests.Inc()
		s.answerRetry(sl)
		return
	case sl == nil:
		s.refuse(conn, client, reason, ErrUndefined, msg, req.Filename)
		return
	}
	go func() {
		defer s.release(sl)
		if req.Write {
			s.runWrite(conn, req, client, local, sl)
		} else {
			s.runRead(conn, req, client, local, sl)
		}
	}()
}

// admit gives a request a slot in the unacknowledged class, evicting the
// oldest unacknowledged transfers to make room. It refuses (reason, msg)
// only when acknowledged transfers fill the caps: a flood of requests that
// never acknowledge can then delay a real client, never lock it out.
//
// Evicted transfers hold their place until their goroutine ended: the class
// never holds more than MaxUnacked sockets, and admission waits for the
// CPUs rather than queueing goroutines that a real client's first ACK would
// then wait behind (requests meanwhile queue in the listening socket).
func (s *Server) admit(key transferKey) (*slot, string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if old, dup := s.active[key]; dup {
			return old, "duplicate", ""
		}
		if s.ackedN >= s.cfg.MaxTransfers {
			return nil, "server_busy", fmt.Sprintf("server busy: %d transfers active (cap %d), retry later",
				s.ackedN, s.cfg.MaxTransfers)
		}
		ip := key.client.Addr()
		if n := s.perClient[ip]; n >= s.cfg.MaxPerClient {
			return nil, "client_busy", fmt.Sprintf("too many transfers from %s: %d active (cap %d)", ip, n, s.cfg.MaxPerClient)
		}
		held := s.unacked.Len() + s.dying
		if held < s.cfg.MaxUnacked && s.ackedN+held < s.cfg.MaxTransfers {
			break
		}
		wait := time.Duration(0)
		if s.dying < s.maxDying {
			if wait = s.evictOneLocked(time.Now()); wait == 0 {
				continue
			}
		}
		// Nothing to evict yet: the transfers are young, or on their way
		// out. Each soon sends, ends, or comes of age.
		s.waitLocked(wait)
	}
	sl := &slot{key: key, since: time.Now()}
	sl.ctx, sl.cancel = context.WithCancel(s.ctx)
	sl.elem = s.unacked.PushBack(sl)
	s.active[key] = sl
	s.wg.Add(1)
	s.activeN.Add(1)
	s.m.active.Inc()
	s.setUnackedGaugeLocked()
	return sl, "", ""
}

// setUnackedGaugeLocked reports the sockets the unacknowledged class holds.
func (s *Server) setUnackedGaugeLocked() {
	s.m.unacked.Set(float64(s.unacked.Len() + s.dying))
}

// minFirstAckWait is how long a transfer's first flight is out before the
// transfer may be evicted: a real client's first ACK needs a round trip and
// a turn on a CPU of its own, which a flood delays. It caps how fast a flood
// goes through the class at MaxUnacked per minFirstAckWait (5,120 requests/s
// at the default 256), above what this engine opens sockets for on 2 cores.
const minFirstAckWait = 50 * time.Millisecond

// evictOneLocked ends the oldest unacknowledged transfer whose first flight
// has been out for minFirstAckWait with nothing waiting on its socket. A
// transfer that has not sent yet keeps its place (for FirstAckTimeout at
// most, against a resolver that hangs): it may be a real client's, waiting
// for a CPU behind the flood. One with a datagram waiting is passed
// over (moved to the back, at most maxSpares times): only a client that
// heard from the transfer knows its port, so that is almost surely a real
// client's first ACK, queued while the CPUs are busy. It returns 0 after an
// eviction, else how long until the oldest young transfer comes of age
// (minFirstAckWait when none has sent yet).
func (s *Server) evictOneLocked(now time.Time) time.Duration {
	wait := minFirstAckWait
	e := s.unacked.Front()
	for range s.unacked.Len() {
		next := e.Next()
		sl := e.Value.(*slot)
		switch {
		case sl.raw == nil && now.Sub(sl.since) < s.cfg.FirstAckTimeout:
		case sl.raw == nil:
			s.evictLocked(sl)
			return 0
		case now.Sub(sl.sentAt) < minFirstAckWait:
			wait = min(wait, minFirstAckWait-now.Sub(sl.sentAt))
		case sl.spared < maxSpares && datagramWaiting(sl.raw):
			sl.spared++
			s.unacked.MoveToBack(e)
			s.m.unackedSpared.Inc()
		default:
			s.evictLocked(sl)
			return 0
		}
		e = next
	}
	return max(wait, time.Millisecond)
}

// waitLocked waits on classMoved, at most d (0: until signalled).
func (s *Server) waitLocked(d time.Duration) {
	if d > 0 {
		t := time.AfterFunc(d, func() {
			s.mu.Lock()
			s.classMoved.Broadcast()
			s.mu.Unlock()
		})
		defer t.Stop()
	}
	s.classMoved.Wait()
}

// datagramWaiting reports whether a datagram is queued on the socket.
func datagramWaiting(raw syscall.RawConn) bool {
	n := 0
	err := raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return err == nil && n > 0
}

// evictLocked ends an unacknowledged transfer: its socket closes now
// (freeing its port), its goroutine winds down on its own. Nothing is sent
// to its client, whose address may be forged.
func (s *Server) evictLocked(sl *slot) {
	s.unacked.Remove(sl.elem)
	sl.elem, sl.evicted = nil, true
	s.dying++
	delete(s.active, sl.key) // a retry of that request starts afresh
	s.m.unackedEvicted.Inc()
	sl.cancel()
}

// setFirstFlight records the first packet a transfer sent, so that a
// retried request can be answered with it (answerRetry).
func (s *Server) setFirstFlight(sl *slot, conn *net.UDPConn, pkt []byte) {
	raw, _ := conn.SyscallConn()
	first := bytes.Clone(pkt)
	s.mu.Lock()
	sl.conn, sl.raw, sl.first, sl.sentAt = conn, raw, first, time.Now()
	s.classMoved.Broadcast()
	s.mu.Unlock()
}

// answerRetry answers a retried request of a transfer that has heard nothing
// from its client yet and has spent its one resend, with the first flight
// again: the client asks again because it saw nothing. One packet per
// retried request, so a forged retry draws no more than a forged request.
func (s *Server) answerRetry(sl *slot) {
	s.mu.Lock()
	conn, first := sl.conn, sl.first
	if sl.elem == nil || !sl.resent.Load() {
		// Acknowledged or evicted; or the transfer's own resend is still to
		// come, which answers this retry (a second OACK can make a client
		// such as atftp give up).
		first = nil
	}
	s.mu.Unlock()
	if first == nil {
		return
	}
	if _, err := conn.WriteToUDPAddrPort(first, sl.key.client); err == nil {
		s.m.retransmits.Inc()
	}
}

// begun reports whether sl may still run: a transfer evicted before its
// goroutine got to run ends there, before it opens a file or a socket (a
// flood evicts most transfers that early).
func (s *Server) begun(sl *slot, dir string) bool {
	if sl.ctx.Err() != nil && s.ctx.Err() == nil {
		s.m.failed.WithLabelValues(dir, "evicted").Inc()
		return false
	}
	return true
}

// errEvicted ends a transfer evicted from the unacknowledged class.
var errEvicted = errors.New("evicted before its first ACK")

// busyError is a cap met at the first ACK; the client gets it as error 0.
type busyError struct{ msg string }

func (e *busyError) Error() string { return e.msg }

// acknowledge moves sl to the acknowledged class at the client's first ACK.
// It fails if sl was evicted meanwhile or if the client already holds
// MaxPerClient acknowledged transfers. The global cap needs no check here:
// sl already counted in it.
func (s *Server) acknowledge(sl *slot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl.evicted {
		return errEvicted
	}
	ip := sl.key.client.Addr()
	if n := s.perClient[ip]; n >= s.cfg.MaxPerClient {
		return &busyError{fmt.Sprintf("too many transfers from %s: %d active (cap %d)", ip, n, s.cfg.MaxPerClient)}
	}
	s.unacked.Remove(sl.elem)
	sl.elem, sl.acked = nil, true
	s.ackedN++
	s.perClient[ip]++
	s.setUnackedGaugeLocked()
	s.classMoved.Broadcast()
	return nil
}

func (s *Server) release(sl *slot) {
	s.mu.Lock()
	if s.active[sl.key] == sl {
		delete(s.active, sl.key)
	}
	switch {
	case sl.elem != nil:
		s.unacked.Remove(sl.elem)
		sl.elem = nil
	case sl.acked:
		s.ackedN--
		ip := sl.key.client.Addr()
		if s.perClient[ip]--; s.perClient[ip] <= 0 {
			delete(s.perClient, ip)
		}
	case sl.evicted:
		s.dying--
	}
	s.setUnackedGaugeLocked()
	s.classMoved.Broadcast()
	s.mu.Unlock()
	sl.cancel()
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
