package tftp_test

// The engine on the wire: through a lossy relay (drops, reorders,
// duplicates), against a windowed RFC 7440 client written here, and in the
// situations a PXE fleet produces: vanished clients, retried requests, the
// UEFI tsize probe, stray packets, full tables, hostile names, shutdown.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"osim/dataplane/tftp"
)

// lossyConfig is a server that retransmits fast, so loss costs milliseconds.
func lossyConfig() tftp.Config {
	return tftp.Config{Timeout: 50 * time.Millisecond, MaxTimeout: 200 * time.Millisecond, Retries: 20}
}

func TestLossyWindowedReadDeliversExactBytes(t *testing.T) {
	profiles := []struct {
		name               string
		toServer, toClient impairment
	}{
		{"drop", impairment{drop: 0.08}, impairment{drop: 0.08}},
		{"reorder", impairment{reorder: 0.15}, impairment{reorder: 0.15}},
		{"duplicate", impairment{dup: 0.2}, impairment{dup: 0.2}},
		{"all-at-once", impairment{drop: 0.05, reorder: 0.05, dup: 0.05}, impairment{drop: 0.05, reorder: 0.1, dup: 0.05}},
	}
	// Three full windows of 64 and a short last block, at 512 bytes.
	data := patternBytes(77, 3*64*512+100)
	root := t.TempDir()
	writeFile(t, root, "pxelinux.0", data)
	for _, window := range []int{1, 4, 16, 64} {
		for i, p := range profiles {
			t.Run(fmt.Sprintf("window-%d/%s", window, p.name), func(t *testing.T) {
				t.Parallel()
				ts := startServer(t, lossyConfig(), root)
				r := startRelay(t, ts.addr, uint64(window*10+i), p.toServer, p.toClient)
				res, err := fetch{
					name: "pxelinux.0", opts: []string{"blksize", "512", "windowsize", strconv.Itoa(window)},
					dally: 500 * time.Millisecond,
				}.run(listenClient(t), r.addr())
				if err != nil {
					t.Fatal(err)
				}
				if got := res.oack["windowsize"]; got != strconv.Itoa(window) {
					t.Errorf("OACK windowsize = %q, want %d", got, window)
				}
				sameBytes(t, "pxelinux.0 through the relay", res.data, data)
				ts.waitIdle(t, 5*time.Second)
				t.Logf("server: %v retransmits, %v duplicate ACKs ignored",
					ts.metric(t, "osim_tftp_retransmits_total"), ts.metric(t, "osim_tftp_duplicate_acks_total"))
				if n := ts.metric(t, "osim_tftp_transfers_completed_total", "direction", "read"); n != 1 {
					t.Errorf("completed reads = %v, want 1 (failed: %v)", n, ts.metric(t, "osim_tftp_transfers_failed_total"))
				}
			})
		}
	}
}

func TestLossyDuplicateAcksNeverTriggerDuplicateData(t *testing.T) {
	// Sorcerer's Apprentice (RFC 1123 4.2.3.1): if every duplicate ACK made
	// the sender send again, each duplicate would double the traffic from
	// there on. With no loss, each block must leave the server exactly once.
	data := patternBytes(5, 1500*512+17)
	root := t.TempDir()
	writeFile(t, root, "undionly.kpxe", data)
	for _, window := range []int{1, 4, 16} {
		t.Run(fmt.Sprintf("window-%d", window), func(t *testing.T) {
			t.Parallel()
			// A long timeout: nothing is lost, so any resend is an answer to a duplicate.
			ts := startServer(t, tftp.Config{Timeout: 2 * time.Second, MaxTimeout: 2 * time.Second}, root)
			r := startRelay(t, ts.addr, uint64(window), impairment{dup: 0.3}, impairment{})
			res, err := fetch{
				name: "undionly.kpxe", opts: []string{"blksize", "512", "windowsize", strconv.Itoa(window)},
				timeout: 5 * time.Second,
			}.run(listenClient(t), r.addr())
			if err != nil {
				t.Fatal(err)
			}
			sameBytes(t, "undionly.kpxe", res.data, data)
			ts.waitIdle(t, 5*time.Second)
			counts := r.dataCounts()
			blocks := len(data)/512 + 1
			if len(counts) != blocks {
				t.Errorf("server sent %d distinct blocks, want %d", len(counts), blocks)
			}
			for b, n := range counts {
				if n != 1 {
					t.Errorf("block %d sent %d times, want once", b, n)
				}
			}
			if n := ts.metric(t, "osim_tftp_duplicate_acks_total"); n == 0 {
				t.Errorf("duplicate_acks_total = 0: the relay's duplicates never reached the server")
			}
			if n := ts.metric(t, "osim_tftp_retransmits_total"); n != 0 {
				t.Errorf("retransmits_total = %v, want 0", n)
			}
		})
	}
}

