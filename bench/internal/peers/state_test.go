package peers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startSleep runs `sleep 30` in its own process group, as peers run.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep binary: %v", err)
	}
	// Killed at the end; exited() is the one place that waits for it.
	t.Cleanup(func() { cmd.Process.Kill() })
	// Start returns once exec has begun, but the kernel fills the new
	// image's arguments a moment later: until then /proc/PID/cmdline is
	// empty and reapStale rightly sees another command (CI caught it).
	want := strings.Join(cmd.Args, "\x00")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cmdline")
		if strings.TrimRight(string(b), "\x00") == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep's cmdline is %q, want %q", b, want)
		}
	}
	return cmd
}

// exited waits up to d for cmd to end. Ending must be seen within a
// generous d (a loaded CI machine reaps slowly); sparing needs only a
// short one.
func exited(cmd *exec.Cmd, d time.Duration) bool {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func TestOpenStateEndsPeersAnEarlierRunLeft(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	old, err := OpenState(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := startSleep(t)
	old.Add(cmd.Process.Pid, cmd.Args)

	if _, err := OpenState(path); err != nil {
		t.Fatal(err)
	}
	if !exited(cmd, 15*time.Second) {
		t.Error("the recorded peer still runs")
	}
}

func TestOpenStateSparesAProcessRunningAnotherCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	old, err := OpenState(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := startSleep(t)
	// The pid was reused by something else: the command differs.
	old.Add(cmd.Process.Pid, []string{"/usr/sbin/in.tftpd", "-L"})

	if _, err := OpenState(path); err != nil {
		t.Fatal(err)
	}
	if exited(cmd, 2*time.Second) {
		t.Error("a process that is not the recorded peer was ended")
	}
}
