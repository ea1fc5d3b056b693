package tftpclient_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"osim/bench/internal/ceiling"
	"osim/bench/internal/tftpclient"
	"osim/internal/tftpwire"
)

// serve starts the ceiling sender on loopback over a folder holding one
// file of size bytes, and returns its address and the content.
func serve(t *testing.T, size int) (netip.AddrPort, []byte) {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(data)
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	conn, err := tftpclient.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		(&ceiling.Sender{Root: dir}).Serve(ctx, conn)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done; conn.Close() })
	return conn.LocalAddr().(*net.UDPAddr).AddrPort(), data
}

func get(t *testing.T, cfg tftpclient.Config) tftpclient.Result {
	t.Helper()
	c, err := tftpclient.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if cfg.Timeout == 0 {
		cfg.Timeout, cfg.Retries = 500*time.Millisecond, 3
	}
	return tftpclient.Get(ctx, c, cfg)
}

func TestGetReadsEveryByteAcrossTheBlockRollover(t *testing.T) {
	// 8-byte blocks: 70,000 blocks pass block 65535.
	addr, data := serve(t, 8*70000+3)
	r := get(t, tftpclient.Config{Server: addr, File: "f", Blksize: 8, Window: 64, Tsize: true, Expected: data})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if r.Bytes != int64(len(data)) || r.Negotiated.Window != 64 || r.Negotiated.Tsize != int64(len(data)) {
		t.Errorf("bytes %d negotiated %+v", r.Bytes, r.Negotiated)
	}
}

func TestGetReportsContentThatDiffersFromTheExpectedFile(t *testing.T) {
	addr, data := serve(t, 10000)
	bad := append([]byte(nil), data...)
	bad[5000] ^= 1
	r := get(t, tftpclient.Config{Server: addr, File: "f", Blksize: 1468, Expected: bad})
	if !errors.Is(r.Err, tftpclient.ErrMismatch) {
		t.Errorf("err = %v, want ErrMismatch", r.Err)
	}
}

func TestGetReportsATsizeThatDiffersFromTheExpectedFile(t *testing.T) {
	addr, data := serve(t, 10000)
	r := get(t, tftpclient.Config{Server: addr, File: "f", Blksize: 1468, Tsize: true, Expected: data[:9000]})
	if !errors.Is(r.Err, tftpclient.ErrMismatch) {
		t.Errorf("err = %v, want ErrMismatch", r.Err)
	}
}

func TestGetPassesOnTheServersError(t *testing.T) {
	addr, _ := serve(t, 10)
	r := get(t, tftpclient.Config{Server: addr, File: "missing"})
	if !errors.Is(r.Err, tftpclient.ErrServer) {
		t.Errorf("err = %v, want ErrServer", r.Err)
	}
}

// slowServer answers the RRQ only after it has seen it n times, all from
// the same client address. It sends a full block 1, and after its ACK a
// stray DATA from a second socket (another transfer ID) and then the short
// block 2 that ends the file.
func slowServer(t *testing.T, n int) netip.AddrPort {
	t.Helper()
	conn, err := tftpclient.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	stray, err := tftpclient.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); stray.Close() })
	go func() {
		buf := make([]byte, 600)
		var first netip.AddrPort
		for i := 0; i < n; i++ {
			_, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if i == 0 {
				first = from
			} else if from != first {
				t.Errorf("RRQ %d came from %s, the first from %s", i+1, from, first)
			}
		}
		block1 := append([]byte{0, byte(tftpwire.OpDATA), 0, 1}, make([]byte, 512)...)
		conn.WriteToUDPAddrPort(block1, first)
		conn.ReadFromUDPAddrPort(buf) // ACK 1
		block2 := append([]byte{0, byte(tftpwire.OpDATA), 0, 2}, "hello"...)
		stray.WriteToUDPAddrPort(block2, first)
		time.Sleep(10 * time.Millisecond)
		conn.WriteToUDPAddrPort(block2, first)
		conn.ReadFromUDPAddrPort(buf) // ACK 2
	}()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestRRQEveryRetriesFromTheSameSocketUntilAnswered(t *testing.T) {
	addr := slowServer(t, 3)
	r := get(t, tftpclient.Config{Server: addr, File: "f", RRQEvery: 50 * time.Millisecond, Timeout: time.Second, Retries: 1})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if r.RRQs != 3 || r.Bytes != 517 {
		t.Errorf("RRQs %d bytes %d, want 3 and 517", r.RRQs, r.Bytes)
	}
	if r.OACK || r.Negotiated.Blksize != 512 {
		t.Errorf("a DATA answer must leave the defaults: %+v", r.Negotiated)
	}
}

func TestPacketsFromAnotherTransferIDAreCountedNotUsed(t *testing.T) {
	addr := slowServer(t, 1)
	r := get(t, tftpclient.Config{Server: addr, File: "f", Timeout: time.Second, Retries: 1})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if r.Strays != 1 || r.StrayTIDs != 1 || r.Bytes != 517 {
		t.Errorf("strays %d from %d TIDs, bytes %d; want 1 from 1, 517", r.Strays, r.StrayTIDs, r.Bytes)
	}
}

func TestRRQEveryStopsAtTheDeadlineWithoutFlooding(t *testing.T) {
	silent, err := tftpclient.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, err := tftpclient.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer cancel()
	r := tftpclient.Get(ctx, c, tftpclient.Config{
		Server: silent.LocalAddr().(*net.UDPAddr).AddrPort(), File: "f",
		RRQEvery: 100 * time.Millisecond, Timeout: time.Second, Retries: 1,
	})
	if !errors.Is(r.Err, tftpclient.ErrTimeout) {
		t.Errorf("err = %v, want ErrTimeout", r.Err)
	}
	if r.RRQs < 3 || r.RRQs > 5 {
		t.Errorf("%d RRQs in 350ms at one per 100ms, want 3 to 5", r.RRQs)
	}
}
