package tftp

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path"
	"time"
)

var errUploadTooLarge = errors.New("upload exceeds the size cap")

// runWrite receives one upload into the upload folder, in lockstep. It
// writes to a hidden temporary file and links it into place only when the
// last block arrived, so a crash or an aborted upload never leaves a partial
// file under the requested name, and an existing file is never overwritten.
func (s *Server) runWrite(listener *net.UDPConn, req Request, client netip.AddrPort, local netip.Addr, sl *slot) {
	start := time.Now()
	m := s.m
	m.started.WithLabelValues("write").Inc()
	if !s.begun(sl, "write") {
		return
	}
	log := s.log.With("client", client.String(), "file", req.Filename)
	fail := func(reason string, code ErrorCode, msg string) {
		m.failed.WithLabelValues("write", reason).Inc()
		s.refuse(listener, client, reason, code, msg, req.Filename)
	}
	if s.uploads == nil {
		fail("write_disabled", ErrAccess, "write requests are not accepted by this server")
		return
	}
	name, err := CleanName(req.Filename)
	if err != nil {
		reason, code := refusalFor(err)
		fail(reason, code, err.Error())
		return
	}
	if _, err := s.uploads.Lstat(name); err == nil {
		fail("exists", ErrFileExists, fmt.Sprintf("%q already exists", name))
		return
	} else if !errors.Is(err, fs.ErrNotExist) {
		reason, code := refusalFor(classifyOpenError(name, err))
		fail(reason, code, err.Error())
		return
	}
	p, err := Negotiate(req, Limits{MaxBlksize: s.cfg.MaxBlksize, MaxWindow: 1, MaxUpload: s.cfg.MaxUpload}, -1)
	if err != nil {
		reason, code := refusalFor(err)
		fail(reason, code, err.Error())
		return
	}
	tmp := path.Join(path.Dir(name), "."+path.Base(name)+".upload-"+randSuffix())
	f, err := s.uploads.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		reason, code := refusalFor(classifyOpenError(name, err))
		fail(reason, code, err.Error())
		return
	}
	defer func() {
		f.Close()
		_ = s.uploads.Remove(tmp) // after a successful link the name lives on
	}()
	conn, err := s.bindTransfer(local)
	if err != nil {
		fail("no_port", ErrUndefined, "server busy: "+err.Error())
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(sl.ctx, func() { conn.Close() })
	defer stop()

	c := &conversation{s: s, sl: sl, conn: conn, client: client, rbuf: make([]byte, p.Blksize+4+1)}
	c.startClock(cmp.Or(p.Timeout, s.cfg.Timeout))
	m.blksize.Observe(float64(p.Blksize))

	size, finalAck, err := c.receive(f, p)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		// Link refuses to replace an existing name: no overwrite, even racing.
		err = s.uploads.Link(tmp, name)
		if errors.Is(err, fs.ErrExist) {
			// Another upload of the same name won the race.
			m.failed.WithLabelValues("write", "exists").Inc()
			c.sendError(ErrFileExists, fmt.Sprintf("%q appeared during the upload", name))
			log.Info("tftp write lost a race for the name", "bytes", size)
			return
		}
	}
	if err == nil {
		_, _ = c.conn.WriteToUDPAddrPort(finalAck, c.client)
		c.dally(finalAck)
	}
	if s.endedUnacked(c, "write", err, log) {
		return
	}
	var ce *clientError
	switch {
	case err == nil:
		m.completed.WithLabelValues("write").Inc()
		m.duration.WithLabelValues("write").Observe(time.Since(start).Seconds())
		log.Info("tftp write done", "bytes", size, "blksize", p.Blksize, "ms", time.Since(start).Milliseconds())
	case errors.Is(err, errUploadTooLarge):
		m.failed.WithLabelValues("write", "too_large").Inc()
		c.sendError(ErrDiskFull, fmt.Sprintf("upload exceeds the cap of %d bytes", s.cfg.MaxUpload))
		log.Info("tftp write refused: too large", "cap", s.cfg.MaxUpload)
	case errors.As(err, &ce):
		m.failed.WithLabelValues("write", "client_error").Inc()
		log.Info("tftp write aborted by client", "code", int(ce.code), "msg", ce.msg)
	case errors.Is(err, errTransferTimeout):
		m.failed.WithLabelValues("write", "timeout").Inc()
		log.Info("tftp write timed out", "bytes", size)
	case s.ctx.Err() != nil:
		m.failed.WithLabelValues("write", "shutdown").Inc()
	default:
		m.failed.WithLabelValues("write", "io_error").Inc()
		c.sendError(ErrUndefined, "server error")
		log.Warn("tftp write failed", "err", err)
	}
}

