package installer

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"osim/internal/clock"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestFinishRebootsOrPowersOffAsAsked(t *testing.T) {
	for action, want := range map[string]int{ActionReboot: unix.LINUX_REBOOT_CMD_RESTART, ActionPowerOff: unix.LINUX_REBOOT_CMD_POWER_OFF} {
		got := -1
		Finish(context.Background(), Result{Action: action}, &bytes.Buffer{}, nil, func(cmd int) error { got = cmd; return nil })
		if got != want {
			t.Errorf("%s: reboot(2) cmd %#x, want %#x", action, got, want)
		}
	}
}

func TestFailedWaitRepeatsTheReasonAndNeverReboots(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	var out lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Finish(ctx, Result{Action: ActionWait, Step: "verify", Err: errors.New("sha256 mismatch")}, &out, clk,
			func(int) error { t.Error("rebooted while waiting"); return nil })
	}()
	clk.WaitPending(ctx, 1)
	printed := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(out.String(), "FAILED at verify: sha256 mismatch") < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i := range 3 {
		printed(i + 1) // the ticker drops ticks for a slow reader: one minute at a time
		clk.Step(FailureRepeat)
	}
	printed(4)
	cancel()
	<-done
	if n := strings.Count(out.String(), "FAILED at verify: sha256 mismatch"); n != 4 {
		t.Errorf("reason printed %d times over 3 minutes, want 4 (at once and every minute):\n%s", n, out.String())
	}
}
