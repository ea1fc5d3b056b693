package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"osim/internal/disktest"
	"osim/internal/promtext"
)

// TestBootServerOnAFullDiskKeepsServingAndNeverFaults runs osim-bootd in
// full DHCP mode with its data dir on a filesystem the test mounts
// (tmpfs, then ext4 on a loop device), fills it to the last byte while it
// runs: TFTP and HTTP keep answering, the process neither dies nor
// faults, it stops cleanly; a start on the full disk exits with one line,
// a start with some room runs read-only. Lease writes on such a disk are
// TestLeaseWritesOnAFullDiskAreRefusedNotFaulted's (dataplane/dhcp).
func TestBootServerOnAFullDiskKeepsServingAndNeverFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBootd(t)
	for _, kind := range disktest.Kinds {
		t.Run(kind, func(t *testing.T) { bootdFullDisk(t, bin, kind) })
	}
}

func bootdFullDisk(t *testing.T, bin, kind string) {
	mnt := disktest.Mount(t, kind, 512<<20)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	os.MkdirAll(filepath.Join(dir, "files", "debian"), 0o755)
	nbp := bytes.Repeat([]byte("nbp!"), 5000)
	os.WriteFile(filepath.Join(dir, "tftp", "undionly.kpxe"), nbp, 0o644)
	os.WriteFile(filepath.Join(dir, "files", "debian", "vmlinuz"), []byte("kernel"), 0o644)
	httpPort, metricsPort, tftpPort := freeTCPPort(t), freeTCPPort(t), freeUDPPort(t)
	cfg := fmt.Sprintf(`address: 127.0.0.1
data_dir: %s
metrics_listen: 127.0.0.1:%d
dhcp: {mode: full, listen: 127.0.0.1:%d, boot_listen: 127.0.0.1:%d,
       pools: [{network: 127.0.0.0/8, start: 127.0.0.100, end: 127.0.0.200}]}
tftp: {root: %s, listen: 127.0.0.1:%d}
http: {files: %s, listen: 127.0.0.1:%d}
`, filepath.Join(mnt, "data"), metricsPort, freeUDPPort(t), freeUDPPort(t), filepath.Join(dir, "tftp"), tftpPort,
		filepath.Join(dir, "files"), httpPort)
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	get := func() (int, error) {
		resp, err := http.Get(base + "/files/debian/vmlinuz")
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	waitHTTP := func(stderr *logBuffer) {
		t.Helper()
		for try := 0; ; try++ {
			if code, err := get(); err == nil && code == 200 {
				return
			} else if try == 100 {
				t.Fatalf("http never came up: %d %v\n%s", code, err, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cmd, stderr := startServe(t, bin, dir, cfg)
	waitHTTP(stderr)
	metric := func(name string) float64 { // -1: not on the page
		page, err := promtext.Get(context.Background(), nil, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
		if err != nil {
			t.Fatal(err)
		}
		if len(page[name]) == 0 {
			return -1
		}
		return page.Sum(name)
	}
	if v := metric("osim_disk_free_bytes"); v <= 0 {
		t.Fatalf("osim_disk_free_bytes %v on a new filesystem", v)
	}

	filler := disktest.Fill(t, mnt, 0)
	deadline := time.Now().Add(5 * time.Second)
	for metric("osim_disk_ballast_bytes") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the ballast was not released on a full disk\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if metric("osim_disk_low") != 1 {
		t.Errorf("osim_disk_low %v on a full disk", metric("osim_disk_low"))
	}
	for range 3 {
		if got := tftpGet(t, tftpPort, "undionly.kpxe"); !bytes.Equal(got, nbp) {
			t.Fatalf("tftp on a full disk: %d bytes", len(got))
		}
		if code, err := get(); err != nil || code != 200 {
			t.Fatalf("http on a full disk: %d %v", code, err)
		}
	}
	stopLogged(t, cmd, stderr)

	// A start on the full disk: one line, exit 1, no fault.
	cfgPath := filepath.Join(dir, "serve.yaml")
	out, err := exec.Command(bin, "serve", "--config", cfgPath).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(lines[len(lines)-1], "needed to open the database") ||
		strings.Contains(string(out), "fatal error") || strings.Contains(string(out), "SIGBUS") {
		t.Fatalf("start on a full disk: %v, want exit 1 and one line naming the free space:\n%s", err, out)
	}
	// Some room, below the reserve: starts read-only and serves.
	os.Remove(filler)
	disktest.Fill(t, mnt, 100<<20)
	cmd, stderr = startServe(t, bin, dir, cfg)
	waitHTTP(stderr)
	if got := tftpGet(t, tftpPort, "undionly.kpxe"); !bytes.Equal(got, nbp) {
		t.Fatalf("tftp after a read-only start: %d bytes", len(got))
	}
	stopLogged(t, cmd, stderr)
	if !strings.Contains(stderr.String(), "starting read-only") { // read after Wait: the process no longer writes it
		t.Errorf("a start below the reserve did not say it runs read-only:\n%s", stderr.String())
	}
}
