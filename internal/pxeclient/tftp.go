package pxeclient

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"osim/internal/tftpwire"
)

// tftp fetches the boot file as fw does: the tsize probe first if it makes
// one, then the transfer, from a new port each.
func (c *client) tftp(ctx context.Context, fw *Firmware, server netip.Addr, name string) error {
	o := fw.TFTP
	srv := netip.AddrPortFrom(server, 69)
	if o.ProbeTsize {
		err := c.timed(fw, PhaseTsize, func() error {
			_, err := c.tftpProbe(ctx, srv, name, o)
			return err
		})
		if err != nil {
			return err
		}
	}
	return c.timed(fw, PhaseTFTP, func() error {
		t0 := time.Now()
		n, sum, err := c.tftpGet(ctx, srv, name, o)
		if err != nil {
			return err
		}
		c.res.Files = append(c.res.Files, Fetched{Kind: "nbp", URL: "tftp://" + server.String() + "/" + name,
			Size: n, SHA256: sum, Duration: time.Since(t0)})
		return nil
	})
}

// oack reads an OACK's options by (lowercased) name; a malformed tail is
// ignored, as firmware does.
func oack(p []byte) map[string]string {
	opts, _ := tftpwire.ParseOptions(p[2:])
	m := map[string]string{}
	for _, o := range opts {
		m[o.Name] = o.Value
	}
	return m
}

func tftpError(p []byte) error {
	code, msg, err := tftpwire.ParseError(p)
	if err != nil {
		return errors.New("short ERROR packet")
	}
	return fmt.Errorf("server error %d: %s", code, msg)
}

func (c *client) udp() (*net.UDPConn, error) {
	var conn *net.UDPConn
	err := c.cfg.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: c.source().AsSlice()})
		return err
	})
	return conn, err
}

// tftpProbe asks "tsize 0 blksize B windowsize W", reads the OACK and
// aborts with error 8, as EDK2 does to learn the size.
func (c *client) tftpProbe(ctx context.Context, srv netip.AddrPort, name string, o TFTPOptions) (int64, error) {
	conn, err := c.udp()
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	opts := []tftpwire.Option{{Name: tftpwire.OptTsize, Value: "0"}}
	opts = append(opts, sizeOpts(o)...)
	p, from, err := c.tftpAsk(ctx, conn, srv, tftpwire.AppendRRQ(nil, name, opts), make([]byte, 65536))
	if err != nil {
		return 0, err
	}
	if op := tftpwire.Opcode(p); op != tftpwire.OpOACK {
		return 0, fmt.Errorf("probe of %q: want OACK, got opcode %d", name, op)
	}
	size, err := strconv.ParseInt(oack(p)[tftpwire.OptTsize], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("probe of %q: OACK without tsize", name)
	}
	conn.WriteToUDPAddrPort(tftpwire.AppendError(nil, tftpwire.ErrOptionRefused, "tsize probe"), from)
	return size, nil
}

func sizeOpts(o TFTPOptions) []tftpwire.Option {
	var s []tftpwire.Option
	if o.Blksize > 0 {
		s = append(s, tftpwire.Option{Name: tftpwire.OptBlksize, Value: strconv.Itoa(o.Blksize)})
	}
	if o.Window > 0 {
		s = append(s, tftpwire.Option{Name: tftpwire.OptWindowsize, Value: strconv.Itoa(o.Window)})
	}
	return s
}

// tftpAsk sends a request until the first answer (OACK, DATA or ERROR),
// read into buf.
func (c *client) tftpAsk(ctx context.Context, conn *net.UDPConn, srv netip.AddrPort, req, buf []byte) ([]byte, netip.AddrPort, error) {
	for range 5 {
		if _, err := conn.WriteToUDPAddrPort(req, srv); err != nil {
			return nil, srv, err
		}
		conn.SetReadDeadline(time.Now().Add(c.cfg.TFTPTimeout))
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if ctx.Err() != nil {
					return nil, srv, ctx.Err()
				}
				break
			}
			if n < 4 || from.Addr().Unmap() != srv.Addr() {
				continue
			}
			if tftpwire.Opcode(buf[:n]) == tftpwire.OpERROR {
				return nil, from, tftpError(buf[:n])
			}
			return buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), nil
		}
	}
	return nil, srv, fmt.Errorf("no answer from %s", srv)
}

// tftpGet fetches name: RFC 7440 windows (ACK every window blocks, on a
// gap ACK the last block in order, §4), lockstep when no window is asked.
func (c *client) tftpGet(ctx context.Context, srv netip.AddrPort, name string, o TFTPOptions) (int64, [32]byte, error) {
	var sum [32]byte
	conn, err := c.udp()
	if err != nil {
		return 0, sum, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var opts []tftpwire.Option
	if o.Tsize && !o.ProbeTsize {
		opts = append(opts, tftpwire.Option{Name: tftpwire.OptTsize, Value: "0"})
	}
	opts = append(opts, sizeOpts(o)...)
	// One buffer for the whole transfer: the first answer is handled
	// (pending) before the next read reuses it.
	buf := make([]byte, 65536)
	p, tid, err := c.tftpAsk(ctx, conn, srv, tftpwire.AppendRRQ(nil, name, opts), buf)
	if err != nil {
		return 0, sum, err
	}
	blksize, window := 512, 1
	h := sha256.New()
	var total int64
	var last uint16 // last block received in order
	ackPkt := make([]byte, 0, 4)
	ack := func(b uint16) {
		conn.WriteToUDPAddrPort(tftpwire.AppendACK(ackPkt, b), tid)
	}
	inWindow := 0
	pending := p
	timeouts := 0
	for {
		if pending == nil {
			conn.SetReadDeadline(time.Now().Add(c.cfg.TFTPTimeout))
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if ctx.Err() != nil {
					return total, sum, ctx.Err()
				}
				if timeouts++; timeouts > 5 {
					return total, sum, fmt.Errorf("%q from %s: timed out after block %d", name, tid, last)
				}
				ack(last) // resend our last ACK: the server resends from last+1
				inWindow = 0
				continue
			}
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			if from != tid {
				conn.WriteToUDPAddrPort(tftpwire.AppendError(nil, tftpwire.ErrUnknownTID, "unknown transfer ID"), from)
				continue
			}
			pending = buf[:n]
		}
		pkt := pending
		pending = nil
		if len(pkt) < 4 {
			continue
		}
		switch tftpwire.Opcode(pkt) {
		case tftpwire.OpOACK:
			m := oack(pkt)
			if v, err := strconv.Atoi(m[tftpwire.OptBlksize]); err == nil {
				blksize = v
			}
			if v, err := strconv.Atoi(m[tftpwire.OptWindowsize]); err == nil {
				window = v
			}
			ack(0)
		case tftpwire.OpERROR:
			return total, sum, tftpError(pkt)
		case tftpwire.OpDATA:
			timeouts = 0
			b := tftpwire.Block(pkt)
			if b != last+1 {
				ack(last) // out of order: ACK the last in-order block (RFC 7440 §4)
				inWindow = 0
				continue
			}
			data := pkt[4:]
			h.Write(data)
			total += int64(len(data))
			last = b
			inWindow++
			if len(data) < blksize {
				ack(last)
				copy(sum[:], h.Sum(nil))
				return total, sum, nil
			}
			if inWindow >= window {
				ack(last)
				inWindow = 0
			}
		}
	}
}
