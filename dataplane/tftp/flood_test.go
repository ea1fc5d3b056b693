package tftp_test

// Requests that never acknowledge (issue 11 item 9): forged sources can fill
// transfer slots and draw packets at someone else. They form a small class
// of their own; these tests flood it and check that real clients, and
// transfers already acknowledged, never pay for it.

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"osim/dataplane/tftp"
	"osim/internal/testlab"
	"osim/internal/udpflood"
)

// flood sends read requests from many sockets, each bound to its own
// loopback address (127.77.x.y, as varied as forged sources), and never
// acknowledges anything. Each socket asks for every file once, so no request
// repeats another's bytes and port (which would be folded as a retry).
type flood struct {
	*udpflood.Sources
	requests  int
	reqBytes  int
	sentAfter time.Duration
}

func startFlood(t *testing.T, server netip.AddrPort, sources int, files []string) *flood {
	t.Helper()
	src, err := udpflood.Open(sources, 77)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	f := &flood{Sources: src}
	var rrqs [][]byte
	for _, name := range files {
		rrqs = append(rrqs, request(opRRQ, name, "octet"))
	}
	start := time.Now()
	if err := src.Send(server, 0, rrqs...); err != nil {
		t.Fatal(err)
	}
	f.sentAfter = time.Since(start)
	for _, r := range rrqs {
		f.requests += sources
		f.reqBytes += sources * len(r)
	}
	return f
}

func floodFiles(t *testing.T, root string, n int) []string {
	t.Helper()
	var names []string
	for i := range n {
		name := "flood-" + strconv.Itoa(i) + ".bin"
		writeFile(t, root, name, patternBytes(uint64(100+i), 64*1024))
		names = append(names, name)
	}
	return names
}

func TestRealClientsServedDuringUnackedFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods 10,400 requests")
	}
	root := t.TempDir()
	files := floodFiles(t, root, 4)
	data := patternBytes(7, 1<<20)
	writeFile(t, root, "ipxe.efi", data)
	// Defaults, as shipped: 10,000 transfers, 256 unacknowledged, 2 s first-ACK budget.
	ts := startServer(t, tftp.Config{}, root)

	// Real clients are other processes, as real ones are other machines: a
	// client in this process would share the scheduler with the server's
	// flood of goroutines. atftp starts while the flood is being sent and
	// negotiates options (the OACK path), tftp-hpa comes right after the
	// flood with none (DATA 1 first): the case.
	testlab.RequireTool(t, "atftp", "atftp")
	testlab.RequireTool(t, "tftp", "tftp-hpa")
	port := strconv.Itoa(int(ts.addr.Port()))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	during := make(chan error, 1)
	duringFile := filepath.Join(t.TempDir(), "during")
	var duringTook time.Duration
	go func() {
		time.Sleep(20 * time.Millisecond)
		start := time.Now()
		_, err := runTool(ctx, "atftp", "--option", "blksize 1468", "--option", "windowsize 16",
			"-g", "-r", "ipxe.efi", "-l", duringFile, "127.0.0.1", port)
		duringTook = time.Since(start)
		during <- err
	}()
	fl := startFlood(t, ts.addr, 2600, files) // 10,400 requests
	t.Logf("flood: %d requests (%d bytes) sent in %v", fl.requests, fl.reqBytes, fl.sentAfter.Round(time.Millisecond))

	after := filepath.Join(t.TempDir(), "after")
	start := time.Now()
	out, err := runTool(ctx, "tftp", "-v", "127.0.0.1", port, "-m", "binary", "-c", "get", "ipxe.efi", after)
	if err == nil {
		err = tftpHpaFailed(out)
	}
	if err != nil {
		t.Fatalf("tftp-hpa right after the flood: %v", err)
	}
	t.Logf("tftp-hpa right after the flood: %v", time.Since(start).Round(time.Millisecond))
	if err := <-during; err != nil {
		t.Fatalf("atftp during the flood: %v", err)
	}
	t.Logf("atftp during the flood: %v", duringTook.Round(time.Millisecond))
	for _, f := range []string{after, duringFile} {
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sameBytes(t, "ipxe.efi as "+filepath.Base(f)+" the flood", got, data)
	}

	ts.waitIdle(t, 30*time.Second)
	if n := ts.metric(t, "osim_tftp_refusals_total"); n != 0 {
		t.Errorf("refusals_total = %v, want 0: nobody may be told the server is busy", n)
	}
	if n := ts.metric(t, "osim_tftp_unacked_evicted_total"); n == 0 {
		t.Errorf("unacked_evicted_total = 0 after %d requests that never acknowledged, want > 0", fl.requests)
	}
	// Reflection: at most the first flight and one resend per forged request.
	byOp, replyBytes := fl.Replies()
	if byOp[opDATA] > 2*fl.requests {
		t.Errorf("the flood drew %d DATA packets for %d requests, want at most 2 each", byOp[opDATA], fl.requests)
	}
	if ratio := float64(replyBytes) / float64(fl.reqBytes); ratio > 2*516/float64(len(request(opRRQ, files[0], "octet"))) {
		t.Errorf("reply/request bytes = %.1f, want at most two 516-byte DATA per request", ratio)
	}
	if n := ts.metric(t, "osim_tftp_retransmits_total"); n > float64(fl.requests)+50 {
		t.Errorf("retransmits_total = %v for %d forged requests, want at most one each (+50 for the real clients)", n, fl.requests)
	}
	t.Logf("flood replies: %v, %d bytes for %d request bytes (%.1fx); evicted %v, first-ACK timeouts %v",
		byOp, replyBytes, fl.reqBytes, float64(replyBytes)/float64(fl.reqBytes),
		ts.metric(t, "osim_tftp_unacked_evicted_total"), ts.metric(t, "osim_tftp_first_ack_timeouts_total"))
}

