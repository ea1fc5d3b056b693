package tftp_test

// Shared by interop_test.go and lossy_test.go: an in-process server on
// loopback, metric readers, TFTP packets built and parsed by hand (so the
// tests do not trust the engine's own codec), a windowed RFC 7440 client and
// a lossy relay.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"osim/dataplane/tftp"
)

// testServer is an engine serving a folder on 127.0.0.1:<ephemeral>.
type testServer struct {
	srv  *tftp.Server
	addr netip.AddrPort
	reg  *prometheus.Registry
	root string
	stop context.CancelFunc // ends Serve; cleanup also shuts down
	done chan error         // Serve's result
}

// startServer runs Serve in the background until the test ends. cfg.Metrics
// and cfg.Logger are filled in when nil; the log goes to the test's output.
func startServer(t testing.TB, cfg tftp.Config, root string) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.Metrics == nil {
		cfg.Metrics = tftp.NewMetrics(reg)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	folder, err := tftp.NewFolderResolver(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { folder.Close() })
	srv, err := tftp.NewServer(cfg, folder)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), reg: reg, root: root,
		stop: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ts.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		conn.Close()
	})
	return ts
}

// metric sums the series of a counter or gauge whose labels include the
// given name/value pairs; 0 when none exists yet.
func (ts *testServer) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	return gatherValue(t, ts.reg, name, labels...)
}

func gatherValue(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitIdle waits until the server has no transfer left.
func (ts *testServer) waitIdle(t testing.TB, d time.Duration) {
	t.Helper()
	waitFor(t, d, "transfers still active", func() bool { return ts.srv.Active() == 0 })
}

// patternBytes is size deterministic pseudo-random bytes keyed by seed.
func patternBytes(seed uint64, size int) []byte {
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 'o', 's', 'i', 'm'})
	_, _ = r.Read(b)
	return b
}

// writeFile writes data to dir/name, creating folders.
func writeFile(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sameBytes fails the test when got differs from want, naming sizes and digests.
func sameBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes sha256 %x, want %d bytes sha256 %x", what,
			len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

// Wire format, written out here rather than borrowed from the engine.
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// request encodes an RRQ or WRQ with options given as name, value pairs.
func request(op uint16, name, mode string, opts ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, op)
	b = append(append(b, name...), 0)
	b = append(append(b, mode...), 0)
	for _, o := range opts {
		b = append(append(b, o...), 0)
	}
	return b
}

func ackPacket(block uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, opACK), block)
}

func dataPacket(block uint16, payload []byte) []byte {
	b := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, opDATA), block)
	return append(b, payload...)
}

func errorPacket(code uint16, msg string) []byte {
	b := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, opERROR), code)
	return append(append(b, msg...), 0)
}

// packet is a decoded server packet.
type packet struct {
	op    uint16
	block uint16            // DATA, ACK
	data  []byte            // DATA payload
	code  uint16            // ERROR
	msg   string            // ERROR
	opts  map[string]string // OACK
}

func parsePacket(b []byte) (packet, error) {
	if len(b) < 2 {
		return packet{}, fmt.Errorf("packet of %d bytes", len(b))
	}
	p := packet{op: binary.BigEndian.Uint16(b)}
	switch p.op {
	case opDATA, opACK:
		if len(b) < 4 {
			return p, fmt.Errorf("opcode %d in %d bytes", p.op, len(b))
		}
		p.block = binary.BigEndian.Uint16(b[2:])
		p.data = b[4:]
	case opERROR:
		if len(b) < 5 || b[len(b)-1] != 0 {
			return p, fmt.Errorf("malformed ERROR % x", b)
		}
		p.code = binary.BigEndian.Uint16(b[2:])
		p.msg = string(b[4 : len(b)-1])
	case opOACK:
		f := bytes.Split(b[2:], []byte{0})
		if len(f) == 0 || len(f[len(f)-1]) != 0 || len(f)%2 != 1 {
			return p, fmt.Errorf("malformed OACK %q", b)
		}
		p.opts = map[string]string{}
		for i := 0; i+1 < len(f); i += 2 {
			p.opts[string(f[i])] = string(f[i+1])
		}
	default:
		return p, fmt.Errorf("unexpected opcode %d", p.op)
	}
	return p, nil
}

