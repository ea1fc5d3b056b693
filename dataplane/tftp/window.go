package tftp

import (
	"errors"
	"fmt"
	"io"
)

// window is the sender's view of a read transfer, free of I/O so tests can
// drive it packet by packet. Blocks are numbered from 1 on 64 bits; only the
// wire carries 16-bit numbers.
type window struct {
	size   uint64 // negotiated windowsize (RFC 7440), 1 = lockstep
	acked  uint64 // every block <= acked is acknowledged
	sent   uint64 // highest block handed to the socket
	last   uint64 // number of the final block, 0 while unknown
	rollTo uint16 // wire number after 65535: 0 or 1
}

// wire is the 16-bit block number of block n.
func (w *window) wire(n uint64) uint16 { return wireNumber(n, w.rollTo) }

func wireNumber(n uint64, rollTo uint16) uint16 {
	if rollTo == 0 || n <= 65535 {
		return uint16(n)
	}
	return uint16((n-1)%65535 + 1)
}

// ack maps a wire ACK number to the block it acknowledges, searching
// [acked, sent]. It accepts both rollover conventions: whichever one the
// client follows, the block it means is in that span.
func (w *window) ack(a uint16) (uint64, bool) {
	// The negotiated convention first; before the first wrap both agree.
	// Roll to 0: the distance back from sent is modular.
	if w.rollTo == 0 || w.sent <= 65535 {
		if d := uint64(uint16(w.sent) - a); d <= w.sent-w.acked {
			return w.sent - d, true
		}
	}
	// Roll to 1, negotiated or not: the client counts 65535, 1, 2, ...
	for n := w.sent; ; n-- {
		if wireNumber(n, 1) == a {
			return n, true
		}
		if n == w.acked {
			return 0, false
		}
	}
}

// onAck records an acknowledgement of block n (from ack). It reports whether
// it moved the window; a duplicate moves nothing and must not cause a send
// (Sorcerer's Apprentice, RFC 1123 4.2.3.1). An ACK inside the window is
// where the client saw a gap: sending continues from n+1 (RFC 7440 4).
func (w *window) onAck(n uint64) bool {
	if n <= w.acked {
		return false
	}
	w.acked = n
	w.sent = n
	return true
}

// onTimeout rewinds to resend from the last acknowledged block + 1 (RFC 7440 4).
func (w *window) onTimeout() { w.sent = w.acked }

// done reports whether the final block is acknowledged.
func (w *window) done() bool { return w.last != 0 && w.acked >= w.last }

// next is the span of blocks to send now: (sent, upTo].
func (w *window) next() (from, upTo uint64) {
	upTo = w.acked + w.size
	if w.last != 0 && upTo > w.last {
		upTo = w.last
	}
	return w.sent + 1, upTo
}

// blockSource yields the payload of block n. The engine only asks for blocks
// in (acked, acked+window], in any order within that span, and never for a
// block below one it asked for after acked moved past it. A payload shorter
// than the block size is the final block.
type blockSource interface {
	block(n uint64) ([]byte, error)
	// lastBlock is the final block's number, 0 while unknown.
	lastBlock() uint64
}

var errBeyondEnd = errors.New("block beyond the end of the file")

// memSource serves blocks straight out of a shared byte slice: no copy.
type memSource struct {
	data []byte
	bs   uint64
}

func (m *memSource) block(n uint64) ([]byte, error) {
	off := (n - 1) * m.bs
	if n == 0 || off > uint64(len(m.data)) {
		return nil, fmt.Errorf("%w: block %d", errBeyondEnd, n)
	}
	end := min(off+m.bs, uint64(len(m.data)))
	return m.data[off:end], nil
}

func (m *memSource) lastBlock() uint64 { return uint64(len(m.data))/m.bs + 1 }

// streamSource reads blocks from a stream into a ring of one window of
// blocks: memory per transfer is bounded by blksize x windowsize.
type streamSource struct {
	r      io.Reader
	bs     uint64
	ring   []byte
	lens   []int
	slots  uint64
	loaded uint64 // highest block read
	last   uint64
}

func newStreamSource(r io.Reader, blksize, window int) *streamSource {
	return &streamSource{
		r: r, bs: uint64(blksize), slots: uint64(window),
		ring: make([]byte, blksize*window), lens: make([]int, window),
	}
}

func (s *streamSource) block(n uint64) ([]byte, error) {
	if n == 0 || (s.last != 0 && n > s.last) {
		return nil, fmt.Errorf("%w: block %d", errBeyondEnd, n)
	}
	if n+s.slots <= s.loaded {
		return nil, fmt.Errorf("tftp: block %d already left the window (loaded %d)", n, s.loaded)
	}
	for s.loaded < n {
		k := s.loaded + 1
		i := k % s.slots
		buf := s.ring[i*s.bs : (i+1)*s.bs]
		m, err := io.ReadFull(s.r, buf)
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			s.last = k
		default:
			return nil, fmt.Errorf("read block %d: %w", k, err)
		}
		s.lens[i] = m
		s.loaded = k
	}
	i := n % s.slots
	return s.ring[i*s.bs : i*s.bs+uint64(s.lens[i])], nil
}

func (s *streamSource) lastBlock() uint64 { return s.last }