func TestLossyRolloverDeliversBeyond32MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("33 MiB transfers; skipped with -short")
	}
	// 65535 blocks of 512 bytes is 32 MiB minus 512: past it the 16-bit
	// block number wraps. Roll to 0 is what tftp-hpa, iPXE and EDK2 expect.
	data := patternBytes(33, 33<<20+123)
	root := t.TempDir()
	writeFile(t, root, "initrd.img", data)
	cases := []struct {
		name     string
		opts     []string
		wantOACK string // rollover value acknowledged, "" for none
		wantZero bool   // block number 0 appears on the wire
	}{
		{"default-rolls-to-0", []string{"blksize", "512", "windowsize", "16"}, "", true},
		{"rollover-0", []string{"blksize", "512", "windowsize", "16", "rollover", "0"}, "0", true},
		{"rollover-1", []string{"blksize", "512", "windowsize", "16", "rollover", "1"}, "1", false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, lossyConfig(), root)
			// Light loss near and across the wrap exercises ACK mapping there too.
			r := startRelay(t, ts.addr, uint64(100+i), impairment{drop: 0.001}, impairment{drop: 0.001, reorder: 0.001})
			res, err := fetch{name: "initrd.img", opts: c.opts, dally: 500 * time.Millisecond}.run(listenClient(t), r.addr())
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := res.oack["rollover"]; got != c.wantOACK || ok != (c.wantOACK != "") {
				t.Errorf("OACK rollover = %q (present %v), want %q", got, ok, c.wantOACK)
			}
			sameBytes(t, "initrd.img", res.data, data)
			// Rolling to 0 sends DATA 0 once; rolling to 1 never does.
			if n := r.dataCounts()[0]; (n > 0) != c.wantZero {
				t.Errorf("DATA with block number 0 sent %d times, want it sent: %v", n, c.wantZero)
			}
			ts.waitIdle(t, 5*time.Second)
		})
	}
}

func TestWireGapAckAfterRolloverResendsMissingBlock(t *testing.T) {
	// With 8-byte blocks the block number wraps after 512 KiB. The client
	// loses one block in the middle of a window past the wrap and reports the
	// gap with an ACK of the block before it (RFC 7440 section 4): the server
	// must resend from the lost block, under both rollover conventions.
	data := patternBytes(99, 65550*8+3)
	root := t.TempDir()
	writeFile(t, root, "tiny-blocks.bin", data)
	for _, c := range []struct {
		name string
		opts []string
	}{
		{"roll-to-0", []string{"blksize", "8", "windowsize", "8"}},
		{"rollover-1", []string{"blksize", "8", "windowsize", "8", "rollover", "1"}},
	} {
		for _, lose := range []uint64{65537, 65540} {
			t.Run(fmt.Sprintf("%s/lose-%d", c.name, lose), func(t *testing.T) {
				t.Parallel()
				ts := startServer(t, lossyConfig(), root)
				res, err := fetch{name: "tiny-blocks.bin", opts: c.opts, lose: lose,
					timeout: 100 * time.Millisecond, retries: 10}.run(listenClient(t), ts.addr)
				if err != nil {
					t.Fatal(err)
				}
				sameBytes(t, "tiny-blocks.bin", res.data, data)
			})
		}
	}
}

