// Package ceiling is the bare Go UDP sender that, paired with the bench's
// client, measures what this machine's loopback can carry with the same
// windowed exchange as TFTP: a window of DATA datagrams of 4+blksize bytes
// sent with one sendmmsg, one ACK for the last, repeat. It speaks just
// enough TFTP (RRQ, OACK echo, DATA, ACK) for our own client and is no
// server: no path checks, no limits, whole files in memory.
package ceiling

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/ipv4"

	"osim/internal/tftpwire"
)

// Sender answers RRQs for files under Root.
type Sender struct {
	Root    string
	Timeout time.Duration // retransmit timeout, 1s when zero
	Retries int           // consecutive timeouts before a transfer is dropped, 5 when zero
	// GSO sends each window with UDP_SEGMENT instead of sendmmsg: the
	// faster way, so the ceiling stays above servers that use it.
	GSO bool

	mu    sync.Mutex
	files map[string][]byte
}

// Serve answers RRQs arriving on conn until ctx ends; each transfer gets its
// own socket and goroutine, as TFTP's transfer IDs want.
func (s *Sender) Serve(ctx context.Context, conn *net.UDPConn) error {
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	var wg sync.WaitGroup
	defer wg.Wait()
	buf := make([]byte, 2048)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ceiling: read RRQ on %s: %w", conn.LocalAddr(), err)
		}
		file, _, opts, err := tftpwire.ParseRRQ(buf[:n])
		if err != nil {
			slog.Debug("ceiling: ignoring packet", "client", from, "err", err)
			continue
		}
		wg.Go(func() {
			if err := s.transfer(ctx, local, from, file, opts); errors.Is(err, errGiveUp) {
				slog.Debug("ceiling: client gave up", "client", from, "file", file, "err", err)
			} else if err != nil {
				slog.Warn("ceiling: transfer failed", "client", from, "file", file, "err", err)
			}
		})
	}
}

