package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logBuffer is a process's stderr that the test reads while it runs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// waitLog waits up to 10 s for the n-th line containing all of want.
func waitLog(t *testing.T, l *logBuffer, n int, want ...string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		seen := 0
		for _, line := range strings.Split(l.String(), "\n") {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				if seen++; seen == n {
					return line
				}
			}
		}
	}
	t.Fatalf("no log line #%d with %q\n%s", n, want, l.String())
	return ""
}

// startLogged starts bin with args, its stderr in a logBuffer; stopped
// (SIGTERM, exit 0) by the caller, killed at cleanup otherwise.
func startLogged(t *testing.T, bin string, args ...string) (*exec.Cmd, *logBuffer) {
	t.Helper()
	l := &logBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = l
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, l
}

func stopLogged(t *testing.T, cmd *exec.Cmd, l *logBuffer) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, l.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", l.String())
	}
}

// waitTFTP waits up to 10 s for a TFTP server on port to answer an RRQ.
func waitTFTP(t *testing.T, port int) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 600)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		c.WriteToUDP([]byte("\x00\x01nbp\x00octet\x00"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, from, err := c.ReadFromUDP(buf); err == nil {
			c.WriteToUDP([]byte{0, 5, 0, 0, 0}, from) // ERROR: end the transfer
			return
		}
	}
	t.Fatal("tftp never answered")
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSIGHUPReloadsTargetsAndLogLevelAndServeKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBootd(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	os.MkdirAll(filepath.Join(dir, "files", "debian"), 0o755)
	os.WriteFile(filepath.Join(dir, "tftp", "undionly.kpxe"), []byte("nbp"), 0o644)
	httpPort, tftpPort := freeTCPPort(t), freeUDPPort(t)
	head := fmt.Sprintf(`address: 127.0.0.1
dhcp: {listen: 127.0.0.1:%d, boot_listen: 127.0.0.1:%d}
http: {files: %s, listen: 127.0.0.1:%d}
images: {deb: {kernel: debian/vmlinuz, cmdline: "console=ttyS0"}}
`, freeUDPPort(t), freeUDPPort(t), filepath.Join(dir, "files"), httpPort)
	tftpLine := fmt.Sprintf("tftp: {root: %s, listen: 127.0.0.1:%d}\n", filepath.Join(dir, "tftp"), tftpPort)
	one := `targets: [{mac: "52:54:00:00:00:01", image: deb, order: o-1, token: tok1}]` + "\n"
	cfgPath := filepath.Join(dir, "serve.yaml")
	os.WriteFile(cfgPath, []byte(head+tftpLine+one), 0o644)
	cmd, logs := startLogged(t, bin, "serve", "--config", cfgPath)
	waitLog(t, logs, 1, "boot server serving")
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	if code, _ := httpGet(t, base+"/ipxe/52-54-00-00-00-02"); code != http.StatusNotFound {
		t.Fatalf("target 2 before the reload: %d, want 404", code)
	}

	// Target 2 added, debug logging, and a TFTP change that needs a restart.
	two := `targets: [{mac: "52:54:00:00:00:01", image: deb, order: o-1, token: tok1}, {mac: "52:54:00:00:00:02", image: deb, order: o-2, token: tok2}]` + "\n"
	tftpChanged := strings.Replace(tftpLine, "}", ", max_window: 16}", 1)
	os.WriteFile(cfgPath, []byte(head+tftpChanged+two+"log_level: debug\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	line := waitLog(t, logs, 1, "reloaded on SIGHUP")
	for _, want := range []string{"applied=\"[log_level targets images boot]\"", "needs_restart=[tftp]", "targets=2", "log_level=DEBUG"} {
		if !strings.Contains(line, want) {
			t.Errorf("reload line lacks %s: %s", want, line)
		}
	}
	waitLog(t, logs, 1, "config changes not applied until a restart", "keys=[tftp]")
	if code, body := httpGet(t, base+"/ipxe/52-54-00-00-00-02"); code != http.StatusOK || !strings.Contains(body, "debian/vmlinuz") {
		t.Fatalf("target 2 after the reload: %d\n%s", code, body)
	}

	// A broken file is refused whole; the running config stays.
	os.WriteFile(cfgPath, []byte(head+tftpLine+"targets: [{mac: zz}]\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, logs, 1, "reload refused: the running configuration stays", "targets[0].mac")
	if code, _ := httpGet(t, base+"/ipxe/52-54-00-00-00-02"); code != http.StatusOK {
		t.Fatalf("target 2 after a refused reload: %d", code)
	}
	if got := tftpGet(t, tftpPort, "undionly.kpxe"); string(got) != "nbp" {
		t.Fatalf("tftp after two SIGHUPs: %q", got)
	}
	stopLogged(t, cmd, logs)
}

func TestSIGHUPDoesNotStopTFTPMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBootd(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "nbp"), []byte("boot me"), 0o644)
	port := freeUDPPort(t)
	cmd, logs := startLogged(t, bin, "tftp", "--root", root, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	waitTFTP(t, port)
	if got := tftpGet(t, port, "nbp"); string(got) != "boot me" {
		t.Fatalf("before SIGHUP: %q", got)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, logs, 1, "SIGHUP: osim-bootd tftp has no config file to re-read")
	if got := tftpGet(t, port, "nbp"); string(got) != "boot me" {
		t.Fatalf("after SIGHUP: %q", got)
	}
	stopLogged(t, cmd, logs)
}
