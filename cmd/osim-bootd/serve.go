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

// runServe runs DHCP (proxy or full), TFTP and HTTP together from a YAML
// config (internal/bootd), flags overriding it.
func runServe(args []string) int {
	fs := flag.NewFlagSet("osim-bootd serve", flag.ContinueOnError)
	var (
		config   = fs.String("config", "", "YAML config file (see README.md)")
		address  = fs.String("address", "", "override: the boot server's IPv4 address on the provisioning network")
		mode     = fs.String("dhcp-mode", "", "override: proxy or full")
		tftpRoot = fs.String("tftp-root", "", "override: folder served over TFTP")
		files    = fs.String("http-files", "", "override: folder served under /files/")
		metricsL = fs.String("metrics-listen", "", "override: serve Prometheus /metrics on this TCP address")
		grace    = fs.Duration("grace", 5*time.Second, "on SIGINT/SIGTERM, how long running transfers may finish")
		logLevel = fs.String("log-level", "info", "debug, info, warn or error")
		check    = fs.Bool("check", false, "check the config, print what would run, and exit")
		cpuProf  = fs.String("cpu-profile", "", "write a Go CPU profile (go tool pprof) of the whole run to this file, finished at exit")
		memLimit = fs.Int("memory-limit-mib", 320, "soft limit of the Go heap in MiB (runtime/debug.SetMemoryLimit): the GC works harder near it instead of doubling the heap; 0: none. GOMEMLIMIT, when set, wins")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	tuneRuntime(*memLimit)
	log, level, err := logging.NewLeveled(*logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
		return 2
	}
	levelFlag := false
	fs.Visit(func(f *flag.Flag) { levelFlag = levelFlag || f.Name == "log-level" })
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
	cfg, err := bootd.LoadConfig(*config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
		return 2
	}
	overrides := func(c *bootd.Config) {
		for dst, v := range map[*string]string{&c.Address: *address, &c.DHCP.Mode: *mode,
			&c.TFTP.Root: *tftpRoot, &c.HTTP.Files: *files, &c.MetricsListen: *metricsL} {
			if v != "" {
				*dst = v
			}
		}
	}
	overrides(cfg)
	// --check and serve run the same checks; --check also fails on missing files.
	checked, err := bootd.Check(cfg, *check)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
		return 2
	}
	if !levelFlag && cfg.LogLevel != "" {
		_ = level.UnmarshalText([]byte(cfg.LogLevel)) // checked
	}
	if *check {
		fmt.Println(checked.Summary())
		return 0
	}
	stopProfile, err := cpuprofile.Start(*cpuProf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
		return 1
	}
	defer stopProfile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := bootd.Build(checked, bootd.Options{Log: log, Level: level, LevelFlag: levelFlag, Path: *config, Overrides: overrides})
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
		if errors.As(err, new(bootd.ConfigError)) {
			return 2
		}
		return 1
	}
	node.Store(n)
	if err := n.Run(ctx, *grace); err != nil {
		if !errors.Is(err, bootd.ErrStopped) { // a service that stopped is logged
			fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
		}
		return 1
	}
	return 0
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

// watchSIGHUP runs reload on every SIGHUP until ctx ends. It is installed
// before the services start: SIGHUP's default action would end the
// process.
func watchSIGHUP(ctx context.Context, reload func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload()
			}
		}
	}()
}
