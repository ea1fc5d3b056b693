package installer

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"osim/internal/clock"
)

// Power is what Finish calls to reboot or power off; Reboot is the real
// one (PID 1 only).
type Power func(cmd int) error

// Reboot syncs and calls reboot(2) with cmd.
func Reboot(cmd int) error {
	unix.Sync()
	return unix.Reboot(cmd)
}

// Finish carries out res.Action: reboot or power off through power, or
// wait, printing why on console every FailureRepeat until ctx ends. It
// never loops back into an install.
func Finish(ctx context.Context, res Result, console io.Writer, clk clock.Clock, power Power) error {
	switch res.Action {
	case ActionReboot:
		fmt.Fprintf(console, "osim-installer: rebooting%s\n", res.Note)
		return power(unix.LINUX_REBOOT_CMD_RESTART)
	case ActionPowerOff:
		fmt.Fprintf(console, "osim-installer: powering off\n")
		return power(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	clk = clock.Or(clk)
	tk, ch := clk.NewTicker(FailureRepeat)
	defer tk.Stop()
	for {
		if res.Err != nil {
			fmt.Fprintf(console, "osim-installer: install FAILED at %s: %v; waiting (power off or reboot the machine by hand)\n", res.Step, res.Err)
		} else {
			fmt.Fprintf(console, "osim-installer: %s done; waiting for an order\n", res.Mode)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
