package tftp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/ipv4"

	"osim/dataplane/tftp/internal/busypoll"
	"osim/dataplane/tftp/internal/gso"
)

// maxBatch bounds one sendmmsg call; a larger window is sent in several.
const maxBatch = 64

// conversation is what read and write transfers share: the transfer's own
// socket, its client, and the retransmit clock.
type conversation struct {
	s      *Server
	sl     *slot
	acked  bool // the client acknowledged something: sl left the unacknowledged class
	conn   *net.UDPConn
	client netip.AddrPort
	rbuf   []byte
	armed  time.Time // deadline set on the socket
	poller *busypoll.Poller
	spin   time.Duration // busy-poll this long before parking, 0: never
	rto    time.Duration
	base   time.Duration
	tries  int
}

// errTransferTimeout ends a transfer that made no progress for its budget.
var errTransferTimeout = errors.New("no progress within the retry budget")

// errFirstAckTimeout ends a transfer whose first flight, sent twice, was
// never acknowledged.
var errFirstAckTimeout = errors.New("first flight never acknowledged")

// clientError is an ERROR packet the client sent us.
type clientError struct {
	code ErrorCode
	msg  string
}

func (e *clientError) Error() string { return fmt.Sprintf("client sent error %d: %q", e.code, e.msg) }

// recv waits for the next packet from the client until deadline. Packets
// from any other address or port get error 5 and leave the transfer alone
// (RFC 1350 section 4). It returns os.ErrDeadlineExceeded on timeout.
//
// Re-arming the socket deadline costs a runtime timer update, too much per
// ACK in lockstep; so an armed deadline that is earlier than asked but close
// enough stays, and a wake-up before the real deadline re-arms and goes on.
func (c *conversation) recv(deadline time.Time) (reply, []byte, error) {
	for {
		if c.armed.IsZero() || deadline.Before(c.armed) || deadline.Sub(c.armed) > c.base/4 {
			if err := c.conn.SetReadDeadline(deadline); err != nil {
				return reply{}, nil, err
			}
			c.armed = deadline
		}
		n, from, polled, err := c.poll()
		if !polled && err == nil {
			n, from, err = c.conn.ReadFromUDPAddrPort(c.rbuf)
		}
		if isTimeout(err) && time.Now().Before(deadline) {
			c.armed = time.Time{}
			continue
		}
		if err != nil {
			return reply{}, nil, err
		}
		if from.Port() != c.client.Port() || from.Addr().Unmap() != c.client.Addr() {
			c.s.m.unknownTID.Inc()
			var b [64]byte
			_, _ = c.conn.WriteToUDPAddrPort(appendError(b[:0], ErrUnknownTID, "unknown transfer ID"), from)
			continue
		}
		r, err := parseReply(c.rbuf[:n])
		if err != nil {
			c.s.m.malformed.WithLabelValues("transfer").Inc()
			continue
		}
		if r.op == opERROR {
			return r, c.rbuf[:n], &clientError{code: r.code, msg: errorMessage(c.rbuf[:n])}
		}
		return r, c.rbuf[:n], nil
	}
}

// poll busy-polls the socket for up to c.spin before the caller parks in a
// blocking read; polled reports whether a datagram was read.
func (c *conversation) poll() (int, netip.AddrPort, bool, error) {
	// Only while the transfers fit on half the cores: with more, spinning
	// would take CPU from the transfers that have work.
	if c.poller == nil || c.spin <= 0 || c.s.activeN.Load() > c.s.spinMaxActive {
		return 0, netip.AddrPort{}, false, nil
	}
	until := time.Now().Add(c.spin)
	for {
		n, from, ok, err := c.poller.TryRead()
		if ok || err != nil {
			return n, from, ok, err
		}
		if time.Now().After(until) {
			return 0, netip.AddrPort{}, false, nil
		}
	}
}

// startClock sets the retransmit timer of the first flight, at most half
// the first-ACK budget: the client's timeout governs only once it
// acknowledged something (see backoff).
func (c *conversation) startClock(base time.Duration) {
	c.base = base
	c.rto = min(base, c.s.cfg.FirstAckTimeout/2)
}