// tftpError is an ERROR packet the server sent.
type tftpError struct {
	code uint16
	msg  string
}

func (e *tftpError) Error() string { return fmt.Sprintf("server error %d: %s", e.code, e.msg) }

// listenClient opens a client socket on 127.0.0.1 (or ip) with a roomy
// receive buffer, closed when the test ends.
func listenClient(t testing.TB, ip ...byte) *net.UDPConn {
	t.Helper()
	a := net.IPv4(127, 0, 0, 1)
	if len(ip) == 4 {
		a = net.IPv4(ip[0], ip[1], ip[2], ip[3])
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: a})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	t.Cleanup(func() { c.Close() })
	return c
}

// readPacket waits up to d for one packet and decodes it.
func readPacket(conn *net.UDPConn, d time.Duration) (packet, netip.AddrPort, error) {
	buf := make([]byte, 65536)
	if err := conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return packet{}, netip.AddrPort{}, err
	}
	n, from, err := conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return packet{}, from, err
	}
	p, err := parsePacket(buf[:n])
	return p, from, err
}

// expectError reads until an ERROR packet arrives (other packets fail the test).
func expectError(t testing.TB, conn *net.UDPConn, d time.Duration) packet {
	t.Helper()
	p, _, err := readPacket(conn, d)
	if err != nil {
		t.Fatalf("want an ERROR packet: %v", err)
	}
	if p.op != opERROR {
		t.Fatalf("want an ERROR packet, got opcode %d", p.op)
	}
	return p
}

// fetch describes one read by the windowed test client.
type fetch struct {
	name string
	mode string   // "octet" when empty
	opts []string // name, value pairs sent in the RRQ
	// timeout is the client's retransmit timer (default 150 ms), retries how
	// many timeouts in a row it accepts (default 40).
	timeout time.Duration
	retries int
	// dally keeps answering a retransmitted last block until the line has
	// been quiet this long after the final ACK (0: return at once).
	dally time.Duration
	// onFirst runs once when the first OACK or DATA arrives, with the
	// server's transfer address (its TID); an error it returns ends the
	// fetch there, without a word to the server.
	onFirst func(tid netip.AddrPort) error
	// onFirstAck runs once right after the client sent its first ACK, with
	// the server's TID: from then on the transfer is an acknowledged one.
	onFirstAck func(tid netip.AddrPort)
	// stopAfter, if > 0, makes the client vanish after that many blocks.
	stopAfter uint64
	// lose, if > 0, is a block the client acts as if it never received the
	// first time it arrives.
	lose uint64
}

type fetchResult struct {
	data []byte
	oack map[string]string // nil when the server sent none
	tid  netip.AddrPort
}

// wireBlock is the 16-bit number of block n under the rollover convention.
func wireBlock(n uint64, rollTo uint16) uint16 {
	if rollTo == 0 || n <= 65535 {
		return uint16(n)
	}
	return uint16((n-1)%65535 + 1)
}