// receive runs the lockstep DATA/ACK exchange and writes the payload to w.
// It returns with the final block received but not yet acknowledged; the
// caller commits the file, then calls finish with the returned ACK.
func (c *conversation) receive(w *os.File, p Params) (int64, []byte, error) {
	var (
		ack    []byte
		total  int64
		block  uint64 // last block received in order
		dec    netasciiDecoder
		outbuf []byte
	)
	if len(p.OACK) > 0 {
		ack = appendOACK(nil, p.OACK) // RFC 2347: the OACK stands in for ACK 0
	} else {
		ack = appendAck(nil, 0)
	}
	send := func() error {
		_, err := c.conn.WriteToUDPAddrPort(ack, c.client)
		return err
	}
	c.s.setFirstFlight(c.sl, c.conn, ack)
	if err := send(); err != nil {
		return 0, nil, err
	}
	deadline := time.Now().Add(c.rto)
	for {
		r, _, err := c.recv(deadline)
		if isTimeout(err) {
			if err := c.backoff(); err != nil {
				return total, nil, err
			}
			c.s.m.retransmits.Inc()
			if err := send(); err != nil {
				return total, nil, err
			}
			deadline = time.Now().Add(c.rto)
			continue
		}
		if err != nil {
			return total, nil, err
		}
		if r.op != opDATA || len(r.data) > p.Blksize {
			c.s.m.malformed.WithLabelValues("transfer").Inc()
			continue
		}
		want := wireNumber(block+1, p.RollTo)
		if r.block != want {
			// A retransmitted block we already have: ACK it again, once per copy.
			if r.block == wireNumber(block, p.RollTo) {
				_ = send()
			}
			continue
		}
		block++
		payload := r.data
		if p.Netascii {
			outbuf = dec.decode(outbuf[:0], payload)
			if len(r.data) < p.Blksize {
				outbuf = dec.flush(outbuf)
			}
			payload = outbuf
		}
		total += int64(len(payload))
		if total > c.s.cfg.MaxUpload {
			return total, nil, errUploadTooLarge
		}
		if _, err := w.Write(payload); err != nil {
			return total, nil, fmt.Errorf("write upload: %w", err)
		}
		c.s.m.bytesRecv.Add(float64(len(r.data)))
		if err := c.progress(); err != nil {
			return total, nil, err
		}
		ack = appendAck(ack[:0], r.block)
		if len(r.data) < p.Blksize {
			// The final ACK waits until the file is in place: a client that
			// saw success must find its upload there.
			return total, ack, nil
		}
		if err := send(); err != nil {
			return total, nil, err
		}
		deadline = time.Now().Add(c.rto)
	}
}

// dally re-acknowledges a retransmitted final block for one timeout, so a
// lost final ACK does not make the client report failure (RFC 1350 section 6).
func (c *conversation) dally(ack []byte) {
	deadline := time.Now().Add(c.rto)
	for {
		r, _, err := c.recv(deadline)
		if err != nil {
			return
		}
		if r.op == opDATA {
			_, _ = c.conn.WriteToUDPAddrPort(ack, c.client)
		}
	}
}

func randSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
