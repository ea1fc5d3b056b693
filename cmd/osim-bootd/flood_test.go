package main

import (
	"bufio"
	"fmt"
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

// floodLab is osim-bootd in full DHCP mode in one namespace and perfdhcp
// (a relay to it: giaddr is its -l address) in another, joined by a veth.
type floodLab struct {
	srv, cli string
	metrics  string // URL, reached from the client namespace
}

const floodServer = "10.97.0.1"

// floodNeeds is why the flood test needs root.
const floodNeeds = "the DHCP flood test (network namespaces, veth, port 67)"

func newFloodLab(t *testing.T) *floodLab {
	t.Helper()
	pid := os.Getpid()
	p := testlab.NewTestPair(t, testlab.PairSpec{Prefix: "osim-fl",
		ServerIf: fmt.Sprintf("fls%d", pid), ClientIf: fmt.Sprintf("flc%d", pid),
		// .2 floods and .3 relays the known client (allowed relays); .4 is not allowed.
		ServerAddr: netip.MustParsePrefix(floodServer + "/24"), ClientAddr: netip.MustParsePrefix("10.97.0.2/24"),
	}, floodNeeds)
	for _, a := range []string{"10.97.0.3/24", "10.97.0.4/24"} {
		testlab.RunIP(t, "-n", p.Client, "addr", "add", a, "dev", p.ClientIf)
	}
	return &floodLab{srv: p.Server, cli: p.Client, metrics: "http://" + floodServer + ":9167/metrics"}
}

// perfdhcp runs perfdhcp in the client namespace from relay; the ACKs
// received (REQUEST-ACK) and, of the DISCOVERs sent, the OFFERs received.
func (l *floodLab) perfdhcp(t *testing.T, relay string, args ...string) (acks, discovers, offers int, out string) {
	t.Helper()
	argv := append([]string{"netns", "exec", l.cli, "perfdhcp", "-4", "-l", relay}, args...)
	b, err := exec.Command("ip", append(argv, floodServer)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 3) { // 3: some exchanges unanswered
		t.Fatalf("perfdhcp %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if s, ok := strings.CutPrefix(line, "***Statistics for: "); ok {
			section = strings.TrimSuffix(s, "***")
		}
		k, v, ok := strings.Cut(line, ": ")
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			continue
		}
		switch {
		case section == "DISCOVER-OFFER" && k == "sent packets":
			discovers = n
		case section == "DISCOVER-OFFER" && k == "received packets":
			offers = n
		case section == "REQUEST-ACK" && k == "received packets":
			acks = n
		}
	}
	return acks, discovers, offers, string(b)
}

// metric reads one sample of the server's /metrics (0 if absent).
func (l *floodLab) metric(t *testing.T, series string) float64 {
	t.Helper()
	b, err := exec.Command("ip", "netns", "exec", l.cli, "curl", "-sf", l.metrics).Output()
	if err != nil {
		t.Fatalf("scrape %s: %v", l.metrics, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestRandomMACFloodInNamespacesLeavesKnownClientsTheirLeases is issue
// 11's attack on the real binary: perfdhcp floods a 100-address pool with
// random MACs through an allowed relay, with the userspace guard on; the
// unknown clients get at most half the pool (the default cap), a known
// target still gets its lease during the flood, and a relay the pool does
// not name allocates nothing.
func TestRandomMACFloodInNamespacesLeavesKnownClientsTheirLeases(t *testing.T) {
	testlab.RequireRoot(t, floodNeeds)
	testlab.RequireTool(t, "perfdhcp", "kea-admin")
	bin := buildBootd(t)
	l := newFloodLab(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	os.MkdirAll(filepath.Join(dir, "files"), 0o755)
	cfg := fmt.Sprintf(`address: %[1]s
metrics_listen: %[1]s:9167
data_dir: %[2]s/data
dhcp:
  mode: full
  pools:
    - {network: 10.97.0.0/24, start: 10.97.0.100, end: 10.97.0.199, lease_time: 1h, allowed_relays: [10.97.0.2, 10.97.0.3]}
tftp: {root: %[2]s/tftp}
http: {files: %[2]s/files}
xdp: {}
images: {deb: {kernel: debian/vmlinuz}}
targets: [{mac: "52:54:00:aa:00:01", image: deb, order: o-1, token: tok1}]
`, floodServer, dir)
	os.WriteFile(filepath.Join(dir, "serve.yaml"), []byte(cfg), 0o644)
	cmd, logs := startLogged(t, "ip", "netns", "exec", l.srv, bin, "serve", "--config", filepath.Join(dir, "serve.yaml"))
	waitLog(t, logs, 1, "boot server serving")

	// The flood: 1,000 DISCOVERs/s from up to 100,000 MACs for 3 s; the
	// known target asks (once a second for 2 s), 1 s in.
	type result struct{ acks, discovers, offers int }
	flood := make(chan result, 1)
	start := time.Now()
	go func() {
		a, d, o, _ := l.perfdhcp(t, "10.97.0.2", "-r", "1000", "-R", "100000", "-b", "mac=02:ee:00:00:00:00", "-p", "3", "-W", "1000000")
		flood <- result{a, d, o}
	}()
	time.Sleep(time.Second)
	known, _, _, out := l.perfdhcp(t, "10.97.0.3", "-r", "1", "-R", "1", "-b", "mac=52:54:00:aa:00:01", "-p", "2", "-W", "1000000")
	f := <-flood
	took := time.Since(start)
	if known < 1 {
		t.Errorf("the known target got no ACK during the flood\n%s", out)
	}
	capped := l.metric(t, `osim_dhcp_refused_total{pool="10.97.0.0/24",reason="unknown_cap"}`)
	active := l.metric(t, "osim_dhcp_leases_active")
	t.Logf("flood: %d DISCOVERs, %d OFFERs, %d ACKs in %s; %v refused at the cap; leases active %v; known target ACKed: %d",
		f.discovers, f.offers, f.acks, took.Round(time.Millisecond), capped, active, known)
	if f.acks > 50 || active > 51 {
		t.Errorf("unknown clients bound %d addresses (%v active with the known one), want at most the cap of 50", f.acks, active)
	}
	if capped == 0 {
		t.Error("no DISCOVER refused at the cap")
	}

	// A relay the pool does not name: nothing allocated, every request counted.
	spoofed, sd, so, _ := l.perfdhcp(t, "10.97.0.4", "-r", "200", "-R", "1000", "-b", "mac=02:dd:00:00:00:00", "-p", "1", "-W", "500000")
	relay := l.metric(t, `osim_dhcp_refused_total{pool="10.97.0.0/24",reason="relay_not_allowed"}`)
	t.Logf("spoofed relay: %d DISCOVERs, %d OFFERs, %d ACKs; %v refused as relay_not_allowed; leases active %v", sd, so, spoofed, relay, l.metric(t, "osim_dhcp_leases_active"))
	if so != 0 || relay < float64(sd) {
		t.Errorf("relay not allowed: %d offers, %v counted of %d DISCOVERs", so, relay, sd)
	}
	if a := l.metric(t, "osim_dhcp_leases_active"); a != active {
		t.Errorf("leases active %v after the spoofed relay, was %v", a, active)
	}
	stopLogged(t, cmd, logs)
}
