package tftp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// TestSteadyStateDoesNotAllocatePerBlock fetches 16 MiB (11,430 blocks at
// 1468) with windowsize 16 from a cached file and counts heap allocations
// over the whole process: setup may allocate, blocks must not.
func TestSteadyStateDoesNotAllocatePerBlock(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	data := bytes.Repeat([]byte("osim"), 4<<20)
	res := &countingResolver{files: map[string][]byte{"nbp": data}}
	srv, err := NewServer(Config{}, NewCache(res, 64<<20, 64<<20, NewMetrics(nil)))
	if err != nil {
		t.Fatal(err)
	}
	srvAddr, cl := serveLoopback(t, srv)
	cl.SetReadBuffer(4 << 20)
	const bs, win = 1468, 16
	fetch := func(name string) (int, uint64) {
		req := rrq(opRRQ, name, "octet", "blksize", "1468", "windowsize", "16")
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := cl.WriteToUDP(req, srvAddr); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65536)
		ack := make([]byte, 4)
		binary.BigEndian.PutUint16(ack, opACK)
		total, block := 0, uint64(0)
		var peer netip.AddrPort
		cl.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			n, from, err := cl.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("read after %d bytes: %v", total, err)
			}
			peer = from
			op := binary.BigEndian.Uint16(buf)
			if op == opOACK {
				binary.BigEndian.PutUint16(ack[2:], 0)
				cl.WriteToUDPAddrPort(ack, peer)
				continue
			}
			if op != opDATA || uint16(block+1) != binary.BigEndian.Uint16(buf[2:]) {
				t.Fatalf("unexpected packet % x after block %d", buf[:4], block)
			}
			block++
			total += n - 4
			if n-4 < bs || block%win == 0 {
				binary.BigEndian.PutUint16(ack[2:], uint16(block))
				cl.WriteToUDPAddrPort(ack, peer)
			}
			if n-4 < bs {
				break
			}
		}
		for srv.Active() > 0 {
			time.Sleep(time.Millisecond)
		}
		runtime.ReadMemStats(&after)
		return total, after.Mallocs - before.Mallocs
	}
	fetch("nbp") // warm the cache and the pools
	total, mallocs := fetch("nbp")
	if total != len(data) {
		t.Fatalf("got %d bytes, want %d", total, len(data))
	}
	blocks := uint64(len(data)/bs + 1)
	t.Logf("%d blocks, %d allocations in the whole process", blocks, mallocs)
	if mallocs > blocks/20 {
		t.Fatalf("%d allocations for %d blocks: the per-block path allocates", mallocs, blocks)
	}
}