func TestUnackedFloodNeverEvictsAnAcknowledgedTransfer(t *testing.T) {
	root := t.TempDir()
	files := floodFiles(t, root, 2)
	data := patternBytes(3, 200_000)
	writeFile(t, root, "snponly.efi", data)
	// A tight table: 4 transfers in all, 2 of them unacknowledged at most.
	ts := startServer(t, tftp.Config{MaxTransfers: 4, MaxUnacked: 2}, root)
	held := listenClient(t, 127, 0, 0, 2)
	gate := make(chan struct{})
	done := make(chan error, 1)
	var got []byte
	go func() {
		res, err := fetch{name: "snponly.efi", timeout: time.Second, onFirstAck: func(netip.AddrPort) {
			<-gate
		}}.run(held, ts.addr)
		got = res.data
		done <- err
	}()
	waitFor(t, 2*time.Second, "held transfer not started", func() bool { return ts.srv.Active() == 1 })
	waitAcknowledged(t, ts)

	// 2 unacknowledged places, each held 50 ms at least: 80 requests take 2 s.
	fl := startFlood(t, ts.addr, 40, files)
	waitFor(t, 10*time.Second, "flood not through", func() bool {
		return ts.metric(t, "osim_tftp_transfers_started_total") >= float64(fl.requests+1)
	})
	if n := ts.metric(t, "osim_tftp_unacked_evicted_total"); n == 0 {
		t.Errorf("unacked_evicted_total = 0 after %d requests for 2 places", fl.requests)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("acknowledged transfer during the flood: %v", err)
	}
	sameBytes(t, "snponly.efi held through the flood", got, data)
	ts.waitIdle(t, 10*time.Second)
	if n := ts.metric(t, "osim_tftp_transfers_failed_total", "reason", "evicted"); n == 0 {
		t.Errorf(`transfers_failed_total{reason="evicted"} = 0, want the flood's transfers there`)
	}
	if n := ts.metric(t, "osim_tftp_transfers_completed_total", "direction", "read"); n != 1 {
		t.Errorf("completed reads = %v, want 1 (the acknowledged one)", n)
	}
	if n := ts.metric(t, "osim_tftp_refusals_total"); n != 0 {
		t.Errorf("refusals_total = %v, want 0", n)
	}
}

func TestUnackedClassFullEvictsOldestFirst(t *testing.T) {
	root := t.TempDir()
	data := patternBytes(5, 10_000)
	writeFile(t, root, "pxelinux.0", data)
	// Acknowledged transfers give up fast, so the test ends without waiting.
	ts := startServer(t, tftp.Config{MaxUnacked: 3, Timeout: 50 * time.Millisecond,
		MaxTimeout: 100 * time.Millisecond, Retries: 2}, root)
	// Three requests that do not acknowledge yet, one after the other.
	var conns []*net.UDPConn
	var tids []netip.AddrPort
	for i := range 4 {
		c := listenClient(t, 127, 0, 0, byte(10+i))
		if _, err := c.WriteToUDPAddrPort(request(opRRQ, "pxelinux.0", "octet"), ts.addr); err != nil {
			t.Fatal(err)
		}
		p, tid, err := readPacket(c, 2*time.Second)
		if err != nil || p.op != opDATA || p.block != 1 {
			t.Fatalf("request %d: want DATA 1, got %+v, %v", i, p, err)
		}
		conns, tids = append(conns, c), append(tids, tid)
	}
	// The fourth made room by ending the first.
	waitFor(t, 2*time.Second, "no eviction", func() bool {
		return ts.metric(t, "osim_tftp_unacked_evicted_total") == 1
	})
	if n := ts.metric(t, "osim_tftp_unacked_transfers"); n != 3 {
		t.Errorf("unacked_transfers = %v, want 3", n)
	}
	if _, err := conns[0].WriteToUDPAddrPort(ackPacket(1), tids[0]); err != nil {
		t.Fatal(err)
	}
	if gotData2(conns[0], 300*time.Millisecond) {
		t.Errorf("the oldest unacknowledged transfer went on after a newer request needed its place")
	}
	for i := 1; i < 4; i++ {
		if _, err := conns[i].WriteToUDPAddrPort(ackPacket(1), tids[i]); err != nil {
			t.Fatal(err)
		}
		if !gotData2(conns[i], 2*time.Second) {
			t.Errorf("transfer %d (newer than the evicted one): no DATA 2 after ACK 1", i)
		}
	}
	// The evicted client retries its request, same bytes, same port: it is a
	// new transfer now, not folded into the one that is gone.
	res, err := fetch{name: "pxelinux.0"}.run(conns[0], ts.addr)
	if err != nil {
		t.Fatalf("retry after eviction: %v", err)
	}
	sameBytes(t, "pxelinux.0 after eviction", res.data, data)
}