func TestWireConcurrentUploadsOfOneNameLoserGetsFileExists(t *testing.T) {
	// Two clients upload the same name at once; both pass the "exists"
	// check at request time. The first to finish wins; the second must get
	// error 6, once, and the winner's bytes must stay whole.
	up := t.TempDir()
	ts := startServer(t, tftp.Config{UploadDir: up, Timeout: 200 * time.Millisecond}, t.TempDir())
	a, b := listenClient(t), listenClient(t)
	start := func(c *net.UDPConn) netip.AddrPort {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort(request(opWRQ, "report.json", "octet"), ts.addr); err != nil {
			t.Fatal(err)
		}
		p, tid, err := readPacket(c, 2*time.Second)
		if err != nil || p.op != opACK || p.block != 0 {
			t.Fatalf("WRQ: want ACK 0, got opcode %d block %d, %v", p.op, p.block, err)
		}
		return tid
	}
	tidA, tidB := start(a), start(b)
	winner, loser := []byte("winner's report"), []byte("loser's report")
	if _, err := a.WriteToUDPAddrPort(dataPacket(1, winner), tidA); err != nil {
		t.Fatal(err)
	}
	if p, _, err := readPacket(a, 2*time.Second); err != nil || p.op != opACK || p.block != 1 {
		t.Fatalf("winner's final block: want ACK 1, got opcode %d code %d %q, %v", p.op, p.code, p.msg, err)
	}
	if _, err := b.WriteToUDPAddrPort(dataPacket(1, loser), tidB); err != nil {
		t.Fatal(err)
	}
	p := expectError(t, b, 2*time.Second)
	if p.code != 6 {
		t.Errorf("loser got error %d %q, want 6 (file exists)", p.code, p.msg)
	}
	for {
		q, _, err := readPacket(b, 300*time.Millisecond)
		if err != nil {
			break
		}
		t.Errorf("loser got a second packet after its ERROR: opcode %d code %d %q", q.op, q.code, q.msg)
	}
	ts.waitIdle(t, 5*time.Second)
	got, _ := os.ReadFile(filepath.Join(up, "report.json"))
	sameBytes(t, "report.json", got, winner)
	if n := ts.metric(t, "osim_tftp_transfers_failed_total", "direction", "write", "reason", "io_error"); n != 0 {
		t.Errorf(`transfers_failed_total{direction="write",reason="io_error"} = %v, want 0: losing a race for a name is not an I/O error`, n)
	}
	if ents, _ := os.ReadDir(up); len(ents) != 1 {
		t.Errorf("upload folder holds %d entries, want only report.json (no temp files)", len(ents))
	}
}