// run reads f.name from server over conn. It follows RFC 7440 as a receiver:
// ACK the last block of each window; on a gap ACK the last block received in
// order (once, until progress); on its own timeout ACK that block again.
func (f fetch) run(conn *net.UDPConn, server netip.AddrPort) (fetchResult, error) {
	mode := f.mode
	if mode == "" {
		mode = "octet"
	}
	timeout, retries := f.timeout, f.retries
	if timeout == 0 {
		timeout = 150 * time.Millisecond
	}
	if retries == 0 {
		retries = 40
	}
	req := request(opRRQ, f.name, mode, f.opts...)
	var (
		res       fetchResult
		buf       = make([]byte, 65536+4)
		blksize   = 512
		window    = uint64(1)
		rollTo    uint16
		started   bool   // a reply arrived: we talk to the TID now
		last      uint64 // last block received in order
		lastAcked uint64 // last block we acknowledged
		reacked   bool   // already re-acknowledged since the last progress
		ackedOnce bool   // onFirstAck ran
		lost      bool   // f.lose was discarded once
		tries     int
		out       bytes.Buffer
	)
	send := func(p []byte, to netip.AddrPort) error {
		_, err := conn.WriteToUDPAddrPort(p, to)
		return err
	}
	ackLast := func() error {
		lastAcked = last
		if err := send(ackPacket(wireBlock(last, rollTo)), res.tid); err != nil {
			return err
		}
		if f.onFirstAck != nil && !ackedOnce {
			ackedOnce = true
			f.onFirstAck(res.tid)
		}
		return nil
	}
	if err := send(req, server); err != nil {
		return res, err
	}
	deadline := time.Now().Add(timeout)
	for {
		if err := conn.SetReadDeadline(deadline); err != nil {
			return res, err
		}
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if tries++; tries > retries {
				return res, fmt.Errorf("%s: no progress after %d timeouts (block %d)", f.name, retries, last)
			}
			if !started {
				err = send(req, server)
			} else {
				err = ackLast()
			}
			if err != nil {
				return res, err
			}
			deadline = time.Now().Add(timeout)
			continue
		}
		if err != nil {
			return res, err
		}
		if from.Addr() != server.Addr() || (started && from != res.tid) {
			continue // not our transfer
		}
		p, err := parsePacket(buf[:n])
		if err != nil {
			return res, fmt.Errorf("%s: %w", f.name, err)
		}
		first := func() error {
			started, res.tid = true, from
			if f.onFirst != nil {
				return f.onFirst(from)
			}
			return nil
		}
		switch p.op {
		case opERROR:
			return res, &tftpError{code: p.code, msg: p.msg}
		case opOACK:
			if started {
				if last == 0 { // our ACK 0 was lost: the server sent its OACK again
					err = ackLast()
				}
				break
			}
			res.oack = p.opts
			if v, ok := p.opts["blksize"]; ok {
				blksize, _ = strconv.Atoi(v)
			}
			if v, ok := p.opts["windowsize"]; ok {
				w, _ := strconv.Atoi(v)
				window = uint64(w)
			}
			if p.opts["rollover"] == "1" {
				rollTo = 1
			}
			if err := first(); err != nil {
				return res, err
			}
			tries, deadline = 0, time.Now().Add(timeout)
			err = ackLast()
		case opDATA:
			if !started {
				if err := first(); err != nil {
					return res, err
				}
			}
			if len(p.data) > blksize {
				return res, fmt.Errorf("%s: block %d carries %d bytes, blksize is %d", f.name, p.block, len(p.data), blksize)
			}
			if p.block != wireBlock(last+1, rollTo) {
				// A block we have: if we had acknowledged it, the sender
				// missed that ACK and went back, so say again where we are.
				// A copy of one we have not acknowledged yet is only a
				// duplicate: answering it would look like a gap report. A
				// later block means a gap: ACK the last block in order
				// (RFC 7440 section 4). Either answer once until progress.
				if n, earlier := blockBefore(p.block, last, rollTo); earlier && n > lastAcked {
					break
				}
				if !reacked {
					reacked = true
					err = ackLast()
				}
				break
			}
			if f.lose != 0 && last+1 == f.lose && !lost {
				lost = true
				break
			}
			last++
			out.Write(p.data)
			reacked, tries, deadline = false, 0, time.Now().Add(timeout)
			if f.stopAfter > 0 && last >= f.stopAfter {
				res.data = out.Bytes()
				return res, nil
			}
			if len(p.data) < blksize {
				if err := ackLast(); err != nil {
					return res, err
				}
				res.data = out.Bytes()
				f.dallyAfter(conn, res.tid, p.block)
				return res, nil
			}
			if last-lastAcked >= window {
				err = ackLast()
			}
		default:
			return res, fmt.Errorf("%s: unexpected opcode %d", f.name, p.op)
		}
		if err != nil {
			return res, err
		}
	}
}

// blockBefore finds the block at or below last that carries wire number b,
// looking back far enough for any window in flight.
func blockBefore(b uint16, last uint64, rollTo uint16) (uint64, bool) {
	for k := uint64(0); k <= 4096 && k < last; k++ {
		if wireBlock(last-k, rollTo) == b {
			return last - k, true
		}
	}
	return 0, false
}

