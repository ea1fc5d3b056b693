// Command osim-installer is the osim installer: the init (PID 1) of the
// boot image's initramfs, or, with `run --no-init`, an ordinary process
// for tests and labs. See installer/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"osim/installer"
	"osim/installer/bootargs"
	"osim/internal/clock"
)

func main() {
	if os.Getpid() == 1 || (len(os.Args) > 1 && os.Args[1] == "init") {
		asInit()
		return
	}
	if len(os.Args) < 2 || os.Args[1] != "run" {
		fmt.Fprintln(os.Stderr, "usage: osim-installer run --cmdline 'osim.mode=install osim.url=... ...' [--no-init] [flags]; as PID 1 it runs by itself")
		os.Exit(2)
	}
	os.Exit(run(os.Args[2:]))
}

// asInit is the target's path: boot duties, the install, then reboot,
// power off or wait, and never exit.
func asInit() {
	ctx := context.Background()
	cfg, err := installer.Boot(ctx)
	res := installer.Result{Action: installer.ActionWait, Step: "boot", Err: err}
	if err == nil {
		res = installer.Run(ctx, cfg)
	}
	installer.Finish(ctx, res, cfg.Console, clock.Real{}, installer.Reboot)
	installer.Hang(cfg.Console)
}

// run is `osim-installer run`: the same flow without init duties; it
// never reboots or powers off, it says what it would do and exits 0 on
// success, 1 on failure.
func run(args []string) int {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	line := fs.String("cmdline", "", "kernel command line to read osim.* from (default: /proc/cmdline)")
	noInit := fs.Bool("no-init", true, "do not mount, load modules or configure the network (the only mode outside PID 1)")
	sys := fs.String("sysfs", "/sys", "sysfs root for the inventory")
	proc := fs.String("procfs", "/proc", "procfs root for the inventory")
	dev := fs.String("dev", "/dev", "where disk device nodes are")
	mnt := fs.String("mount-dir", installer.DefaultMountDir, "where the installed root is mounted to customize it")
	loop := fs.Bool("include-loop", false, "let loop devices be chosen as the target disk (labs)")
	window := fs.Duration("report-window", 5*time.Minute, "retry window of each report to the boot server")
	giveUp := fs.Duration("stream-give-up", 10*time.Minute, "give up resuming the image transfer after this long without progress")
	fs.Parse(args)
	if !*noInit {
		fmt.Fprintln(os.Stderr, "osim-installer: init duties run only as PID 1")
		return 2
	}
	if *line == "" {
		b, err := os.ReadFile("/proc/cmdline")
		if err != nil {
			fmt.Fprintln(os.Stderr, "osim-installer:", err)
			return 2
		}
		*line = string(b)
	}
	a, err := bootargs.Parse(*line)
	if err != nil {
		fmt.Fprintln(os.Stderr, "osim-installer:", err)
		return 2
	}
	res := installer.Run(context.Background(), installer.Config{Args: a, SysRoot: *sys, ProcRoot: *proc, DevRoot: *dev,
		MountDir: *mnt, IncludeLoop: *loop, StreamGiveUp: *giveUp, ReportWindow: *window, Log: slog.New(slog.DiscardHandler)})
	fmt.Fprintf(os.Stderr, "osim-installer: would now %s%s (not as PID 1: exiting)\n", res.Action, res.Note)
	if res.Failed() {
		return 1
	}
	return 0
}
