package tftpclient

import "testing"

func TestUnwrapRollsOverFrom65535ToZero(t *testing.T) {
	tests := []struct {
		name string
		next int64
		wire uint16
		want int64
	}{
		{"first block", 1, 1, 1},
		{"last block before rollover", 65535, 65535, 65535},
		{"block 65536 travels as 0", 65536, 0, 65536},
		{"block 65537 travels as 1", 65537, 1, 65537},
		{"second rollover", 131072, 0, 131072},
		{"old block across the rollover", 65537, 65535, 65535},
		{"future block across the rollover", 65534, 2, 65538},
		{"block before the start", 1, 65535, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unwrap(tt.next, tt.wire); got != tt.want {
				t.Errorf("Unwrap(%d, %d) = %d, want %d", tt.next, tt.wire, got, tt.want)
			}
		})
	}
}

type pkt struct {
	block uint16
	n     int
}

// feed runs packets through a window and returns the ACKs it asked for.
func feed(w *Window, pkts []pkt) (acks []uint16, last Step) {
	for _, p := range pkts {
		last = w.Data(p.block, p.n)
		if last.Ack {
			acks = append(acks, last.AckBlock)
		}
	}
	return acks, last
}

func TestWindowAcksOnlyTheLastBlockOfEachWindow(t *testing.T) {
	w := NewWindow(512, 4)
	var pkts []pkt
	for b := uint16(1); b <= 8; b++ {
		pkts = append(pkts, pkt{b, 512})
	}
	acks, _ := feed(w, pkts)
	if want := []uint16{4, 8}; !equal(acks, want) {
		t.Errorf("acks = %v, want %v", acks, want)
	}
}

func TestLockstepAcksEveryBlock(t *testing.T) {
	w := NewWindow(512, 1)
	acks, _ := feed(w, []pkt{{1, 512}, {2, 512}, {3, 512}})
	if want := []uint16{1, 2, 3}; !equal(acks, want) {
		t.Errorf("acks = %v, want %v", acks, want)
	}
}

func TestWindowAcksLastInOrderBlockOnceOnGap(t *testing.T) {
	w := NewWindow(512, 8)
	// Block 3 is lost: 4, 5, 6 are beyond the gap; only the first gets an ACK.
	acks, _ := feed(w, []pkt{{1, 512}, {2, 512}, {4, 512}, {5, 512}, {6, 512}})
	if want := []uint16{2}; !equal(acks, want) {
		t.Fatalf("acks = %v, want %v", acks, want)
	}
	// The sender resumes at 3; the window counts from the gap ACK.
	acks, _ = feed(w, []pkt{{3, 512}, {4, 512}, {5, 512}, {6, 512}, {7, 512}, {8, 512}, {9, 512}, {10, 512}})
	if want := []uint16{10}; !equal(acks, want) {
		t.Errorf("acks after resend = %v, want %v", acks, want)
	}
}

func TestDuplicateIsAnsweredWithTheLastAckOnce(t *testing.T) {
	w := NewWindow(512, 1)
	feed(w, []pkt{{1, 512}, {2, 512}})
	acks, last := feed(w, []pkt{{2, 512}, {2, 512}})
	if want := []uint16{2}; !equal(acks, want) {
		t.Errorf("acks = %v, want %v", acks, want)
	}
	if !last.Dup || last.Accept {
		t.Errorf("duplicate step = %+v, want Dup and not Accept", last)
	}
}

func TestShortBlockEndsTheTransferAndIsAcked(t *testing.T) {
	w := NewWindow(512, 16)
	acks, last := feed(w, []pkt{{1, 512}, {2, 100}})
	if !last.Done || !equal(acks, []uint16{2}) {
		t.Errorf("done = %v, acks = %v; want done and [2]", last.Done, acks)
	}
}

func TestEmptyLastBlockEndsAFileOfWholeBlocks(t *testing.T) {
	w := NewWindow(512, 1)
	_, last := feed(w, []pkt{{1, 512}, {2, 0}})
	if !last.Done || last.Offset != 512 {
		t.Errorf("step = %+v, want Done at offset 512", last)
	}
}

func TestOffsetsFollowTheRollover(t *testing.T) {
	w := NewWindow(8, 64)
	var last Step
	for abs := int64(1); abs <= 65537; abs++ {
		last = w.Data(uint16(abs), 8)
		if !last.Accept {
			t.Fatalf("block %d (wire %d) not accepted: %+v", abs, uint16(abs), last)
		}
	}
	if want := int64(65536 * 8); last.Offset != want {
		t.Errorf("offset of block 65537 = %d, want %d", last.Offset, want)
	}
}

func TestTimeoutReAcksLastInOrderBlock(t *testing.T) {
	w := NewWindow(512, 8)
	if got := w.Timeout(); got != 0 {
		t.Errorf("timeout before data acks %d, want 0 (the OACK)", got)
	}
	feed(w, []pkt{{1, 512}, {2, 512}, {3, 512}})
	if got := w.Timeout(); got != 3 {
		t.Errorf("timeout acks %d, want 3", got)
	}
	// The window restarts after the re-ACK: 8 more blocks, then an ACK.
	var pkts []pkt
	for b := uint16(4); b <= 11; b++ {
		pkts = append(pkts, pkt{b, 512})
	}
	if acks, _ := feed(w, pkts); !equal(acks, []uint16{11}) {
		t.Errorf("acks after timeout = %v, want [11]", acks)
	}
}

func equal(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