// gotData2 reads until DATA 2 arrives (true) or the line is quiet for d;
// copies of DATA 1 (the first flight's resend) are skipped.
func gotData2(conn *net.UDPConn, d time.Duration) bool {
	for {
		p, _, err := readPacket(conn, d)
		if err != nil {
			return false
		}
		if p.op == opDATA && p.block == 2 {
			return true
		}
	}
}

func TestUnacknowledgedRequestDrawsAtMostTwoPackets(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "core.0", patternBytes(11, 100_000))
	cases := []struct {
		name string
		op   uint16
		opts []string
		want uint16 // opcode of the first flight
	}{
		{"data-1", opRRQ, nil, opDATA},
		// The client asks a retransmit timeout of 1 s: before the first ACK
		// the server's own first-ACK budget applies.
		{"oack", opRRQ, []string{"timeout", "1", "blksize", "1468", "windowsize", "64", "tsize", "0"}, opOACK},
		// An upload that never sends DATA 1: ACK 0 twice.
		{"wrq-ack-0", opWRQ, nil, opACK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// A long retransmit budget for acknowledged transfers, which must
			// not apply before the first ACK.
			ts := startServer(t, tftp.Config{Timeout: 100 * time.Millisecond, MaxTimeout: time.Second, Retries: 10,
				FirstAckTimeout: 400 * time.Millisecond, UploadDir: t.TempDir()}, root)
			conn := listenClient(t)
			if _, err := conn.WriteToUDPAddrPort(request(c.op, "core.0", "octet", c.opts...), ts.addr); err != nil {
				t.Fatal(err)
			}
			var got int
			for {
				p, _, err := readPacket(conn, time.Second)
				if err != nil {
					break
				}
				if p.op != c.want {
					t.Errorf("got opcode %d, want only %d", p.op, c.want)
				}
				got++
			}
			if got != 2 {
				t.Errorf("an unacknowledged request drew %d packets, want 2 (first flight and one resend)", got)
			}
			ts.waitIdle(t, 2*time.Second)
			if n := ts.metric(t, "osim_tftp_first_ack_timeouts_total"); n != 1 {
				t.Errorf("first_ack_timeouts_total = %v, want 1", n)
			}
			if n := ts.metric(t, "osim_tftp_transfers_failed_total", "reason", "first_ack_timeout"); n != 1 {
				t.Errorf(`transfers_failed_total{reason="first_ack_timeout"} = %v, want 1`, n)
			}
		})
	}
}

func TestRetriedRequestBeforeFirstAckIsAnswered(t *testing.T) {
	// A client that saw neither the first flight nor its one resend asks
	// again after its own timer: within FirstAckTimeout the retried request
	// is answered by the waiting transfer, which then goes on.
	root := t.TempDir()
	data := patternBytes(17, 3000)
	writeFile(t, root, "ldlinux.c32", data)
	ts := startServer(t, tftp.Config{Timeout: 50 * time.Millisecond, FirstAckTimeout: 2 * time.Second}, root)
	conn := listenClient(t)
	if _, err := conn.WriteToUDPAddrPort(request(opRRQ, "ldlinux.c32", "octet"), ts.addr); err != nil {
		t.Fatal(err)
	}
	for range 2 { // first flight and its resend, both "lost"
		if p, _, err := readPacket(conn, time.Second); err != nil || p.op != opDATA {
			t.Fatalf("want DATA 1: %+v, %v", p, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	res, err := fetch{name: "ldlinux.c32"}.run(conn, ts.addr) // asks again: same bytes, same port
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "ldlinux.c32", res.data, data)
	if n := ts.metric(t, "osim_tftp_duplicate_requests_total"); n != 1 {
		t.Errorf("duplicate_requests_total = %v, want 1: the retry joins the waiting transfer", n)
	}
}