func TestWireVanishedClientIsDroppedAfterRetryBudget(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "grubx64.efi", patternBytes(9, 64*1024))
	cases := []struct {
		name        string
		f           fetch
		retransmits float64 // what the server sends again before giving up
		reason      string
	}{
		// Nothing acknowledged: one resend of the first flight, then the
		// first-ACK budget ends it (the source may be forged).
		{"after-data-1", fetch{name: "grubx64.efi", stopAfter: 1}, 1, "first_ack_timeout"},
		{"after-oack", fetch{name: "grubx64.efi", opts: []string{"blksize", "1024"}, onFirst: func(netip.AddrPort) error {
			return errVanish // before ACK 0
		}}, 1, "first_ack_timeout"},
		// Block 1 acknowledged, block 2 never: the full retry budget.
		{"after-data-2", fetch{name: "grubx64.efi", stopAfter: 2}, 3, "timeout"},
		// Acked up to 16, sent 17..24: each timeout sends the window again.
		{"mid-window", fetch{name: "grubx64.efi", opts: []string{"windowsize", "8"}, stopAfter: 20}, 3 * 8, "timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := tftp.Config{Timeout: 50 * time.Millisecond, MaxTimeout: 100 * time.Millisecond, Retries: 3,
				FirstAckTimeout: 300 * time.Millisecond}
			ts := startServer(t, cfg, root)
			conn := listenClient(t)
			if _, err := c.f.run(conn, ts.addr); err != nil && !errors.Is(err, errVanish) {
				t.Fatal(err)
			}
			conn.Close() // gone: the host rebooted
			if ts.srv.Active() != 1 {
				t.Fatalf("Active() = %d right after the client left, want 1", ts.srv.Active())
			}
			// Budget: 50 + 100 + 100 + 100 ms; allow plenty for -race.
			ts.waitIdle(t, 5*time.Second)
			if n := ts.metric(t, "osim_tftp_transfers_failed_total", "direction", "read", "reason", c.reason); n != 1 {
				t.Errorf(`transfers_failed_total{direction="read",reason=%q} = %v, want 1`, c.reason, n)
			}
			if n := ts.metric(t, "osim_tftp_active_transfers"); n != 0 {
				t.Errorf("active_transfers gauge = %v, want 0", n)
			}
			if n := ts.metric(t, "osim_tftp_unacked_transfers"); n != 0 {
				t.Errorf("unacked_transfers gauge = %v, want 0", n)
			}
			if n := ts.metric(t, "osim_tftp_retransmits_total"); n != c.retransmits {
				t.Errorf("retransmits_total = %v, want %v", n, c.retransmits)
			}
		})
	}
}

var errVanish = errors.New("client vanishes")

func TestWireClientErrorEndsTransferAtOnce(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "core.efi", patternBytes(13, 200_000))
	// A long server timeout: the transfer must end on the ERROR, not on silence.
	ts := startServer(t, tftp.Config{Timeout: 5 * time.Second, MaxTimeout: 5 * time.Second}, root)
	conn := listenClient(t)
	res, err := fetch{name: "core.efi", opts: []string{"windowsize", "4"}, stopAfter: 10}.run(conn, ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteToUDPAddrPort(errorPacket(3, "disk full"), res.tid); err != nil {
		t.Fatal(err)
	}
	ts.waitIdle(t, 2*time.Second)
	if n := ts.metric(t, "osim_tftp_transfers_failed_total", "direction", "read", "reason", "client_error"); n != 1 {
		t.Errorf(`transfers_failed_total{direction="read",reason="client_error"} = %v, want 1`, n)
	}
	// RFC 1350 section 7: an ERROR is not acknowledged and not answered.
	for {
		p, _, err := readPacket(conn, 200*time.Millisecond)
		if err != nil {
			break // quiet: good
		}
		if p.op == opERROR {
			t.Errorf("server answered the client's ERROR with ERROR %d %q", p.code, p.msg)
		}
	}
}

func TestWireDuplicateRequestJoinsRunningTransfer(t *testing.T) {
	root := t.TempDir()
	data := patternBytes(21, 100_000)
	writeFile(t, root, "ipxe.efi", data)
	ts := startServer(t, tftp.Config{}, root)
	conn := listenClient(t)
	opts := []string{"blksize", "1468", "windowsize", "4"}
	res, err := fetch{name: "ipxe.efi", opts: opts, onFirst: func(netip.AddrPort) error {
		// The firmware timed out on its side and asks again, same bytes, same port.
		if _, err := conn.WriteToUDPAddrPort(request(opRRQ, "ipxe.efi", "octet", opts...), ts.addr); err != nil {
			t.Error(err)
		}
		waitFor(t, 2*time.Second, "duplicate request not counted", func() bool {
			return ts.metric(t, "osim_tftp_duplicate_requests_total") == 1
		})
		if n := ts.srv.Active(); n != 1 {
			t.Errorf("Active() = %d after a duplicate request, want 1", n)
		}
		return nil
	}}.run(conn, ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "ipxe.efi", res.data, data)
	ts.waitIdle(t, 5*time.Second)
	if n := ts.metric(t, "osim_tftp_transfers_started_total", "direction", "read"); n != 1 {
		t.Errorf("transfers started = %v, want 1", n)
	}
}