// Preload reads every file of Root into memory, so no transfer pays for
// the disk or the first read.
func (s *Sender) Preload() error {
	entries, err := os.ReadDir(s.Root)
	if err != nil {
		return fmt.Errorf("ceiling: list %s: %w", s.Root, err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if _, err := s.load(e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Sender) load(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.files[name]; ok {
		return b, nil
	}
	b, err := os.ReadFile(filepath.Join(s.Root, filepath.Clean("/"+name)))
	if err != nil {
		return nil, fmt.Errorf("ceiling: load %q: %w", name, err)
	}
	if s.files == nil {
		s.files = map[string][]byte{}
	}
	s.files[name] = b
	return b, nil
}

// transfer sends one file to client from a fresh socket.
func (s *Sender) transfer(ctx context.Context, local netip.Addr, client netip.AddrPort, file string, opts []tftpwire.Option) error {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		return fmt.Errorf("ceiling: transfer socket for %s: %w", client, err)
	}
	defer conn.Close()
	data, err := s.load(file)
	if err != nil {
		conn.WriteToUDPAddrPort(tftpwire.AppendError(nil, tftpwire.ErrNotFound, "not found"), client)
		return err
	}
	t := &xfer{conn: conn, pc: ipv4.NewPacketConn(conn), client: client, data: data, blksize: tftpwire.DefaultBlksize, window: 1,
		timeout: cmp.Or(s.Timeout, time.Second), retries: cmp.Or(s.Retries, 5)}
	echo := t.accept(opts)
	if s.GSO {
		t.gso = newGSOBatch(t.blksize)
	}
	return t.run(ctx, echo)
}

// xfer is one windowed send.
type xfer struct {
	conn            *net.UDPConn
	pc              *ipv4.PacketConn
	client          netip.AddrPort
	data            []byte
	blksize, window int
	timeout         time.Duration
	retries         int
	gso             *gsoBatch // nil: sendmmsg
}

// accept takes every option our client asks for, as asked, and returns the
// OACK's list (RFC 2347 echo).
func (t *xfer) accept(opts []tftpwire.Option) []tftpwire.Option {
	var echo []tftpwire.Option
	for _, o := range opts {
		switch o.Name {
		case tftpwire.OptBlksize:
			if v, err := strconv.Atoi(o.Value); err == nil && v >= 8 && v <= 65464 {
				t.blksize = v
				echo = append(echo, o)
			}
		case tftpwire.OptWindowsize:
			if v, err := strconv.Atoi(o.Value); err == nil && v >= 1 && v <= 65535 {
				t.window = v
				echo = append(echo, o)
			}
		case tftpwire.OptTsize:
			echo = append(echo, tftpwire.Option{Name: o.Name, Value: strconv.Itoa(len(t.data))})
		}
	}
	return echo
}

var errGiveUp = errors.New("ceiling: client gone")

func (t *xfer) run(ctx context.Context, echo []tftpwire.Option) error {
	ackBuf := make([]byte, 64)
	// Absolute block numbers; the last block is shorter than blksize, empty
	// when the size is a multiple of it.
	last := int64(len(t.data)/t.blksize) + 1
	acked := int64(0)
	if len(echo) > 0 {
		oack := tftpwire.AppendOACK(nil, echo)
		if err := t.await(ctx, ackBuf, func() error { _, err := t.conn.WriteToUDPAddrPort(oack, t.client); return err }, &acked, 0); err != nil {
			return err
		}
	}
	hdrs := make([]byte, 4*t.window)
	msgs := make([]ipv4.Message, t.window)
	addr := net.UDPAddrFromAddrPort(t.client)
	for acked < last {
		first := acked + 1
		n := int(min(int64(t.window), last-acked))
		for i := 0; i < n; i++ {
			blk := first + int64(i)
			h := hdrs[4*i : 4*i+4]
			binary.BigEndian.PutUint16(h, tftpwire.OpDATA)
			binary.BigEndian.PutUint16(h[2:], uint16(blk))
			off := (blk - 1) * int64(t.blksize)
			end := min(off+int64(t.blksize), int64(len(t.data)))
			msgs[i].Buffers = [][]byte{h, t.data[off:end]}
			msgs[i].Addr = addr
		}
		send := func() error { return t.writeAll(msgs[:n]) }
		if err := t.await(ctx, ackBuf, send, &acked, first+int64(n)-1); err != nil {
			return err
		}
	}
	return nil
}

// await sends, then reads ACKs until one reaches want or moves acked on
// (a gap ACK: resume after it), re-sending on timeout.
func (t *xfer) await(ctx context.Context, buf []byte, send func() error, acked *int64, want int64) error {
	if err := send(); err != nil {
		return fmt.Errorf("ceiling: send to %s: %w", t.client, err)
	}
	for tries := 0; ; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.conn.SetReadDeadline(time.Now().Add(t.timeout))
		n, from, err := t.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if tries++; tries > t.retries {
				return fmt.Errorf("%w: %s silent at block %d", errGiveUp, t.client, *acked)
			}
			if err := send(); err != nil {
				return fmt.Errorf("ceiling: resend to %s: %w", t.client, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("ceiling: read ACK from %s: %w", t.client, err)
		}
		if from != t.client || n < 4 {
			continue
		}
		switch tftpwire.Opcode(buf[:n]) {
		case tftpwire.OpERROR:
			return fmt.Errorf("%w: %s sent an error", errGiveUp, t.client)
		case tftpwire.OpACK:
		default:
			continue
		}
		// Unwrap relative to the window's first block.
		got := *acked + int64(int16(tftpwire.Block(buf[:n])-uint16(*acked)))
		if got == want {
			*acked = got
			return nil
		}
		if got > *acked && got < want {
			*acked = got // gap: the caller resumes after the block acknowledged
			return nil
		}
	}
}

func (t *xfer) writeAll(msgs []ipv4.Message) error {
	if t.gso != nil {
		return t.gso.send(t, msgs)
	}
	for len(msgs) > 0 {
		n, err := t.pc.WriteBatch(msgs, 0)
		if err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}
