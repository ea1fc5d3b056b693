package tftp

import (
	"encoding/binary"
	"testing"
)

// FuzzParseRequest feeds arbitrary bytes to the request parser and the
// negotiation that follows it: no panic, and anything accepted respects the
// protocol bounds. Seeds live in testdata/fuzz/FuzzParseRequest.
func FuzzParseRequest(f *testing.F) {
	f.Add(rrq(opRRQ, "snponly.efi", "octet", "tsize", "0", "blksize", "1468", "windowsize", "4"))
	f.Add(rrq(opRRQ, "undionly.kpxe", "octet", "blksize", "1432", "tsize", "0"))
	f.Add(rrq(opWRQ, "up", "netascii", "tsize", "10"))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		req, err := ParseRequest(pkt)
		if err != nil {
			return
		}
		if req.Filename == "" || (req.Mode != "octet" && req.Mode != "netascii") {
			t.Fatalf("accepted a request without filename or known mode: %+v", req)
		}
		_, _ = CleanName(req.Filename)
		p, err := Negotiate(req, Limits{MaxBlksize: 1468, MaxWindow: 64, MaxUpload: 1 << 20}, 12345)
		if err != nil {
			return
		}
		if p.Blksize < minBlksize || p.Blksize > 1468 || p.Window < 1 || p.Window > 64 {
			t.Fatalf("negotiated out of bounds: %+v", p)
		}
		if len(p.OACK) > len(req.Options) {
			t.Fatalf("OACK has options the client did not ask for: %+v vs %+v", p.OACK, req.Options)
		}
	})
}

// FuzzTransferReplies drives a sender's window with arbitrary packets as a
// client would send them on a transfer port: ACKs (any number, rollover
// included), ERRORs, garbage. The window must never move backwards, never
// pass what was sent, and never ask for blocks past the end.
func FuzzTransferReplies(f *testing.F) {
	f.Add(uint16(4), uint32(70000), []byte{0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 8, 0, 5, 0, 8, 'x', 0})
	f.Add(uint16(1), uint32(10), []byte{0, 4, 0, 1, 0, 4, 0, 1, 0, 4, 0, 2})
	f.Add(uint16(64), uint32(200000), []byte{0, 4, 0xff, 0xff, 0, 4, 0, 0, 0, 4, 0, 1})
	f.Fuzz(func(t *testing.T, size uint16, last uint32, stream []byte) {
		if size == 0 || last == 0 {
			return
		}
		w := window{size: uint64(size), last: uint64(last)}
		_, w.sent = w.next()
		for len(stream) >= 4 {
			l := 4
			if binary.BigEndian.Uint16(stream) == opERROR {
				l = len(stream)
			}
			pkt := stream[:l]
			stream = stream[l:]
			r, err := parseReply(pkt)
			if err != nil || r.op != opACK {
				_ = errorMessage(pkt)
				continue
			}
			before := w.acked
			n, ok := w.ack(r.block)
			if !ok {
				continue
			}
			if n < before || n > w.sent {
				t.Fatalf("ack %d mapped to %d outside [%d,%d]", r.block, n, before, w.sent)
			}
			if w.wire(n) != r.block && wireNumber(n, 1) != r.block {
				t.Fatalf("ack %d mapped to block %d whose wire number differs", r.block, n)
			}
			w.onAck(n)
			if w.acked < before {
				t.Fatalf("window moved back from %d to %d", before, w.acked)
			}
			if w.done() {
				return
			}
			from, upTo := w.next()
			if upTo > w.last || from < w.acked+1 || upTo > w.acked+w.size {
				t.Fatalf("next %d..%d outside window acked=%d size=%d last=%d", from, upTo, w.acked, w.size, w.last)
			}
			w.sent = upTo
		}
	})
}