func TestWireTsizeProbeThenReadCompletes(t *testing.T) {
	// EDK2's PXE driver asks for the size first (PxeBcTftpGetFileSize): an RRQ
	// with tsize, read the OACK, abort with error 8; then it reads the file
	// from the same port without tsize.
	root := t.TempDir()
	data := patternBytes(31, 1_000_000+5)
	writeFile(t, root, "boot/shimx64.efi", data)
	ts := startServer(t, lossyConfig(), root)
	conn := listenClient(t)
	if _, err := conn.WriteToUDPAddrPort(request(opRRQ, "boot/shimx64.efi", "octet",
		"tsize", "0", "blksize", "1468", "windowsize", "4"), ts.addr); err != nil {
		t.Fatal(err)
	}
	p, tid, err := readPacket(conn, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if p.op != opOACK {
		t.Fatalf("want an OACK, got opcode %d", p.op)
	}
	want := map[string]string{"tsize": strconv.Itoa(len(data)), "blksize": "1468", "windowsize": "4"}
	for k, v := range want {
		if p.opts[k] != v {
			t.Errorf("OACK %s = %q, want %q (OACK %v)", k, p.opts[k], v, p.opts)
		}
	}
	if _, err := conn.WriteToUDPAddrPort(errorPacket(8, "User aborted the transfer"), tid); err != nil {
		t.Fatal(err)
	}
	res, err := fetch{name: "boot/shimx64.efi", opts: []string{"blksize", "1468", "windowsize", "4"}}.run(conn, ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.oack["tsize"]; ok {
		t.Errorf("second OACK carries tsize, which the second RRQ did not ask for: %v", res.oack)
	}
	sameBytes(t, "shimx64.efi", res.data, data)
	ts.waitIdle(t, 5*time.Second)
	if n := ts.metric(t, "osim_tftp_tsize_probes_total"); n != 1 {
		t.Errorf("tsize_probes_total = %v, want 1", n)
	}
	if n := ts.metric(t, "osim_tftp_transfers_failed_total"); n != 0 {
		t.Errorf("transfers_failed_total = %v, want 0: a probe is not a failure", n)
	}
	if n := ts.metric(t, "osim_tftp_transfers_completed_total", "direction", "read"); n != 1 {
		t.Errorf("completed reads = %v, want 1", n)
	}
}

func TestWireWrongTIDGetsErrorAndTransferCompletes(t *testing.T) {
	root := t.TempDir()
	data := patternBytes(41, 50_000)
	writeFile(t, root, "bootx64.efi", data)
	ts := startServer(t, tftp.Config{}, root)
	stranger := listenClient(t)
	var strayErr packet
	res, err := fetch{name: "bootx64.efi", opts: []string{"blksize", "1024"}, onFirst: func(tid netip.AddrPort) error {
		// Another host (or an old transfer of this one) hits the transfer port.
		if _, err := stranger.WriteToUDPAddrPort(ackPacket(0), tid); err != nil {
			t.Error(err)
		}
		strayErr = expectError(t, stranger, 2*time.Second)
		return nil
	}}.run(listenClient(t), ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if strayErr.code != 5 {
		t.Errorf("stray packet answered with error %d %q, want 5 (unknown transfer ID)", strayErr.code, strayErr.msg)
	}
	sameBytes(t, "bootx64.efi", res.data, data)
	ts.waitIdle(t, 5*time.Second)
	if n := ts.metric(t, "osim_tftp_unknown_tid_packets_total"); n != 1 {
		t.Errorf("unknown_tid_packets_total = %v, want 1", n)
	}
}

// holdTransfers starts n reads from the given client sockets and returns once
// each has acknowledged its first block (so each is an acknowledged transfer,
// which the caps protect); the transfers then wait until release is closed,
// and finish. wait returns their errors.
func holdTransfers(t *testing.T, server netip.AddrPort, name string, conns []*net.UDPConn) (release func(), wait func() []error) {
	t.Helper()
	gate := make(chan struct{})
	var started, done sync.WaitGroup
	errs := make([]error, len(conns))
	for i, c := range conns {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			once := sync.OnceFunc(started.Done)
			defer once()
			_, errs[i] = fetch{name: name, timeout: time.Second, onFirstAck: func(netip.AddrPort) {
				once()
				<-gate
			}}.run(c, server)
		}()
	}
	started.Wait()
	return sync.OnceFunc(func() { close(gate) }), func() []error { done.Wait(); return errs }
}

// waitAcknowledged waits until the server saw the first ACK of every running
// transfer.
func waitAcknowledged(t *testing.T, ts *testServer) {
	t.Helper()
	waitFor(t, 2*time.Second, "transfers still unacknowledged", func() bool {
		return ts.metric(t, "osim_tftp_unacked_transfers") == 0
	})
}

func TestWireRequestsOverCapsGetErrorPacket(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "pxelinux.0", patternBytes(51, 20_000))
	cases := []struct {
		name       string
		cfg        tftp.Config
		holders    [][]byte // client IPs of the transfers that fill the table
		refused    []byte   // client IP of the request over the cap
		admitted   []byte   // a client still admitted, nil for none
		wantReason string
	}{
		{"global", tftp.Config{MaxTransfers: 2},
			[][]byte{{127, 0, 0, 2}, {127, 0, 0, 3}}, []byte{127, 0, 0, 4}, nil, "server_busy"},
		{"per-client", tftp.Config{MaxPerClient: 2},
			[][]byte{{127, 0, 0, 2}, {127, 0, 0, 2}}, []byte{127, 0, 0, 2}, []byte{127, 0, 0, 3}, "client_busy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := startServer(t, c.cfg, root)
			var conns []*net.UDPConn
			for _, ip := range c.holders {
				conns = append(conns, listenClient(t, ip...))
			}
			release, wait := holdTransfers(t, ts.addr, "pxelinux.0", conns)
			defer release()
			waitAcknowledged(t, ts)
			if n := ts.srv.Active(); n != 2 {
				t.Fatalf("Active() = %d with two held transfers, want 2", n)
			}
			over := listenClient(t, c.refused...)
			if _, err := over.WriteToUDPAddrPort(request(opRRQ, "pxelinux.0", "octet"), ts.addr); err != nil {
				t.Fatal(err)
			}
			if p := expectError(t, over, 2*time.Second); p.msg == "" {
				t.Errorf("refusal carries no message (code %d)", p.code)
			}
			if n := ts.metric(t, "osim_tftp_refusals_total", "reason", c.wantReason); n != 1 {
				t.Errorf("refusals{reason=%s} = %v, want 1", c.wantReason, n)
			}
			if c.admitted != nil {
				res, err := fetch{name: "pxelinux.0"}.run(listenClient(t, c.admitted...), ts.addr)
				if err != nil || len(res.data) != 20_000 {
					t.Errorf("another client was not served while one is at its cap: %v", err)
				}
			}
			release()
			for i, err := range wait() {
				if err != nil {
					t.Errorf("held transfer %d: %v", i, err)
				}
			}
			ts.waitIdle(t, 5*time.Second)
			// Capacity is back: the refused client is served now.
			if _, err := (fetch{name: "pxelinux.0"}).run(over, ts.addr); err != nil {
				t.Errorf("after the held transfers ended: %v", err)
			}
		})
	}
}

