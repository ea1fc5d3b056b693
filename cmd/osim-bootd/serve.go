package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"osim/internal/bootd"
	"osim/internal/cpuprofile"
	"osim/internal/logging"
)

// serveFlags are serve's command line; the overrides win over the file.
type serveFlags struct {
	config, address, mode, tftpRoot, files, metricsListen string
	grace                                                 time.Duration
	logLevel, logFormat, cpuProfile                       string
	levelSet, check                                       bool
	memLimit                                              int
}

func parseServeFlags(args []string) (*serveFlags, error) {
	f := &serveFlags{}
	fs := flag.NewFlagSet("osim-bootd serve", flag.ContinueOnError)
	fs.StringVar(&f.config, "config", "", "YAML config file (see README.md)")
	fs.StringVar(&f.address, "address", "", "override: the boot server's IPv4 address on the provisioning network")
	fs.StringVar(&f.mode, "dhcp-mode", "", "override: proxy or full")
	fs.StringVar(&f.tftpRoot, "tftp-root", "", "override: folder served over TFTP")
	fs.StringVar(&f.files, "http-files", "", "override: folder served under /files/")
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "override: serve Prometheus /metrics on this TCP address")
	fs.DurationVar(&f.grace, "grace", 5*time.Second, "on SIGINT/SIGTERM, how long running transfers may finish")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text (key=value) or json, one line per event on stderr")
	fs.BoolVar(&f.check, "check", false, "check the config, print what would run, and exit")
	fs.StringVar(&f.cpuProfile, "cpu-profile", "", "write a Go CPU profile (go tool pprof) of the whole run to this file, finished at exit")
	fs.IntVar(&f.memLimit, "memory-limit-mib", 320, "soft limit of the Go heap in MiB (runtime/debug.SetMemoryLimit): the GC works harder near it instead of doubling the heap; 0: none. GOMEMLIMIT, when set, wins")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	fs.Visit(func(fl *flag.Flag) { f.levelSet = f.levelSet || fl.Name == "log-level" })
	return f, nil
}

// overrides applies the flags that override the file (again on reload).
func (f *serveFlags) overrides(c *bootd.Config) {
	for dst, v := range map[*string]string{&c.Address: f.address, &c.DHCP.Mode: f.mode,
		&c.TFTP.Root: f.tftpRoot, &c.HTTP.Files: f.files, &c.MetricsListen: f.metricsListen} {
		if v != "" {
			*dst = v
		}
	}
}

// runServe runs DHCP (proxy or full), TFTP and HTTP together from a YAML
// config (internal/bootd), flags overriding it.
func runServe(args []string) int {
	f, err := parseServeFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0 // -h: the usage was the answer
	}
	if err != nil {
		return 2
	}
	tuneRuntime(f.memLimit)
	log, level, err := logging.NewLeveled(f.logLevel, f.logFormat)
	if err != nil {
		return fail(err, 2)
	}
	dropAmbientCaps(log)
	// Installed before anything runs: SIGHUP's default would end the process.
	hupCtx, hupStop := context.WithCancel(context.Background())
	defer hupStop()
	var node atomic.Pointer[bootd.Node] // set once serving
	watchSIGHUP(hupCtx, func() {
		if n := node.Load(); n != nil {
			n.Reload()
			return
		}
		log.Info("SIGHUP before serving: nothing reloaded")
	})
	cfg, err := bootd.LoadConfig(f.config)
	if err != nil {
		return fail(err, 2)
	}
	f.overrides(cfg)
	// --check and serve run the same checks; --check also fails on missing files.
	checked, err := bootd.Check(cfg, f.check)
	if err != nil {
		return fail(err, 2)
	}
	if !f.levelSet && cfg.LogLevel != "" {
		_ = level.UnmarshalText([]byte(cfg.LogLevel)) // checked
	}
	if f.check {
		fmt.Println(checked.Summary())
		return 0
	}
	stopProfile, err := cpuprofile.Start(f.cpuProfile)
	if err != nil {
		return fail(err, 1)
	}
	defer stopProfile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := bootd.Build(checked, bootd.Options{Log: log, Level: level, LevelFlag: f.levelSet, Path: f.config, Overrides: f.overrides})
	if err != nil {
		if errors.As(err, new(bootd.ConfigError)) {
			return fail(err, 2)
		}
		return fail(err, 1)
	}
	node.Store(n)
	if err := n.Run(ctx, f.grace); errors.Is(err, bootd.ErrStopped) {
		return 1 // logged
	} else if err != nil {
		return fail(err, 1)
	}
	return 0
}

// fail says why serve ends and returns its exit code.
func fail(err error, code int) int {
	fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
	return code
}

// tuneRuntime sets the heap's soft limit and, on one CPU, a second P.
func tuneRuntime(memLimitMiB int) {
	if memLimitMiB > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(memLimitMiB) << 20)
	}
	// On one CPU (a small VM, or pinned) Go runs one P, and a Badger
	// flush or compaction holds it for whole 10 ms scheduling slices while
	// DHCP answers wait: 20 ms each, several in a row, under a burst of
	// new clients. With two, the kernel's scheduler decides, and it lets
	// the thread a packet woke run within a few milliseconds.
	if runtime.GOMAXPROCS(0) < 2 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2)
	}
}
