package tftp

import (
	"bytes"
	"io"
	"testing"
)

func TestWindowContinuesAfterAckInsideWindow(t *testing.T) {
	w := window{size: 4, last: 100}
	from, upTo := w.next()
	if from != 1 || upTo != 4 {
		t.Fatalf("first window %d..%d, want 1..4", from, upTo)
	}
	w.sent = 4
	// The client saw 1 and 2 then a gap: it acks 2, we go on from 3 (RFC 7440).
	n, ok := w.ack(2)
	if !ok || n != 2 || !w.onAck(n) {
		t.Fatalf("ack 2: n=%d ok=%v", n, ok)
	}
	if from, upTo := w.next(); from != 3 || upTo != 6 {
		t.Fatalf("after ack 2: %d..%d, want 3..6", from, upTo)
	}
}

func TestWindowIgnoresDuplicateAck(t *testing.T) {
	w := window{size: 4, last: 100, acked: 4, sent: 8}
	n, ok := w.ack(4)
	if !ok || n != 4 {
		t.Fatalf("ack 4 maps to %d ok=%v", n, ok)
	}
	if w.onAck(n) {
		t.Fatal("a duplicate ACK moved the window (Sorcerer's Apprentice)")
	}
	if w.sent != 8 {
		t.Fatalf("duplicate ACK rewound sent to %d", w.sent)
	}
}

func TestWindowIgnoresAckOutsideWindow(t *testing.T) {
	w := window{size: 4, last: 100, acked: 8, sent: 12}
	for _, a := range []uint16{3, 7, 13, 60000} {
		if n, ok := w.ack(a); ok {
			t.Errorf("ack %d accepted as block %d outside [8,12]", a, n)
		}
	}
}

func TestWindowResendsFromLastAckOnTimeout(t *testing.T) {
	w := window{size: 8, last: 100, acked: 16, sent: 24}
	w.onTimeout()
	if from, upTo := w.next(); from != 17 || upTo != 24 {
		t.Fatalf("after timeout %d..%d, want 17..24", from, upTo)
	}
}

func TestWindowStopsAtLastBlock(t *testing.T) {
	w := window{size: 64, last: 10, acked: 5, sent: 5}
	if from, upTo := w.next(); from != 6 || upTo != 10 {
		t.Fatalf("%d..%d, want 6..10", from, upTo)
	}
	w.sent = 10
	n, _ := w.ack(10)
	w.onAck(n)
	if !w.done() {
		t.Fatal("not done after the last block was acked")
	}
}

func TestWindowRollsBlockNumbersOver(t *testing.T) {
	cases := []struct {
		rollTo uint16
		n      uint64
		wire   uint16
	}{
		{0, 65535, 65535}, {0, 65536, 0}, {0, 65537, 1}, {0, 131072, 0},
		{1, 65535, 65535}, {1, 65536, 1}, {1, 65537, 2}, {1, 131070, 65535}, {1, 131071, 1},
	}
	for _, c := range cases {
		if got := wireNumber(c.n, c.rollTo); got != c.wire {
			t.Errorf("rollTo %d: block %d is wire %d, want %d", c.rollTo, c.n, got, c.wire)
		}
	}
}

func TestWindowMapsAcksAcrossRollover(t *testing.T) {
	// Sent up to block 65540 (wire 4 rolling to 0); acked 65532.
	w := window{size: 16, last: 1 << 20, acked: 65532, sent: 65540}
	for _, c := range []struct {
		wire uint16
		want uint64
	}{{65535, 65535}, {0, 65536}, {4, 65540}, {65533, 65533}} {
		if n, ok := w.ack(c.wire); !ok || n != c.want {
			t.Errorf("roll to 0: ack %d -> %d ok=%v, want %d", c.wire, n, ok, c.want)
		}
	}
	// A client that rolls to 1 acknowledges block 65540 as 5 (wire 1 stays
	// ambiguous: in the roll-to-0 reading it is 65537, which wins).
	for _, c := range []struct {
		wire uint16
		want uint64
	}{{5, 65540}} {
		if n, ok := w.ack(c.wire); !ok || n != c.want {
			t.Errorf("roll to 1 tolerated: ack %d -> %d ok=%v, want %d", c.wire, n, ok, c.want)
		}
	}
	w1 := window{size: 16, last: 1 << 20, acked: 65532, sent: 65540, rollTo: 1}
	if n, ok := w1.ack(5); !ok || n != 65540 {
		t.Errorf("negotiated roll to 1: ack 5 -> %d ok=%v, want 65540", n, ok)
	}
}

func TestSourcesYieldSameBlocks(t *testing.T) {
	for _, size := range []int{0, 1, 511, 512, 513, 5000} {
		data := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		mem := &memSource{data: data, bs: 512}
		st := newStreamSource(bytes.NewReader(data), 512, 4)
		var got []byte
		for n := uint64(1); ; n++ {
			a, err := mem.block(n)
			if err != nil {
				t.Fatalf("size %d mem block %d: %v", size, n, err)
			}
			b, err := st.block(n)
			if err != nil {
				t.Fatalf("size %d stream block %d: %v", size, n, err)
			}
			if !bytes.Equal(a, b) {
				t.Fatalf("size %d block %d differs", size, n)
			}
			got = append(got, a...)
			if len(a) < 512 {
				if mem.lastBlock() != n || st.lastBlock() != n {
					t.Fatalf("size %d: final block %d, mem says %d, stream %d", size, n, mem.lastBlock(), st.lastBlock())
				}
				break
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("size %d: reassembled %d bytes differ", size, len(got))
		}
	}
}

func TestStreamSourceRereadsWindowWithoutTheFile(t *testing.T) {
	data := make([]byte, 10*8)
	for i := range data {
		data[i] = byte(i)
	}
	st := newStreamSource(io.MultiReader(bytes.NewReader(data)), 8, 4)
	for n := uint64(1); n <= 4; n++ {
		if _, err := st.block(n); err != nil {
			t.Fatal(err)
		}
	}
	// A timeout resends blocks 1..4: they come from the ring, not the reader.
	for n := uint64(1); n <= 4; n++ {
		b, err := st.block(n)
		if err != nil || b[0] != byte((n-1)*8) {
			t.Fatalf("re-read block %d: % x %v", n, b, err)
		}
	}
	if _, err := st.block(6); err != nil {
		t.Fatal(err)
	}
	if _, err := st.block(1); err == nil {
		t.Fatal("block 1 served after it left the window")
	}
}
