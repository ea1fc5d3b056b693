package pxeclient

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"osim/dataplane/tftp"
	"osim/internal/tftpwire"
)

// loopbackTFTP serves dir on 127.0.0.1 with the boot server's engine.
func loopbackTFTP(t *testing.T, dir string) netip.AddrPort {
	t.Helper()
	res, err := tftp.NewFolderResolver(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Close() })
	srv, err := tftp.NewServer(tftp.Config{}, res)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, conn); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Shutdown(context.Background())
		conn.Close()
	})
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestTFTPFetchesEveryByteWithEachFirmwaresOptions(t *testing.T) {
	dir := t.TempDir()
	sizes := map[string]int{
		"odd.bin":   300<<10 + 17,
		"exact.bin": 1468 * 4 * 10, // ends on a window and a block: an empty last DATA
		"lock.bin":  1432 * 7,
		"tiny.bin":  3,
		"empty.bin": 0,
	}
	sums := map[string][32]byte{}
	for name, n := range sizes {
		b := make([]byte, n)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		sums[name] = sha256.Sum256(b)
	}
	srv := loopbackTFTP(t, dir)
	for _, fw := range []Firmware{EDK2x64, IPXESNP, {Name: "no-options"}} {
		for name, n := range sizes {
			t.Run(fw.Name+"/"+name, func(t *testing.T) {
				c := &client{cfg: Config{Do: func(f func() error) error { return f() }, TFTPTimeout: 500 * time.Millisecond}, res: &Result{}}
				if fw.TFTP.ProbeTsize {
					size, err := c.tftpProbe(t.Context(), srv, name, fw.TFTP)
					if err != nil || size != int64(n) {
						t.Fatalf("probe: size %d, %v; want %d", size, err, n)
					}
				}
				got, sum, err := c.tftpGet(t.Context(), srv, name, fw.TFTP)
				if err != nil {
					t.Fatal(err)
				}
				if got != int64(n) || sum != sums[name] {
					t.Fatalf("got %d bytes sha256 %x, want %d %x", got, sum, n, sums[name])
				}
			})
		}
	}
}

func TestTFTPErrorNamesPhaseAndFile(t *testing.T) {
	srv := loopbackTFTP(t, t.TempDir())
	c := &client{cfg: Config{Do: func(f func() error) error { return f() }, TFTPTimeout: 200 * time.Millisecond}, res: &Result{}}
	fw := EDK2x64
	err := c.timed(&fw, PhaseTsize, func() error {
		_, err := c.tftpProbe(t.Context(), srv, "missing.efi", fw.TFTP)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), PhaseTsize) || !strings.Contains(err.Error(), "server error 1") {
		t.Fatalf("err = %v, want a tsize-probe error carrying the server's error 1", err)
	}
}

// lossyRelay forwards TFTP between a client and srv and drops the first
// copy of each DATA block in drop, so the client sees a gap in a window.
func lossyRelay(t *testing.T, srv netip.AddrPort, drop map[uint16]bool) netip.AddrPort {
	t.Helper()
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close(); back.Close() })
	peer := make(chan netip.AddrPort, 1)
	tid := make(chan netip.AddrPort, 1)
	go func() { // client → server
		buf := make([]byte, 65536)
		to := srv
		for first := true; ; first = false {
			n, from, err := front.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if first {
				peer <- from
			} else if to == srv {
				to = <-tid
			}
			back.WriteToUDPAddrPort(buf[:n], to)
		}
	}()
	go func() { // server → client
		buf := make([]byte, 65536)
		var client netip.AddrPort
		for first := true; ; first = false {
			n, from, err := back.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if first {
				client = <-peer
				tid <- from
			}
			if n >= 4 && tftpwire.Opcode(buf[:n]) == tftpwire.OpDATA {
				if b := tftpwire.Block(buf[:n]); drop[b] {
					delete(drop, b)
					continue
				}
			}
			front.WriteToUDPAddrPort(buf[:n], client)
		}
	}()
	return front.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestTFTPWindowGapIsAckedAndRefilled(t *testing.T) {
	dir := t.TempDir()
	b := make([]byte, 1468*40+100)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(dir, "snponly.efi"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	relay := lossyRelay(t, loopbackTFTP(t, dir), map[uint16]bool{6: true, 19: true, 41: true})
	c := &client{cfg: Config{Do: func(f func() error) error { return f() }, TFTPTimeout: 300 * time.Millisecond}, res: &Result{}}
	got, sum, err := c.tftpGet(t.Context(), relay, "snponly.efi", EDK2x64.TFTP)
	if err != nil {
		t.Fatal(err)
	}
	if got != int64(len(b)) || sum != sha256.Sum256(b) {
		t.Fatalf("got %d bytes sha256 %x, want %d %x", got, sum, len(b), sha256.Sum256(b))
	}
}
