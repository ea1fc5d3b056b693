package installer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"osim/installer/bootargs"
	"osim/installer/initsys"
	"osim/installer/netup"
)

// NICWait bounds the wait for the boot NIC to appear and get carrier.
const NICWait = 60 * time.Second

// Boot does PID 1's duties before Run: mount the kernel file systems,
// load the packed modules, open the console, read the osim.* kernel
// arguments and bring the boot NIC up with DHCP. The Config it answers
// is ready for Run, with the console set.
func Boot(ctx context.Context) (Config, error) {
	if err := initsys.Mount(); err != nil {
		return Config{Console: os.Stderr}, err
	}
	console := initsys.Console()
	// The console already gets one human line per step; the structured log
	// adds warnings, and everything with osim.debug.
	cfg := Config{Console: console, Log: slog.New(slog.NewTextHandler(console, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	say := func(format string, a ...any) { fmt.Fprintf(console, "osim-installer: "+format+"\n", a...) }
	rel := initsys.Release()
	n, err := initsys.LoadModules(initsys.ModulesList, filepath.Join("/lib/modules", rel),
		func(m string, err error) { say("module %s: %v", m, err) })
	if err != nil {
		say("modules: %v", err)
	}
	say("kernel %s, %d modules loaded", rel, n)
	line, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return cfg, fmt.Errorf("reading the kernel command line: %w", err)
	}
	if cfg.Args, err = bootargs.Parse(string(line)); err != nil {
		return cfg, err
	}
	if cfg.Args.Debug {
		cfg.Log = slog.New(slog.NewTextHandler(console, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	say("mode %s, boot server %s, order %q, MAC %s", cfg.Args.Mode, cfg.Args.URL, cfg.Args.Order, orAny(cfg.Args.MAC))
	say("taking an address with DHCP")
	l, err := netup.Up(ctx, cfg.Args.MAC, NICWait, "/sys/class/net")
	if err != nil {
		return cfg, err
	}
	say("network: %s %s via %v", l.Interface, l.Addr.String(), l.Router)
	return cfg, nil
}

func orAny(mac string) string {
	if mac == "" {
		return "(any NIC with carrier)"
	}
	return strings.ToLower(mac)
}

// Hang is PID 1's end when there is nothing left to do: init must never
// exit (the kernel would panic and, with panic=, reboot into a loop).
func Hang(console io.Writer) {
	fmt.Fprintln(console, "osim-installer: halted")
	for {
		time.Sleep(time.Hour)
	}
}
