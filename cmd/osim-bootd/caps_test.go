package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"osim/internal/testlab"
)

// capAmb is CapAmb of process pid's /proc status.
func capAmb(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapAmb:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no CapAmb in /proc/%d/status", pid)
	return ""
}

// The packaged unit hands osim-bootd its capabilities as ambient ones; a
// static osim-bootd (as packaged) empties that set on start, so the tools
// it runs (ipmitool, virsh) do not inherit them. Run under setpriv with
// an ambient CAP_NET_RAW, as systemd's AmbientCapabilities= would.
func TestServeDropsItsAmbientCapabilities(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	testlab.RequireRoot(t, "setpriv raises ambient capabilities")
	setpriv := testlab.RequireTool(t, "setpriv", "util-linux")
	bin := filepath.Join(t.TempDir(), "osim-bootd")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	raise := []string{"--inh-caps=+net_raw", "--ambient-caps=+net_raw"}
	// The control: setpriv does give an exec'd program the ambient set.
	out, err := exec.Command(setpriv, append(raise, "grep", "CapAmb", "/proc/self/status")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "0000000000002000") {
		t.Fatalf("setpriv did not raise CAP_NET_RAW (bit 13) as ambient: %v %s", err, out)
	}

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	os.MkdirAll(filepath.Join(dir, "files"), 0o755)
	httpPort := freeTCPPort(t)
	cfg := fmt.Sprintf(`address: 127.0.0.1
dhcp: {listen: 127.0.0.1:%d, boot_listen: 127.0.0.1:%d}
tftp: {root: %s, listen: 127.0.0.1:%d}
http: {files: %s, listen: 127.0.0.1:%d}
`, freeUDPPort(t), freeUDPPort(t), filepath.Join(dir, "tftp"), freeUDPPort(t), filepath.Join(dir, "files"), httpPort)
	cfgPath := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, stderr := startLogged(t, setpriv, append(raise, bin, "serve", "--config", cfgPath)...)
	for try := 0; ; try++ {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/files/none", httpPort))
		if err == nil {
			resp.Body.Close()
			break
		}
		if try == 100 {
			t.Fatalf("http never came up: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if amb := capAmb(t, cmd.Process.Pid); strings.Trim(amb, "0") != "" {
		t.Errorf("serving osim-bootd still has ambient capabilities %s", amb)
	}
	if strings.Contains(stderr.String(), "ambient capabilities not dropped") {
		t.Errorf("it warned:\n%s", stderr.String())
	}
	stopLogged(t, cmd, stderr)
}
