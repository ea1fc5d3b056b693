package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// run runs bin with args: its exit code and stderr.
func run(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

// TestBackupAndRestoreOfAServedDataDir runs the binary: a data dir that
// `serve` (full DHCP) wrote is refused while it serves, with one line;
// stopped, it is backed up (an existing --to refused, no temporary file
// left), restored into a new dir (an occupied one refused, a cut backup
// refused and nothing left), and `serve` runs on the restored dir.
func TestBackupAndRestoreOfAServedDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBootd(t)
	for _, args := range [][]string{{"backup", "-h"}, {"restore", "--help"}} {
		if code, _ := run(t, bin, args...); code != 0 {
			t.Errorf("%v: exit %d, want 0", args, code)
		}
	}
	out, _ := exec.Command(bin, "help").Output()
	for _, want := range []string{"osim-bootd backup --data-dir DIR --to FILE", "osim-bootd restore --from FILE --data-dir DIR"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	os.MkdirAll(filepath.Join(dir, "files"), 0o755)
	os.WriteFile(filepath.Join(dir, "files", "f"), []byte("f"), 0o644)
	httpPort := freeTCPPort(t)
	serveOn := func(data string) string {
		return fmt.Sprintf(`address: 127.0.0.1
data_dir: %s
dhcp: {mode: full, listen: 127.0.0.1:%d, boot_listen: 127.0.0.1:%d,
       pools: [{network: 127.0.0.0/8, start: 127.0.0.100, end: 127.0.0.200}]}
tftp: {root: %s, listen: 127.0.0.1:%d}
http: {files: %s, listen: 127.0.0.1:%d}
`, data, freeUDPPort(t), freeUDPPort(t), filepath.Join(dir, "tftp"), freeUDPPort(t), filepath.Join(dir, "files"), httpPort)
	}
	waitHTTP := func(l *logBuffer) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/files/f", httpPort))
			if err == nil {
				resp.Body.Close()
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("http never came up: %v\n%s", err, l.String())
			}
		}
	}
	data, to := filepath.Join(dir, "data"), filepath.Join(dir, "bs.osim")
	cmd, stderr := startServe(t, bin, dir, serveOn(data))
	waitHTTP(stderr)
	code, msg := run(t, bin, "backup", "--data-dir", data, "--to", to)
	if want := "osim-bootd: stop osim-bootd first: " + data + " is in use\n"; code != 1 || msg != want {
		t.Errorf("backup of a served data dir: exit %d %q, want 1 and %q", code, msg, want)
	}
	stopLogged(t, cmd, stderr)
	if ents, _ := filepath.Glob(filepath.Join(dir, "*osim*")); len(ents) != 0 {
		t.Errorf("a refused backup left %v", ents)
	}

	if code, msg := run(t, bin, "backup", "--data-dir", data, "--to", to); code != 0 || !strings.Contains(msg, "checksum verified") {
		t.Fatalf("backup of the stopped data dir: exit %d\n%s", code, msg)
	}
	if code, msg := run(t, bin, "backup", "--data-dir", data, "--to", to); code != 2 || !strings.Contains(msg, "exists") {
		t.Errorf("backup onto an existing file: exit %d %s", code, msg)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, ".osim-bootd-backup-*")); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}

	whole, _ := os.ReadFile(to)
	cut := filepath.Join(dir, "cut.osim")
	os.WriteFile(cut, whole[:len(whole)/2], 0o644)
	if code, msg := run(t, bin, "restore", "--from", cut, "--data-dir", filepath.Join(dir, "never")); code != 1 || !strings.Contains(msg, "not a whole osim backup") {
		t.Errorf("restore of a cut backup: exit %d %s", code, msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); err == nil {
		t.Error("a refused restore left its data dir")
	}
	restored := filepath.Join(dir, "restored")
	if code, msg := run(t, bin, "restore", "--from", to, "--data-dir", restored); code != 0 || !strings.Contains(msg, "data dir format 1") {
		t.Fatalf("restore: exit %d\n%s", code, msg)
	}
	if code, msg := run(t, bin, "restore", "--from", to, "--data-dir", restored); code != 1 || !strings.Contains(msg, "not empty") {
		t.Errorf("restore into an occupied dir: exit %d %s", code, msg)
	}
	cmd, stderr = startServe(t, bin, dir, serveOn(restored))
	waitHTTP(stderr)
	stopLogged(t, cmd, stderr)
}