func TestWirePathRefusalsAnswerErrorAndCount(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	writeFile(t, outside, "secret", []byte("not for PXE clients"))
	wds := patternBytes(61, 3000)
	writeFile(t, root, "boot/x64/wdsnbp.com", wds)
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(filepath.Join(root, "boot"), filepath.Join(outside, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(root, "boot", "relative-escape")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		file       string // as sent in the RRQ; may hold a NUL
		wantData   []byte // served content, nil when refused
		wantCode   uint16
		wantReason string
	}{
		{"dotdot", "../etc/passwd", nil, 2, "access_violation"},
		{"dotdot-inside", "a/../../x", nil, 2, "access_violation"},
		{"dotdot-backslash", `boot\..\..\etc\passwd`, nil, 2, "access_violation"},
		// RFC 1350 ends the name at the first NUL; what follows is read as the
		// mode, which is then not a mode: the request is malformed.
		{"nul-byte", "boot/x64/wdsnbp.com\x00../../etc/passwd", nil, 4, "malformed"},
		{"256-byte-name", strings.Repeat("a", 256), nil, 2, "access_violation"},
		{"symlink-out-of-root", "escape", nil, 2, "access_violation"},
		{"relative-symlink-out-of-root", "boot/relative-escape", nil, 2, "access_violation"},
		{"directory", "boot/x64", nil, 2, "access_violation"},
		{"missing", "boot/x64/missing.efi", nil, 1, "not_found"},
		{"windows-backslashes", `\boot\x64\wdsnbp.com`, wds, 0, ""},
		{"leading-slash", "/boot/x64/wdsnbp.com", wds, 0, ""},
		{"doubled-slashes", "boot//x64/./wdsnbp.com", wds, 0, ""},
	}
	ts := startServer(t, tftp.Config{}, root)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := ts.metric(t, "osim_tftp_refusals_total", "reason", c.wantReason)
			res, err := fetch{name: c.file}.run(listenClient(t), ts.addr)
			if c.wantData != nil {
				if err != nil {
					t.Fatalf("%q: %v", c.file, err)
				}
				sameBytes(t, c.file, res.data, c.wantData)
				return
			}
			var te *tftpError
			if !errors.As(err, &te) {
				t.Fatalf("%q: got %v (%d bytes), want error %d", c.file, err, len(res.data), c.wantCode)
			}
			if te.code != uint16(c.wantCode) {
				t.Errorf("%q: error %d %q, want %d", c.file, te.code, te.msg, c.wantCode)
			}
			if strings.Contains(te.msg, "not for PXE") {
				t.Errorf("error message leaks file content: %q", te.msg)
			}
			if n := ts.metric(t, "osim_tftp_refusals_total", "reason", c.wantReason) - before; n != 1 {
				t.Errorf("refusals{reason=%s} grew by %v, want 1", c.wantReason, n)
			}
		})
	}
}

