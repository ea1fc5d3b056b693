package main

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeKeepsServingWhenTheJoinTokenIsRefused: the manager refuses the
// join token (401); the agent stops, but the process does not: TFTP keeps
// answering from the local root and the log says why the agent stopped.
// Before, the agent's error ended the process (exit 1) and DHCP and TFTP
// with it.
func TestServeKeepsServingWhenTheJoinTokenIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	msrv := httptest.NewServer((&miniManager{}).handler())
	defer msrv.Close()
	bin := buildBootd(t)
	dir := t.TempDir()
	nbp := bytes.Repeat([]byte("nbp!"), 500)
	os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	os.WriteFile(filepath.Join(dir, "tftp", "undionly.kpxe"), nbp, 0o644)
	tftpPort := freeUDPPort(t)
	cfg := fmt.Sprintf(`address: 127.0.0.1
data_dir: %s
manager: {url: %q, join_token: not-the-token, name: bs1, site: lab}
dhcp: {listen: 127.0.0.1:%d, boot_listen: 127.0.0.1:%d}
tftp: {root: %s, listen: 127.0.0.1:%d}
http: {listen: 127.0.0.1:%d}
`, filepath.Join(dir, "data"), msrv.URL, freeUDPPort(t), freeUDPPort(t), filepath.Join(dir, "tftp"), tftpPort, freeTCPPort(t))
	cmd, stderr := startServe(t, bin, dir, cfg)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(stderr.String(), "agent stopped"); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("osim-bootd exited (%v) when the join token was refused:\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line saying the agent stopped:\n%s", stderr.String())
		}
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-exited:
		t.Fatalf("osim-bootd exited (%v) after the agent stopped:\n%s", err, stderr.String())
	default:
	}
	if got := tftpGet(t, tftpPort, "undionly.kpxe"); !bytes.Equal(got, nbp) {
		t.Fatalf("tftp after the agent stopped: %d bytes, want %d", len(got), len(nbp))
	}
	if !strings.Contains(stderr.String(), "401") {
		t.Errorf("the log does not give the manager's answer:\n%s", stderr.String())
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
}
