package main

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"osim/internal/manpage"
)

func TestTFTPModeRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{}, // --root missing
		{"--root", t.TempDir(), "--max-blksize", "4"}, // below RFC 2348's 8
		{"--root", t.TempDir(), "--port-range", "9:1"},
		{"--root", t.TempDir(), "--log-level", "loud"},
		{"--root", t.TempDir(), "--no-such-flag"},
	} {
		if code := runTFTP(args); code != 2 {
			t.Errorf("runTFTP(%q) = %d, want 2", args, code)
		}
	}
}

// TestSIGTERMLetsRunningTransferFinish runs the real binary: a lockstep
// transfer is in flight when SIGTERM arrives; it completes, new requests go
// unanswered, and the process exits 0.
func TestSIGTERMLetsRunningTransferFinish(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildBootd(t)
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	data := bytes.Repeat([]byte("0123456789abcdef"), 512) // 8192 bytes: 16 blocks + empty final
	os.WriteFile(filepath.Join(root, "nbp"), data, 0o644)

	// Find a free port for the server.
	addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: freeUDPPort(t)}
	cmd := exec.Command(bin, "tftp", "--root", root, "--listen", addr.String(), "--grace", "5s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	cl, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer cl.Close()
	rrq := append([]byte{0, 1}, "nbp\x00octet\x00"...)
	buf := make([]byte, 600)
	var peer *net.UDPAddr
	for try := 0; peer == nil; try++ {
		if try == 50 {
			t.Fatalf("server never answered; stderr:\n%s", stderr.String())
		}
		cl.WriteToUDP(rrq, addr)
		cl.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, from, err := cl.ReadFromUDP(buf); err == nil && n >= 4 && binary.BigEndian.Uint16(buf) == 3 {
			peer = from
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)

	// A new request after SIGTERM is not served.
	late, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer late.Close()
	late.WriteToUDP(rrq, addr)

	var got []byte
	got = append(got, buf[4:516]...)
	for block := uint16(1); ; block++ {
		cl.WriteToUDP([]byte{0, 4, byte(block >> 8), byte(block)}, peer)
		cl.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := cl.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("transfer cut after SIGTERM at block %d: %v\n%s", block, err, stderr.String())
		}
		if binary.BigEndian.Uint16(buf[2:]) != block+1 {
			continue
		}
		got = append(got, buf[4:n]...)
		if n-4 < 512 {
			cl.WriteToUDP([]byte{0, 4, byte((block + 1) >> 8), byte(block + 1)}, peer)
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, want %d identical", len(got), len(data))
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("did not exit after the transfer finished\n%s", stderr.String())
	}
	late.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := late.ReadFromUDP(buf); err == nil {
		t.Fatalf("a request after SIGTERM was answered: % x", buf[:n])
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Errorf("no shutdown log line:\n%s", stderr.String())
	}
}

// buildBootd builds this command into a temporary folder.
func buildBootd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "osim-bootd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// freeUDPPort returns a port free on 127.0.0.1 at the time of asking.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// freeTCPPort returns a TCP port free on 127.0.0.1 at the time of asking.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServe writes cfg to dir/serve.yaml and starts "bin serve" on it
// (startLogged): its stderr is read while it runs; stop it with stopLogged.
func startServe(t *testing.T, bin, dir, cfg string) (*exec.Cmd, *logBuffer) {
	t.Helper()
	cfgPath := filepath.Join(dir, "serve.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	return startLogged(t, bin, "serve", "--config", cfgPath)
}

// osim-bootd man: its usage as a man page groff formats without a
// warning.
func TestManPage(t *testing.T) {
	out, err := exec.Command(buildBootd(t), "man").Output()
	if err != nil {
		t.Fatal(err)
	}
	if text := manpage.Check(t, out); !strings.Contains(text, "osim-bootd serve --config FILE") {
		t.Errorf("the page lacks the usage:\n%s", text)
	}
}