// twoFreePorts finds two consecutive free UDP ports on 127.0.0.1 below the
// kernel's ephemeral range, so no client socket of this or another test can
// be handed one of them while the server needs it.
func twoFreePorts(t *testing.T) (int, int) {
	t.Helper()
	lo := 20000 + os.Getpid()%5000*2
	for p := lo; p < lo+2000; p += 2 {
		a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			continue
		}
		b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1})
		a.Close()
		if err == nil {
			b.Close()
			return p, p + 1
		}
	}
	t.Fatal("no two consecutive free UDP ports")
	return 0, 0
}

func TestWirePortRangeOfTwoLimitsConcurrentTransfers(t *testing.T) {
	root := t.TempDir()
	data := patternBytes(71, 30_000)
	writeFile(t, root, "snponly.efi", data)
	lo, hi := twoFreePorts(t)
	ts := startServer(t, tftp.Config{PortLo: lo, PortHi: hi}, root)

	conns := []*net.UDPConn{listenClient(t), listenClient(t)}
	var tids sync.Map
	release, wait := holdTransfers(t, ts.addr, "snponly.efi", conns)
	defer release()
	third := listenClient(t)
	if _, err := third.WriteToUDPAddrPort(request(opRRQ, "snponly.efi", "octet"), ts.addr); err != nil {
		t.Fatal(err)
	}
	p := expectError(t, third, 2*time.Second)
	t.Logf("third transfer refused: error %d %q", p.code, p.msg)
	if n := ts.metric(t, "osim_tftp_refusals_total", "reason", "no_port"); n != 1 {
		t.Errorf("refusals{reason=no_port} = %v, want 1", n)
	}
	release()
	for i, err := range wait() {
		if err != nil {
			t.Errorf("held transfer %d: %v", i, err)
		}
	}
	ts.waitIdle(t, 5*time.Second)
	// Ports are reused once free, and transfers only ever use the range.
	for i := range 3 {
		res, err := fetch{name: "snponly.efi", onFirst: func(tid netip.AddrPort) error { tids.Store(tid.Port(), true); return nil }}.run(listenClient(t), ts.addr)
		if err != nil {
			t.Fatalf("transfer %d after the range freed up: %v", i, err)
		}
		sameBytes(t, "snponly.efi", res.data, data)
		// The server frees the port when it reads the final ACK, a moment
		// after the client returned.
		ts.waitIdle(t, 5*time.Second)
	}
	tids.Range(func(k, _ any) bool {
		if p := int(k.(uint16)); p < lo || p > hi {
			t.Errorf("transfer used port %d outside %d:%d", p, lo, hi)
		}
		return true
	})
}