// backoff records a timeout; it fails once the retry budget is spent.
// Before the first ACK the budget is one resend: the request may carry a
// forged source, and each resend is reflected at it. A late ACK (a client
// re-acknowledging on its own timer) is still taken until FirstAckTimeout.
func (c *conversation) backoff() error {
	c.tries++
	if !c.acked {
		if c.tries > 1 {
			return errFirstAckTimeout
		}
		c.sl.resent.Store(true)
		c.rto = c.s.cfg.FirstAckTimeout - c.rto
		return nil
	}
	if c.tries > c.s.cfg.Retries {
		return errTransferTimeout
	}
	c.rto = min(c.rto*2, c.s.cfg.MaxTimeout)
	return nil
}

// progress records an ACK (a DATA of an upload) that moved the transfer.
// The first one moves the transfer to the acknowledged class, which can
// fail: evicted meanwhile, or the client is at its cap.
func (c *conversation) progress() error {
	if !c.acked {
		if err := c.s.acknowledge(c.sl); err != nil {
			return err
		}
		c.acked = true
	}
	c.tries = 0
	c.rto = c.base
	return nil
}

func (c *conversation) sendError(code ErrorCode, msg string) {
	var b [512]byte
	_, _ = c.conn.WriteToUDPAddrPort(appendError(b[:0], code, msg), c.client)
}

// endedUnacked counts and logs the ends a transfer meets before its first
// ACK, and reports whether err was one. Forged floods end this way by the
// thousand: those lines are at debug, the metrics count them.
func (s *Server) endedUnacked(c *conversation, dir string, err error, log *slog.Logger) bool {
	var be *busyError
	switch {
	case err == nil:
		return false
	case errors.Is(err, errFirstAckTimeout):
		s.m.failed.WithLabelValues(dir, "first_ack_timeout").Inc()
		s.m.firstAckTimeouts.Inc()
		log.Debug("tftp transfer never acknowledged", "direction", dir)
	case errors.As(err, &be):
		s.m.failed.WithLabelValues(dir, "client_busy").Inc()
		s.m.refusals.WithLabelValues("client_busy").Inc()
		c.sendError(ErrUndefined, be.msg)
		log.Info("tftp transfer refused at its first ACK", "direction", dir, "reason", "client_busy", "msg", be.msg)
	case errors.Is(err, errEvicted) || (c.sl.ctx.Err() != nil && s.ctx.Err() == nil):
		// Only eviction cancels a transfer's own context while it runs.
		s.m.failed.WithLabelValues(dir, "evicted").Inc()
		log.Debug("tftp transfer evicted before its first ACK", "direction", dir)
	default:
		return false
	}
	return true
}

// isTimeout reports a read deadline passing; it must not allocate, it runs per ACK.
func isTimeout(err error) bool {
	return err != nil && errors.Is(err, os.ErrDeadlineExceeded)
}

// readTransfer sends one file. Its buffers are sized once at the start, so
// the steady state (ACK in, window out) allocates nothing.
type readTransfer struct {
	conversation
	pc   *ipv4.PacketConn
	src  blockSource
	win  window
	msgs []ipv4.Message
	iov  [][]byte
	hdrs []byte
	bs   int
	gso  *gso.Sender // nil: sendmmsg
}

