package main

import (
	"fmt"
	"net/http"
	"net/netip"
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

// unitCaps are the capabilities osim-bootd.service grants
// (deploy/debian/systemd): its bounding set and ambient set.
const unitCaps = "net_bind_service,net_admin,net_raw,bpf,perfmon"

// The unit file must grant exactly unitCaps (a change to one is a change
// to the other).
func TestUnitGrantsTheTestedCapabilities(t *testing.T) {
	b, err := os.ReadFile("../../deploy/debian/systemd/osim-bootd.service")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range strings.Split(unitCaps, ",") {
		want = append(want, "CAP_"+strings.ToUpper(c))
	}
	for _, key := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		line := grepLines(string(b), key+"=")
		if got := strings.Fields(strings.TrimPrefix(line, key+"=")); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("osim-bootd.service %s: %v, want %v (what this test runs with)", key, got, want)
		}
	}
}

// TestXDPAttachesWithOnlyTheUnitsCapabilities runs osim-bootd as the
// packaged unit does, as far as capabilities go: a user that is not root
// (nobody), holding exactly the unit's capabilities as ambient ones and
// no others in its bounding set. In a network namespace with a veth, it
// binds the privileged DHCP and TFTP ports and attaches the XDP program
// to the interface (osim_xdp_attached 1, mode driver or generic), which
// is what those capabilities are granted for.
func TestXDPAttachesWithOnlyTheUnitsCapabilities(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const needs = "the XDP attach under the unit's capabilities (network namespaces, veth, setpriv)"
	testlab.RequireRoot(t, needs)
	setpriv := testlab.RequireTool(t, "setpriv", "util-linux")
	// A dir nobody can read: the binary and its config.
	dir, err := os.MkdirTemp("", "osim-caps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{dir, filepath.Join(dir, "tftp"), filepath.Join(dir, "files")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "osim-bootd")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	pid := os.Getpid()
	srvIf := fmt.Sprintf("cps%d", pid)
	p := testlab.NewTestPair(t, testlab.PairSpec{Prefix: "osim-cp", ServerIf: srvIf, ClientIf: fmt.Sprintf("cpc%d", pid),
		ServerAddr: netip.MustParsePrefix("10.96.0.1/24"), ClientAddr: netip.MustParsePrefix("10.96.0.2/24")}, needs)
	cfg := fmt.Sprintf(`address: 10.96.0.1
metrics_listen: 10.96.0.1:9167
tftp: {root: %[1]s/tftp}
http: {files: %[1]s/files, listen: 10.96.0.1:8080}
xdp: {interface: %[2]s}
`, dir, srvIf)
	cfgPath := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	caps := []string{"--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all,+" + strings.ReplaceAll(unitCaps, ",", ",+"),
		"--ambient-caps=-all,+" + strings.ReplaceAll(unitCaps, ",", ",+"),
		"--bounding-set=-all,+" + strings.ReplaceAll(unitCaps, ",", ",+")}
	cmd, logs := startLogged(t, "ip", append([]string{"netns", "exec", p.Server, setpriv}, append(caps, bin, "serve", "--config", cfgPath)...)...)
	waitLog(t, logs, 1, "boot server serving")

	b, err := exec.Command("ip", "netns", "exec", p.Client, "curl", "-sf", "http://10.96.0.1:9167/metrics").Output()
	if err != nil {
		t.Fatalf("scrape: %v\n%s", err, logs.String())
	}
	metrics := string(b)
	if !strings.Contains(metrics, fmt.Sprintf("osim_xdp_attached{interface=%q} 1", srvIf)) {
		t.Errorf("XDP not attached with the unit's capabilities:\n%s\n%s", grepLines(metrics, "osim_xdp_"), logs.String())
	}
	if !strings.Contains(metrics, `osim_xdp_mode{mode="driver"} 1`) && !strings.Contains(metrics, `osim_xdp_mode{mode="generic"} 1`) {
		t.Errorf("XDP mode:\n%s", grepLines(metrics, "osim_xdp_mode"))
	}
	// It really ran as nobody, with no capability beyond the unit's.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", serverPID(t, cmd.Process.Pid)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65534", "CapBnd:\t000000c000003400"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("the serving process's status lacks %q:\n%s", want, grepLines(string(status), "Uid", "Cap"))
		}
	}
	stopLogged(t, cmd, logs)
}

// serverPID is pid itself once it has exec'd osim-bootd (ip netns exec
// and setpriv exec in place), checked through /proc.
func serverPID(t *testing.T, pid int) int {
	t.Helper()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || filepath.Base(exe) != "osim-bootd" {
		t.Fatalf("process %d runs %q (%v), not osim-bootd", pid, exe, err)
	}
	return pid
}

// grepLines keeps the lines of s holding any of subs.
func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
