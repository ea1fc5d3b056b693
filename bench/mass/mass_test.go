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
)

// TestTwentyTargetsReachDoneWithCountersAgreeing is osim-bench end to end
// at CI size: a manager and osim-bootd (built from this tree) in a fresh
// server namespace, 20 simulated targets (BIOS and UEFI) over one veth,
// every order done and every client count equal to the server's counter.
func TestTwentyTargetsReachDoneWithCountersAgreeing(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (network namespaces); CI runs as root")
		}
		t.Skip("needs root (network namespaces)")
	}
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

func TestSNMPUDPParse(t *testing.T) {
	s := parseSNMPUDP("Ip: a b\nIp: 1 2\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\nUdp: 10 1 3 7 3\n")
	if s != (UDPStats{InDatagrams: 10, InErrors: 3, RcvbufErrors: 3}) {
		t.Errorf("got %+v", s)
	}
}