func (s *Server) runRead(listener *net.UDPConn, req Request, client netip.AddrPort, local netip.Addr, sl *slot) {
	start := time.Now()
	m := s.m
	m.started.WithLabelValues("read").Inc()
	if !s.begun(sl, "read") {
		return
	}
	log := s.log.With("client", client.String(), "file", req.Filename)

	f, err := s.resolver.Resolve(sl.ctx, client, req.Filename)
	if err != nil {
		reason, code := refusalFor(err)
		m.failed.WithLabelValues("read", reason).Inc()
		s.refuse(listener, client, reason, code, err.Error(), req.Filename)
		return
	}
	defer f.Close()
	size := f.Size()
	p, err := Negotiate(req, Limits{MaxBlksize: s.cfg.MaxBlksize, MaxWindow: s.cfg.MaxWindow}, size)
	if err != nil {
		reason, code := refusalFor(err)
		m.failed.WithLabelValues("read", reason).Inc()
		s.refuse(listener, client, reason, code, err.Error(), req.Filename)
		return
	}
	conn, err := s.bindTransfer(local)
	if err != nil {
		m.failed.WithLabelValues("read", "no_port").Inc()
		s.refuse(listener, client, "no_port", ErrUndefined, "server busy: "+err.Error(), req.Filename)
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(sl.ctx, func() { conn.Close() })
	defer stop()

	t := &readTransfer{
		conversation: conversation{s: s, sl: sl, conn: conn, client: client, rbuf: make([]byte, 1024)},
		pc:           ipv4.NewPacketConn(conn),
		win:          window{size: uint64(p.Window), rollTo: p.RollTo},
	}
	t.startClock(cmp.Or(p.Timeout, s.cfg.Timeout))
	t.bs = p.Blksize
	if p.Window == 1 && s.cfg.LockstepSpin > 0 {
		if pl, err := busypoll.New(conn, t.rbuf); err == nil {
			t.poller, t.spin = pl, s.cfg.LockstepSpin
		}
	}
	// Cached octet files are sent straight from the shared slice; anything
	// else (netascii, uncached files) streams through a one-window ring.
	if b, ok := f.(interface{ Bytes() []byte }); ok && !p.Netascii {
		t.src = &memSource{data: b.Bytes(), bs: uint64(p.Blksize)}
	} else if p.Netascii {
		t.src = newStreamSource(newNetasciiReader(f), p.Blksize, p.Window)
	} else {
		t.src = newStreamSource(f, p.Blksize, p.Window)
	}
	batch := min(p.Window, maxBatch)
	if segs := max(1, min(gso.MaxSegments, gso.MaxBytes/(p.Blksize+4))); !s.cfg.DisableGSO && !s.gsoOff.Load() {
		// One sendmsg per window: the kernel cuts it into datagrams. In
		// lockstep it is a plain sendmsg of header and payload, no copy.
		if g, err := gso.New(conn, client, 2*segs); err == nil {
			t.gso = g
			batch = min(p.Window, segs)
		}
	}
	t.msgs = make([]ipv4.Message, batch)
	t.iov = make([][]byte, 2*batch)
	t.hdrs = make([]byte, 4*batch)
	ua := net.UDPAddrFromAddrPort(client)
	for i := range t.msgs {
		t.msgs[i].Addr = ua
	}
	m.blksize.Observe(float64(p.Blksize))
	m.windowsize.Observe(float64(p.Window))

	err = t.run(p)
	if s.endedUnacked(&t.conversation, "read", err, log) {
		return
	}
	var ce *clientError
	switch {
	case err == nil:
		m.completed.WithLabelValues("read").Inc()
		m.duration.WithLabelValues("read").Observe(time.Since(start).Seconds())
		log.Info("tftp read done", "bytes", size, "blksize", p.Blksize, "window", p.Window,
			"ms", time.Since(start).Milliseconds())
	case errors.As(err, &ce) && t.win.acked == 0 && len(p.OACK) > 0:
		// The client read our OACK and walked away: the UEFI "tsize probe"
		// (EDK2 asks tsize, aborts with error 8, asks again). Nothing to keep.
		m.probes.Inc()
		log.Debug("tftp probe ended by client", "code", int(ce.code))
	case errors.As(err, &ce):
		m.failed.WithLabelValues("read", "client_error").Inc()
		log.Info("tftp read aborted by client", "code", int(ce.code), "msg", ce.msg, "acked", t.win.acked)
	case errors.Is(err, errTransferTimeout):
		m.failed.WithLabelValues("read", "timeout").Inc()
		log.Info("tftp read timed out", "acked", t.win.acked, "retries", s.cfg.Retries)
	case s.ctx.Err() != nil:
		m.failed.WithLabelValues("read", "shutdown").Inc()
		log.Info("tftp read cut by shutdown", "acked", t.win.acked)
	default:
		m.failed.WithLabelValues("read", "io_error").Inc()
		t.sendError(ErrUndefined, "server error")
		log.Warn("tftp read failed", "err", err, "acked", t.win.acked)
	}
}

// run drives the window until the last block is acknowledged.
func (t *readTransfer) run(p Params) error {
	if len(p.OACK) > 0 {
		oack := appendOACK(make([]byte, 0, 128), p.OACK)
		if err := t.awaitOACK(oack); err != nil {
			return err
		}
	}
	t.win.last = t.src.lastBlock()
	if err := t.sendNext(0); err != nil {
		return err
	}
	if !t.acked { // no OACK: DATA 1 is the first flight
		if err := t.recordFirstData(); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(t.rto)
	for !t.win.done() {
		r, _, err := t.recv(deadline)
		switch {
		case isTimeout(err):
			if err := t.backoff(); err != nil {
				return err
			}
			resent := t.win.sent
			t.win.onTimeout()
			if err := t.sendNext(resent); err != nil {
				return err
			}
			deadline = time.Now().Add(t.rto)
			continue
		case err != nil:
			return err
		}
		if r.op != opACK {
			t.s.m.malformed.WithLabelValues("transfer").Inc()
			continue
		}
		n, ok := t.win.ack(r.block)
		prevSent := t.win.sent
		if !ok || !t.win.onAck(n) {
			t.s.m.dupAcks.Inc()
			continue
		}
		if err := t.progress(); err != nil {
			return err
		}
		if t.win.done() {
			break
		}
		// An ACK below what we sent reports a gap: those blocks go again.
		if err := t.sendNext(prevSent); err != nil {
			return err
		}
		deadline = time.Now().Add(t.rto)
	}
	return nil
}

// recordFirstData keeps a copy of DATA 1 for retried requests.
func (t *readTransfer) recordFirstData() error {
	data, err := t.src.block(1)
	if err != nil {
		return err
	}
	pkt := make([]byte, 4+len(data))
	putDataHeader(pkt, t.win.wire(1))
	copy(pkt[4:], data)
	t.s.setFirstFlight(t.sl, t.conn, pkt)
	return nil
}

// awaitOACK sends the OACK until the client acknowledges it with ACK 0.
func (t *readTransfer) awaitOACK(oack []byte) error {
	t.s.setFirstFlight(t.sl, t.conn, oack)
	for {
		if _, err := t.conn.WriteToUDPAddrPort(oack, t.client); err != nil {
			return fmt.Errorf("send OACK: %w", err)
		}
		deadline := time.Now().Add(t.rto)
		for {
			r, _, err := t.recv(deadline)
			if isTimeout(err) {
				break
			}
			if err != nil {
				return err
			}
			if r.op == opACK && r.block == 0 {
				return t.progress()
			}
			t.s.m.malformed.WithLabelValues("transfer").Inc()
		}
		if err := t.backoff(); err != nil {
			return err
		}
		t.s.m.retransmits.Inc()
	}
}

// sendNext sends the blocks the window allows now, batched. Blocks up to
// resentUpTo were sent before and count as retransmits.
func (t *readTransfer) sendNext(resentUpTo uint64) error {
	from, upTo := t.win.next()
	for from <= upTo {
		k, again := 0, 0
		var payload int
		for ; k < len(t.msgs) && from <= upTo; k++ {
			data, err := t.src.block(from)
			if err != nil {
				return err
			}
			if t.win.last == 0 { // a stream learns its end only when it reads it
				if l := t.src.lastBlock(); l != 0 {
					t.win.last = l
					upTo = min(upTo, l)
				}
			}
			h := t.hdrs[4*k : 4*k+4]
			putDataHeader(h, t.win.wire(from))
			t.iov[2*k] = h
			t.iov[2*k+1] = data
			t.msgs[k].Buffers = t.iov[2*k : 2*k+2]
			payload += len(data)
			if from <= resentUpTo {
				again++
			}
			from++
		}
		if err := t.flush(k); err != nil {
			return err
		}
		t.win.sent = from - 1
		t.s.m.bytesSent.Add(float64(payload))
		if again > 0 {
			t.s.m.retransmits.Add(float64(again))
		}
	}
	return nil
}

// flush sends the k blocks staged in iov and msgs: with GSO as one
// sendmsg, else with sendmmsg.
func (t *readTransfer) flush(k int) error {
	if t.gso != nil {
		_, err := t.gso.Send(t.iov[:2*k], 4+t.bs)
		if err == nil {
			return nil
		}
		if !errors.Is(err, gso.ErrUnsupported) {
			return fmt.Errorf("send window: %w", err)
		}
		// The kernel or route refuses UDP_SEGMENT: sendmmsg from now on.
		if t.s.gsoOff.CompareAndSwap(false, true) {
			t.s.log.Warn("UDP GSO refused, falling back to sendmmsg", "err", err)
		}
		t.gso = nil
	}
	return t.writeBatch(t.msgs[:k])
}

func (t *readTransfer) writeBatch(ms []ipv4.Message) error {
	for len(ms) > 0 {
		n, err := t.pc.WriteBatch(ms, 0)
		if err != nil {
			return fmt.Errorf("send window: %w", err)
		}
		ms = ms[n:]
	}
	return nil
}