func TestWireShutdownLetsRunningTransferFinish(t *testing.T) {
	root := t.TempDir()
	data := patternBytes(81, 400_000)
	writeFile(t, root, "vmlinuz", data)
	cases := []struct {
		name     string
		grace    time.Duration
		wantErr  bool   // Shutdown reports cut transfers
		wantDone bool   // the client got every byte
		reason   string // failure reason counted for the running transfer
	}{
		{"within-grace", 2 * time.Second, false, true, ""},
		{"grace-over", 100 * time.Millisecond, true, false, "shutdown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := startServer(t, tftp.Config{Timeout: 200 * time.Millisecond}, root)
			client := listenClient(t)
			// Slow the client down so the transfer outlives the cancel.
			gate := make(chan struct{})
			type result struct {
				res fetchResult
				err error
			}
			out := make(chan result, 1)
			go func() {
				res, err := fetch{name: "vmlinuz", timeout: 250 * time.Millisecond, retries: 4, onFirstAck: func(netip.AddrPort) {
					<-gate
				}}.run(client, ts.addr)
				out <- result{res, err}
			}()
			waitFor(t, 2*time.Second, "transfer never started", func() bool { return ts.srv.Active() == 1 })
			ts.stop()
			if err := <-ts.done; err != nil {
				t.Fatalf("Serve: %v", err)
			}
			ts.done <- nil // for the cleanup
			// The listener is no longer read: a new request gets no answer.
			late := listenClient(t)
			if _, err := late.WriteToUDPAddrPort(request(opRRQ, "vmlinuz", "octet"), ts.addr); err != nil {
				t.Fatal(err)
			}
			if p, _, err := readPacket(late, 300*time.Millisecond); err == nil {
				t.Errorf("request after Serve returned was answered: opcode %d", p.op)
			}
			if c.wantDone {
				close(gate)
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.grace)
			defer cancel()
			err := ts.srv.Shutdown(ctx)
			if !c.wantDone {
				close(gate) // the client resumes only after the grace period cut it
			}
			if (err != nil) != c.wantErr {
				t.Errorf("Shutdown = %v, want error %v", err, c.wantErr)
			}
			if ts.srv.Active() != 0 {
				t.Errorf("Active() = %d after Shutdown returned", ts.srv.Active())
			}
			r := <-out
			if c.wantDone {
				if r.err != nil {
					t.Fatalf("running transfer: %v", r.err)
				}
				sameBytes(t, "vmlinuz", r.res.data, data)
			} else if r.err == nil && len(r.res.data) == len(data) {
				t.Errorf("transfer finished although the grace period was shorter than it")
			}
			if c.reason != "" {
				if n := ts.metric(t, "osim_tftp_transfers_failed_total", "reason", c.reason); n != 1 {
					t.Errorf("transfers_failed_total{reason=%s} = %v, want 1", c.reason, n)
				}
			}
		})
	}
}
