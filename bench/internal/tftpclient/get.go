package tftpclient

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/ipv4"

	"osim/internal/tftpwire"
)

// maxStrayTIDs bounds the set of distinct stray sources remembered.
const maxStrayTIDs = 64

// Get reads cfg.File from cfg.Server over conn, which it does not close.
// Every outcome, including a failure, is in the Result.
func Get(ctx context.Context, conn *net.UDPConn, cfg Config) Result {
	t := newTransfer(conn, cfg)
	t.res.Err = t.run(ctx)
	return t.res
}

// transfer is the state of one read; its buffers are allocated once.
type transfer struct {
	cfg  Config
	conn *net.UDPConn
	pc   *ipv4.PacketConn
	msgs []ipv4.Message
	out  []byte // scratch for the packets we send
	rrq  []byte

	tid       netip.AddrPort // the server's transfer ID, set by its first answer
	answered  bool
	win       *Window
	strays    []netip.AddrPort
	start     time.Time
	lastEvent time.Time // last progress or retransmission; timeouts count from it
	done      bool
	res       Result
}

func newTransfer(conn *net.UDPConn, cfg Config) *transfer {
	blk := max(cfg.Blksize, tftpwire.DefaultBlksize)
	batch := min(max(cfg.Window, 4), 64)
	t := &transfer{
		cfg:  cfg,
		conn: conn,
		pc:   ipv4.NewPacketConn(conn),
		msgs: make([]ipv4.Message, batch),
		out:  make([]byte, 0, 512),
	}
	// One extra byte per buffer so an oversized DATA shows as such.
	bufs := make([]byte, batch*(4+blk+1))
	for i := range t.msgs {
		b := bufs[i*(4+blk+1) : (i+1)*(4+blk+1)]
		t.msgs[i].Buffers = [][]byte{b}
	}
	t.rrq = tftpwire.AppendRRQ(nil, cfg.File, cfg.rrqOptions())
	return t
}

func (t *transfer) run(ctx context.Context) error {
	t.start = time.Now()
	if err := t.sendRRQ(); err != nil {
		return err
	}
	timeouts := 0
	ctxDeadline, hasDeadline := ctx.Deadline()
	for !t.done {
		// The read deadline can fire a moment before the context's timer
		// does: check the clock too, or the loop would spin sending RRQs.
		if err := ctx.Err(); err != nil || (hasDeadline && !time.Now().Before(ctxDeadline)) {
			return fmt.Errorf("%w: reading %q from %s at block %d: %w", ErrTimeout, t.cfg.File, t.cfg.Server, t.next(), cmp.Or(err, context.DeadlineExceeded))
		}
		wait := t.cfg.Timeout
		if !t.answered && t.cfg.RRQEvery > 0 {
			wait = t.cfg.RRQEvery
		}
		dl := t.lastEvent.Add(wait)
		if hasDeadline && ctxDeadline.Before(dl) {
			dl = ctxDeadline
		}
		if err := t.conn.SetReadDeadline(dl); err != nil {
			return fmt.Errorf("tftpclient: set deadline: %w", err)
		}
		n, err := t.pc.ReadBatch(t.msgs, 0)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if ctx.Err() != nil || (hasDeadline && !time.Now().Before(ctxDeadline)) {
				continue
			}
			t.res.Timeouts++
			t.lastEvent = time.Now()
			if !t.answered && t.cfg.RRQEvery > 0 {
				if err := t.sendRRQ(); err != nil {
					return err
				}
				continue
			}
			if timeouts++; timeouts > t.cfg.Retries {
				return fmt.Errorf("%w: reading %q from %s: no progress after %d timeouts of %s at block %d",
					ErrTimeout, t.cfg.File, t.cfg.Server, timeouts-1, t.cfg.Timeout, t.next())
			}
			if err := t.retransmit(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("tftpclient: read for %q: %w", t.cfg.File, err)
		}
		for i := 0; i < n && !t.done; i++ {
			m := &t.msgs[i]
			src := m.Addr.(*net.UDPAddr).AddrPort()
			progress, err := t.handle(m.Buffers[0][:m.N], src)
			if err != nil {
				return err
			}
			if progress {
				timeouts = 0
			}
		}
	}
	t.res.Duration = time.Since(t.start)
	return nil
}

func (t *transfer) next() int64 {
	if t.win == nil {
		return 0
	}
	return t.win.Next()
}

func (t *transfer) sendRRQ() error {
	t.res.RRQs++
	t.lastEvent = time.Now()
	if _, err := t.conn.WriteToUDPAddrPort(t.rrq, t.cfg.Server); err != nil {
		return fmt.Errorf("tftpclient: send RRQ for %q to %s: %w", t.cfg.File, t.cfg.Server, err)
	}
	return nil
}

func (t *transfer) retransmit() error {
	if !t.answered {
		return t.sendRRQ()
	}
	return t.sendACK(t.win.Timeout())
}

func (t *transfer) sendACK(block uint16) error {
	t.out = tftpwire.AppendACK(t.out[:0], block)
	if _, err := t.conn.WriteToUDPAddrPort(t.out, t.tid); err != nil {
		return fmt.Errorf("tftpclient: send ACK %d to %s: %w", block, t.tid, err)
	}
	return nil
}