// dallyAfter re-acknowledges retransmitted blocks after the final ACK until
// the server has been quiet for f.dally (RFC 1350 section 6).
func (f fetch) dallyAfter(conn *net.UDPConn, tid netip.AddrPort, final uint16) {
	if f.dally == 0 {
		return
	}
	buf := make([]byte, 65536)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(f.dally))
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if from == tid && n >= 4 && binary.BigEndian.Uint16(buf) == opDATA {
			_, _ = conn.WriteToUDPAddrPort(ackPacket(final), tid)
		}
	}
}

// impairment is what a relay does to the packets of one direction.
type impairment struct {
	drop, reorder, dup float64 // probabilities per packet
}

// relay sits between one test client and the server: client ⇄ relay ⇄
// server. The client sends everything to the relay's address; requests go on
// to the server's listening port and the rest to the transfer port (TID) the
// server last answered from. Each direction drops, reorders (holds a packet
// and releases it after the next one) and duplicates packets with its own
// seeded RNG, so a run is repeatable packet for packet.
type relay struct {
	front  *net.UDPConn // the client talks to this
	back   *net.UDPConn // this talks to the server
	server netip.AddrPort

	mu       sync.Mutex
	client   netip.AddrPort // learned from the first packet
	tid      netip.AddrPort // learned from the server's replies
	dataSent map[uint16]int // DATA packets the server sent, by wire block number
}

func startRelay(t testing.TB, server netip.AddrPort, seed uint64, toServer, toClient impairment) *relay {
	t.Helper()
	r := &relay{front: listenClient(t), back: listenClient(t), server: server,
		dataSent: map[uint16]int{}}
	up := &lossyPath{rng: rand.New(rand.NewPCG(seed, 1)), imp: toServer, conn: r.back}
	down := &lossyPath{rng: rand.New(rand.NewPCG(seed, 2)), imp: toClient, conn: r.front}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client -> server
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := r.front.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.client = from
			to := r.tid
			if op := binary.BigEndian.Uint16(buf); n >= 2 && (op == opRRQ || op == opWRQ) || !to.IsValid() {
				to = r.server
			}
			r.mu.Unlock()
			up.forward(buf[:n], to)
		}
	}()
	go func() { // server -> client
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := r.back.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			if from != r.server {
				r.tid = from
			}
			if n >= 4 && binary.BigEndian.Uint16(buf) == opDATA {
				r.dataSent[binary.BigEndian.Uint16(buf[2:])]++
			}
			to := r.client
			r.mu.Unlock()
			down.forward(buf[:n], to)
		}
	}()
	t.Cleanup(func() { r.front.Close(); r.back.Close(); wg.Wait() })
	return r
}

// addr is where the client sends its requests.
func (r *relay) addr() netip.AddrPort { return r.front.LocalAddr().(*net.UDPAddr).AddrPort() }

// dataCounts returns a copy of DATA packets the server sent, by block number.
func (r *relay) dataCounts() map[uint16]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[uint16]int, len(r.dataSent))
	for k, v := range r.dataSent {
		m[k] = v
	}
	return m
}

type lossyPath struct {
	rng  *rand.Rand
	imp  impairment
	conn *net.UDPConn
	held []byte
	to   netip.AddrPort
}

func (p *lossyPath) forward(pkt []byte, to netip.AddrPort) {
	// Draw every number for every packet, so one decision never shifts the others.
	drop, reorder, dup := p.rng.Float64(), p.rng.Float64(), p.rng.Float64()
	if drop < p.imp.drop {
		return
	}
	if p.held != nil {
		_, _ = p.conn.WriteToUDPAddrPort(pkt, to)
		_, _ = p.conn.WriteToUDPAddrPort(p.held, p.to)
		p.held = nil
		return
	}
	if reorder < p.imp.reorder {
		p.held, p.to = bytes.Clone(pkt), to
		return
	}
	_, _ = p.conn.WriteToUDPAddrPort(pkt, to)
	if dup < p.imp.dup {
		_, _ = p.conn.WriteToUDPAddrPort(pkt, to)
	}
}
