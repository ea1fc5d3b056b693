package testlab

import (
	"os/exec"
	"testing"
	"time"
)

func TestAliveTreatsAnUnreapedChildAsDead(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep binary: %v", err)
	}
	pid := cmd.Process.Pid
	if !Alive(pid) {
		t.Fatalf("running child %d reported dead", pid)
	}
	cmd.Process.Kill()
	// Not reaped yet: a zombie until Wait.
	deadline := time.Now().Add(2 * time.Second)
	for Alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if Alive(pid) {
		t.Errorf("killed child %d still reported alive", pid)
	}
	cmd.Wait()
}