func (t *transfer) sendError(to netip.AddrPort, code uint16, msg string) {
	t.out = tftpwire.AppendError(t.out[:0], code, msg)
	_, _ = t.conn.WriteToUDPAddrPort(t.out, to) // best effort: we are failing or ignoring anyway
}

// handle processes one packet and reports whether it moved the transfer on.
func (t *transfer) handle(p []byte, src netip.AddrPort) (bool, error) {
	if t.answered && src != t.tid {
		t.stray(src)
		return false, nil
	}
	switch tftpwire.Opcode(p) {
	case tftpwire.OpOACK:
		return t.onOACK(p, src)
	case tftpwire.OpDATA:
		return t.onData(p, src)
	case tftpwire.OpERROR:
		code, msg, _ := tftpwire.ParseError(p)
		return false, fmt.Errorf("%w: %s answered %q with error %d %q", ErrServer, src, t.cfg.File, code, msg)
	}
	return false, nil // RFC 1350 gives no answer to what we do not expect
}

func (t *transfer) onOACK(p []byte, src netip.AddrPort) (bool, error) {
	if t.answered {
		if t.win != nil && t.win.Next() == 1 {
			// Our ACK 0 was lost and the server repeats its OACK.
			return false, t.sendACK(0)
		}
		return false, nil
	}
	t.answered, t.tid, t.res.ServerAddr, t.res.OACK = true, src, src, true
	opts, err := tftpwire.ParseOptions(p[2:])
	if err == nil {
		t.res.Negotiated, err = tftpwire.Negotiate(opts, t.cfg.Blksize, t.cfg.Window)
	}
	if err != nil {
		t.sendError(src, tftpwire.ErrOptionRefused, "bad OACK")
		return false, fmt.Errorf("%w: OACK from %s for %q: %w", ErrProtocol, src, t.cfg.File, err)
	}
	if ts := t.res.Negotiated.Tsize; t.cfg.Expected != nil && ts >= 0 && ts != int64(len(t.cfg.Expected)) {
		t.sendError(src, tftpwire.ErrOptionRefused, "unexpected tsize")
		return false, fmt.Errorf("%w: %q: tsize %d, expected file has %d bytes", ErrMismatch, t.cfg.File, ts, len(t.cfg.Expected))
	}
	t.win = NewWindow(t.res.Negotiated.Blksize, t.res.Negotiated.Window)
	t.lastEvent = time.Now()
	return true, t.sendACK(0)
}

func (t *transfer) onData(p []byte, src netip.AddrPort) (bool, error) {
	if len(p) < 4 {
		return false, nil
	}
	if !t.answered {
		// The server ignored every option (RFC 2347 §3): defaults apply.
		t.answered, t.tid, t.res.ServerAddr = true, src, src
		t.res.Negotiated = tftpwire.Defaults()
		t.win = NewWindow(tftpwire.DefaultBlksize, 1)
	}
	payload := p[4:]
	if len(payload) > t.res.Negotiated.Blksize {
		t.sendError(src, tftpwire.ErrUndefined, "block too large")
		return false, fmt.Errorf("%w: %q: DATA of %d bytes over blksize %d", ErrProtocol, t.cfg.File, len(payload), t.res.Negotiated.Blksize)
	}
	s := t.win.Data(tftpwire.Block(p), len(payload))
	if s.Dup {
		t.res.Dups++
	}
	if s.Gap {
		t.res.Gaps++
	}
	if s.Accept {
		if err := t.check(s.Offset, payload, s.Done); err != nil {
			t.sendError(src, tftpwire.ErrUndefined, "content mismatch")
			return false, err
		}
		t.res.Bytes += int64(len(payload))
		t.lastEvent = time.Now()
	}
	if s.Ack {
		if err := t.sendACK(s.AckBlock); err != nil {
			return false, err
		}
	}
	t.done = s.Done
	return s.Accept, nil
}

// check compares an accepted block with the expected file.
func (t *transfer) check(off int64, payload []byte, last bool) error {
	exp := t.cfg.Expected
	if exp == nil {
		return nil
	}
	end := off + int64(len(payload))
	if end > int64(len(exp)) {
		return fmt.Errorf("%w: %q: data runs to byte %d, file has %d", ErrMismatch, t.cfg.File, end, len(exp))
	}
	if !bytes.Equal(payload, exp[off:end]) {
		return fmt.Errorf("%w: %q: block at byte %d (block %d)", ErrMismatch, t.cfg.File, off, t.win.Next()-1)
	}
	if last && end != int64(len(exp)) {
		return fmt.Errorf("%w: %q: transfer ended at byte %d, file has %d", ErrMismatch, t.cfg.File, end, len(exp))
	}
	return nil
}

func (t *transfer) stray(src netip.AddrPort) {
	t.res.Strays++
	known := false
	for _, s := range t.strays {
		if s == src {
			known = true
			break
		}
	}
	if !known && len(t.strays) < maxStrayTIDs {
		t.strays = append(t.strays, src)
		t.res.StrayTIDs = len(t.strays)
	}
	if t.cfg.RejectStrays {
		// RFC 1350 §4: answer a wrong TID with ERROR 5, not disturbing the transfer.
		t.sendError(src, tftpwire.ErrUnknownTID, "unknown transfer ID")
	}
}
