package procstat

import (
	"net"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestTreeListsAChildProcess(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep binary: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	tree := Tree(os.Getpid())
	if tree[0] != os.Getpid() || !slices.Contains(tree, cmd.Process.Pid) {
		t.Errorf("tree %v lacks the child %d", tree, cmd.Process.Pid)
	}
}

func TestCPUGrowsWithWork(t *testing.T) {
	before, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	after, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("CPU went from %v to %v over 50ms of spinning", before, after)
	}
}

func TestCountSeesAnOpenSocket(t *testing.T) {
	before := Count(os.Getpid())
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if after := Count(os.Getpid()); after.Sockets != before.Sockets+1 {
		t.Errorf("sockets %d → %d, want one more", before.Sockets, after.Sockets)
	}
}

func TestHWMIsReadable(t *testing.T) {
	if hwm, err := HWM(os.Getpid()); err != nil || hwm <= 0 {
		t.Errorf("HWM = %d, %v", hwm, err)
	}
}
