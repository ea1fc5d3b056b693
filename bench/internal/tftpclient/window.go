package tftpclient

// Unwrap maps a 16-bit wire block number to the absolute block number
// nearest to next, the absolute number of the block the receiver expects.
// Block numbers roll over from 65535 to 0 (RFC 1350 is silent; this is
// what 16-bit counters do and what common servers send for files over
// 32 MiB at 512-byte blocks), so absolute block 65536 travels as 0. The result is < next for old blocks and
// may be <= 0 for blocks from before the start.
func Unwrap(next int64, wire uint16) int64 {
	diff := int16(wire - uint16(next))
	return next + int64(diff)
}

// Step is the receiver's decision about one DATA packet.
type Step struct {
	// Accept: the payload is the next in-order block; it starts at Offset.
	Accept bool
	Offset int64
	// Ack: send an ACK for wire block AckBlock now.
	Ack      bool
	AckBlock uint16
	// Done: this was the last block (shorter than blksize).
	Done bool
	// Kind of an unaccepted packet, for counters.
	Dup, Gap bool
}

// Window is the receive side of RFC 7440 windowed transfer; window 1 is the
// lockstep of RFC 1350. It is pure: the I/O loop feeds it packets and
// timeouts and sends the ACKs it asks for.
type Window struct {
	blksize int
	window  int64
	next    int64 // absolute number of the next expected block
	lastAck int64 // absolute number last acknowledged
	// resynced: an ACK for an out-of-order packet went out since the last
	// in-order block; more out-of-order packets of the same window get none,
	// or every stale packet of a window would trigger a whole resend.
	resynced bool
}

// NewWindow starts a receiver that has acknowledged block 0 (the OACK).
func NewWindow(blksize, window int) *Window {
	if window < 1 {
		window = 1
	}
	return &Window{blksize: blksize, window: int64(window), next: 1}
}

// Next is the absolute number of the next expected block.
func (w *Window) Next() int64 { return w.next }

// Data handles a DATA packet with wire block number block and n payload bytes.
func (w *Window) Data(block uint16, n int) Step {
	abs := Unwrap(w.next, block)
	if abs != w.next {
		// RFC 7440 §4: on a gap the receiver acknowledges the last block it
		// received in order, so the sender resumes from there; a duplicate
		// means our last ACK was lost, and the same ACK answers it.
		s := Step{Dup: abs < w.next, Gap: abs > w.next}
		if !w.resynced {
			w.resynced = true
			s.Ack, s.AckBlock = true, w.ack()
		}
		return s
	}
	s := Step{Accept: true, Offset: (abs - 1) * int64(w.blksize)}
	w.next++
	w.resynced = false
	switch {
	case n < w.blksize:
		s.Done = true
		s.Ack, s.AckBlock = true, w.ack()
	case w.next-1-w.lastAck >= w.window:
		// RFC 7440 §4: ACK only the last block of each window.
		s.Ack, s.AckBlock = true, w.ack()
	}
	return s
}

// Timeout returns the ACK to re-send when nothing arrived in time: the last
// block received in order (block 0, the OACK's ACK, before any data).
func (w *Window) Timeout() uint16 {
	w.resynced = false
	return w.ack()
}

func (w *Window) ack() uint16 {
	w.lastAck = w.next - 1
	return uint16(w.lastAck)
}
