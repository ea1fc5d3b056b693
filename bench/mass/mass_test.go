package mass

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"osim/internal/testlab"
)

// TestTwentyTargetsReachDoneWithCountersAgreeing is osim-bench end to end
// at CI size: a manager and osim-bootd (built from this tree) in a fresh
// server namespace, 20 simulated targets (BIOS and UEFI) over one veth,
// every order done and every client count equal to the server's counter.
func TestTwentyTargetsReachDoneWithCountersAgreeing(t *testing.T) {
	testlab.RequireRoot(t, "network namespaces")
	bin := t.TempDir()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/osim-manager", "./cmd/osim-bootd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{N: 20, UEFI: 0.5, Spread: 200 * time.Millisecond, NBP: 64 << 10,
		Kernel: 1 << 20, Initrd: 256 << 10, Bin: bin, Timeout: 50 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Print(&b)
	t.Log(b.String())
	if rep.Done != 20 || rep.Failed != 0 {
		t.Errorf("done %d, failed %d; want 20 and 0: %+v", rep.Done, rep.Failed, rep.Failures)
	}
	if rep.Orders["done"] != 20 {
		t.Errorf("manager's orders by state %v, want 20 done", rep.Orders)
	}
	if rep.Mismatches != 0 || len(rep.Counters) < 10 {
		t.Errorf("%d counter mismatches over %d counters", rep.Mismatches, len(rep.Counters))
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), fmt.Sprintf("-%d", os.Getpid())) {
		t.Errorf("namespaces left behind: %s", out)
	}
}

// TestCompareDrivesTheSameTargetsAgainstEachServer is osim-bench -compare
// at CI size: 20 targets through DHCP + NBP against osim-bootd in proxy
// mode and dnsmasq (where installed), every target reaching its NBP, the
// per-target table lined up by MAC, nothing left behind.
func TestCompareDrivesTheSameTargetsAgainstEachServer(t *testing.T) {
	testlab.RequireRoot(t, "network namespaces")
	bin := t.TempDir()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/osim-bootd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	servers := []string{ServerBootd}
	if _, err := os.Stat(DnsmasqBinary); err == nil {
		servers = append(servers, ServerDnsmasq, ServerDnsmasqMax)
	} else {
		t.Logf("%s missing: osim-bootd only", DnsmasqBinary)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := Compare(ctx, CompareOptions{N: 20, UEFI: 0.5, Spread: 200 * time.Millisecond, NBP: 64 << 10,
		Bin: bin, Timeout: 25 * time.Second, Servers: servers})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Print(&b)
	t.Log(b.String())
	if len(rep.Runs) != len(servers) {
		t.Fatalf("%d runs for %d servers", len(rep.Runs), len(servers))
	}
	for _, r := range rep.Runs {
		if r.Error != "" || r.Reached != 20 || r.Failed != 0 {
			t.Errorf("%s: error %q, reached %d, failed %d: %+v", r.Server, r.Error, r.Reached, r.Failed, r.Failures)
		}
	}
	if r := rep.Runs[0]; r.Mismatches != 0 || len(r.Counters) == 0 {
		t.Errorf("osim-bootd: %d counter mismatches over %d counters: %+v", r.Mismatches, len(r.Counters), r.Counters)
	}
	if len(rep.PerMAC) != 20 || len(rep.PerMAC[0].Seconds) != len(servers) || rep.PerMAC[1].Firmware != "edk2-efi-x64" {
		t.Errorf("per-target table: %+v", rep.PerMAC[:min(2, len(rep.PerMAC))])
	}
	if len(servers) == 3 && len(rep.Ratios) != 2 {
		t.Errorf("ratios %+v, want one per dnsmasq run", rep.Ratios)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), fmt.Sprintf("-%d", os.Getpid())) {
		t.Errorf("namespaces left behind: %s", out)
	}
}
