package pxeclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
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

func rrq(name string, opts ...string) []byte {
	p := binary.BigEndian.AppendUint16(nil, opRRQ)
	p = append(append(p, name...), 0)
	p = append(p, "octet"...)
	p = append(p, 0)
	for _, s := range opts {
		p = append(append(p, s...), 0)
	}
	return p
}

func tftpErrorPacket(code uint16, msg string) []byte {
	p := binary.BigEndian.AppendUint16(nil, opERROR)
	p = binary.BigEndian.AppendUint16(p, code)
	return append(append(p, msg...), 0)
}

func parseOACK(p []byte) map[string]string {
	m := map[string]string{}
	f := bytes.Split(p, []byte{0})
	for i := 0; i+1 < len(f); i += 2 {
		m[string(bytes.ToLower(f[i]))] = string(f[i+1])
	}
	return m
}

func tftpError(p []byte) error {
	if len(p) < 4 {
		return errors.New("short ERROR packet")
	}
	return fmt.Errorf("server error %d: %s", binary.BigEndian.Uint16(p[2:]), bytes.TrimRight(p[4:], "\x00"))
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
	opts := []string{"tsize", "0"}
	opts = append(opts, sizeOpts(o)...)
	p, from, err := c.tftpAsk(ctx, conn, srv, rrq(name, opts...), make([]byte, 65536))
	if err != nil {
		return 0, err
	}
	if binary.BigEndian.Uint16(p) != opOACK {
		return 0, fmt.Errorf("probe of %q: want OACK, got opcode %d", name, binary.BigEndian.Uint16(p))
	}
	size, err := strconv.ParseInt(parseOACK(p[2:])["tsize"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("probe of %q: OACK without tsize", name)
	}
	conn.WriteToUDPAddrPort(tftpErrorPacket(8, "tsize probe"), from)
	return size, nil
}

func sizeOpts(o TFTPOptions) []string {
	var s []string
	if o.Blksize > 0 {
		s = append(s, "blksize", strconv.Itoa(o.Blksize))
	}
	if o.Window > 0 {
		s = append(s, "windowsize", strconv.Itoa(o.Window))
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
			if binary.BigEndian.Uint16(buf) == opERROR {
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
	var opts []string
	if o.Tsize && !o.ProbeTsize {
		opts = append(opts, "tsize", "0")
	}
	opts = append(opts, sizeOpts(o)...)
	// One buffer for the whole transfer: the first answer is handled
	// (pending) before the next read reuses it.
	buf := make([]byte, 65536)
	p, tid, err := c.tftpAsk(ctx, conn, srv, rrq(name, opts...), buf)
	if err != nil {
		return 0, sum, err
	}
	blksize, window := 512, 1
	h := sha256.New()
	var total int64
	var last uint16 // last block received in order
	ackPkt := [4]byte{0, opACK}
	ack := func(b uint16) {
		binary.BigEndian.PutUint16(ackPkt[2:], b)
		conn.WriteToUDPAddrPort(ackPkt[:], tid)
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
				conn.WriteToUDPAddrPort(tftpErrorPacket(5, "unknown transfer ID"), from)
				continue
			}
			pending = buf[:n]
		}
		pkt := pending
		pending = nil
		if len(pkt) < 4 {
			continue
		}
		switch binary.BigEndian.Uint16(pkt) {
		case opOACK:
			m := parseOACK(pkt[2:])
			if v, err := strconv.Atoi(m["blksize"]); err == nil {
				blksize = v
			}
			if v, err := strconv.Atoi(m["windowsize"]); err == nil {
				window = v
			}
			ack(0)
		case opERROR:
			return total, sum, tftpError(pkt)
		case opDATA:
			timeouts = 0
			b := binary.BigEndian.Uint16(pkt[2:])
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
