package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"osim/controlplane/agent"
	"osim/controlplane/api"
	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
	"osim/dataplane/tftp"
	"osim/dataplane/xdp"
	"osim/internal/cpuprofile"
	"osim/internal/diskspace"
	"osim/internal/logging"
	"osim/metrics"
)

// runServe runs DHCP (proxy), TFTP and HTTP together from a YAML config,
// flags overriding it.
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
	if *memLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(*memLimit) << 20)
	}
	// On one CPU (a small VM, or pinned) Go runs one P, and a Badger
	// flush or compaction holds it for whole 10 ms scheduling slices while
	// DHCP answers wait: 20 ms each, several in a row, under a burst of
	// new clients. With two, the kernel's scheduler decides, and it lets
	// the thread a packet woke run within a few milliseconds.
	if runtime.GOMAXPROCS(0) < 2 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2)
	}
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
	var reload atomic.Pointer[reloader] // set once serving
	watchSIGHUP(hupCtx, func() {
		if r := reload.Load(); r != nil {
			r.reload()
			return
		}
		log.Info("SIGHUP before serving: nothing reloaded")
	})
	cfg, err := loadServeConfig(*config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
		return 2
	}
	overrides := func(c *serveConfig) {
		for dst, v := range map[*string]string{&c.Address: *address, &c.DHCP.Mode: *mode,
			&c.TFTP.Root: *tftpRoot, &c.HTTP.Files: *files, &c.MetricsListen: *metricsL} {
			if v != "" {
				*dst = v
			}
		}
	}
	overrides(cfg)
	// --check and serve run the same checks; --check also fails on missing files.
	w, pf, err := checkAll(cfg, *check)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
		return 2
	}
	if !levelFlag && cfg.LogLevel != "" {
		_ = level.UnmarshalText([]byte(cfg.LogLevel)) // checked
	}
	for _, m := range pf.missing {
		log.Warn("a file named in the config is missing", "problem", m)
	}
	if *check {
		targets := fmt.Sprintf("%d targets", len(w.backend.Machines))
		if w.manager != nil {
			targets = fmt.Sprintf("targets of site %s from manager %s as %s", w.manager.Site, w.manager.URL, w.manager.Name)
		}
		fmt.Printf("dhcp %s on %s and %s, tftp %s from %s, http %s from %s (base %s), %s\n",
			w.dhcpMode, w.dhcpListen, w.bootListen, w.tftpListen, w.tftpRoot, w.httpListen, w.httpFiles, w.baseURL, targets)
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
	reg := metrics.NewRegistry()
	if cfg.MetricsListen != "" {
		a, err := metrics.Serve(ctx, cfg.MetricsListen, reg, log)
		if err != nil {
			fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
			return 1
		}
		log.Info("metrics serving", "url", "http://"+a.String()+"/metrics")
	}

	// One Badger per process: full mode's leases own lease/, the agent
	// agent/ and evq/.
	var db *badger.DB
	var disk *diskspace.Guard
	if w.dhcpMode == "full" || w.manager != nil {
		var closeDB func()
		db, disk, closeDB, err = openDataDir(ctx, w.dataDir, w.dhcpMode == "full", log, reg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
			return 1
		}
		defer closeDB()
	}

	// The local folders: everything in standalone mode, the fallback for
	// what is not a staged image file in manager mode.
	folder, err := tftp.NewFolderResolver(w.tftpRoot)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
		return 1
	}
	defer folder.Close()
	var hfiles httpboot.Files // nil: none (manager mode without http.files)
	if w.httpFiles != "" {
		ff, err := httpboot.NewFolderFiles(w.httpFiles)
		if err != nil {
			fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
			return 1
		}
		hfiles = ff
	}
	data := newStandalone(w) // SIGHUP swaps it
	var (
		resolver  tftp.Resolver       = folder
		httpFiles                     = hfiles
		scripts   httpboot.Scripts    = data
		tokens    httpboot.Tokens     = data
		sink      httpboot.StatusSink = logSink{log}
		backend   dhcp.Backend        = data
		ag        *agent.Agent
	)
	if w.manager != nil {
		ag, err = agent.New(agent.Config{DB: db, BlobDir: filepath.Join(w.dataDir, "blobs"),
			Client:    api.NewClient(w.manager.URL, "", w.manager.InsecureTLS),
			JoinToken: w.joinToken, Name: w.manager.Name, Site: w.manager.Site,
			Addresses:        []string{w.addr.String()},
			DefaultBootFiles: w.bootFiles, Unknown: w.unknown, Fallback: folder, FallbackFiles: hfiles,
			Logger: log, Registry: reg, Space: disk})
		if err != nil {
			fmt.Fprintf(os.Stderr, "osim-bootd serve: agent: %v\n", err)
			return 1
		}
		resolver, httpFiles, scripts, tokens, sink, backend = ag, ag, ag, ag, ag, ag
		data = nil
	}

	// TFTP
	tm := tftp.NewMetrics(reg)
	tsrv, err := tftp.NewServer(w.tftpConfig(cfg, log, tm), tftp.NewCache(resolver, 64<<20, 512<<20, tm))
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
		return 2
	}

	// Full mode's leases: DHCP hands them out, HTTP binds status tokens
	// to them.
	var leases *dhcp.BadgerLeases
	if w.dhcpMode == "full" {
		if leases, err = dhcp.OpenBadgerLeases(db); err != nil {
			fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
			return 1
		}
		leases.SetSpace(disk)
	}

	// HTTP
	hcfg := httpboot.Config{Scripts: scripts, Files: httpFiles, Tokens: tokens,
		Sink: sink, BaseURL: w.baseURL, Logger: log, Metrics: httpboot.NewMetrics(reg)}
	if ag != nil {
		hcfg.Targets = ag
	}
	if leases != nil {
		hcfg.Leases = leasedAddr(leases)
	}
	hh, err := httpboot.New(hcfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd serve: %v\n", err)
		return 2
	}
	hln, err := net.Listen("tcp4", w.httpListen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd serve: http: %v\n", err)
		return 1
	}
	hsrv := &http.Server{Handler: hh, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}

	// DHCP
	dh := &dhcp.Handler{Backend: backend, ServerIP: net.IP(w.addr.AsSlice()), URLs: httpboot.URLs{Base: w.baseURL},
		Metrics: dhcp.NewMetrics(reg), Log: log}
	if w.dhcpMode == "full" {
		dh.Mode = dhcp.ModeFull
		dh.Full = &dhcp.Full{Pools: w.pools, Leases: leases, Metrics: dhcp.NewLeaseMetrics(reg, leases, nil)}
	}
	scfg := dhcp.ServerConfig{DHCPAddr: w.dhcpListen, BootAddr: w.bootListen}
	var guard *xdp.Program
	if w.xdp != nil {
		// Attach falls back to the userspace classifier (one warning)
		// when the program cannot attach; either way it guards DHCP.
		if w.xdpIface != "" {
			guard, err = xdp.Attach(w.xdpIface, *w.xdp, log)
		} else {
			guard, err = xdp.Userspace(*w.xdp, log)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "osim-bootd serve: xdp: %v\n", err)
			return 1
		}
		defer guard.Close() // detaches the program
		if err := reg.Register(guard); err != nil {
			fmt.Fprintf(os.Stderr, "osim-bootd serve: xdp metrics: %v\n", err)
			return 1
		}
		scfg.Guard = guard
		if ag != nil {
			go xdp.KeepPolicy(ctx, ag, guard, log)
		} else if err := guard.SetPolicy(data.BootMACs(), nil); err != nil {
			fmt.Fprintf(os.Stderr, "osim-bootd serve: xdp policy: %v\n", err)
			return 1
		}
		log.Info("xdp guard", "mode", guard.Mode(), "interface", w.xdpIface, "unknown", w.xdp.Unknown.String())
	}
	dsrv, err := dhcp.NewServer(dh, scfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd serve: dhcp: %v\n", err)
		return 1
	}
	defer dsrv.Close()

	rl := &reloader{path: *config, overrides: overrides, levelFlag: levelFlag, level: level,
		running: cfg, data: data, log: log}
	if guard != nil && data != nil {
		rl.guard = guard
	}
	reload.Store(rl)
	log.Info("boot server serving", "address", w.addr.String(), "dhcp_mode", w.dhcpMode, "dhcp", dsrv.DHCPAddr().String(),
		"proxy", dsrv.BootAddr().String(), "tftp", w.tftpListen, "http", w.baseURL)
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	run("tftp", func() error { return tsrv.ListenAndServe(ctx, w.tftpListen) })
	run("http", func() error { return hsrv.Serve(hln) })
	run("dhcp", func() error { return dsrv.Serve(ctx) })
	if ag != nil {
		log.Info("agent syncing from the manager", "url", w.manager.URL, "name", w.manager.Name, "site", w.manager.Site)
		// The agent stopping (its join token refused) is logged, not fatal:
		// DHCP, TFTP and HTTP keep answering from the local copy.
		run("agent", func() error { logAgentStop(ctx, ag.Run(ctx), log); return nil })
	}
	code := 0
	select {
	case <-ctx.Done():
	case err := <-errc:
		log.Error("service stopped", "err", err)
		code = 1
		stop()
	}
	log.Info("shutting down: no new requests", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	_ = dsrv.Close()
	_ = hsrv.Shutdown(sctx)
	if err := tsrv.Shutdown(sctx); err != nil {
		log.Warn("grace period over: running transfers cut", "err", err)
	}
	wg.Wait()
	return code
}

// logAgentStop says why the agent stopped, if it did before shutdown.
func logAgentStop(ctx context.Context, err error, log *slog.Logger) {
	if err != nil && ctx.Err() == nil {
		log.Error("agent stopped: still serving DHCP, TFTP and HTTP from the local copy; fix the join token and restart", "err", err)
	}
}

// logSink records installer reports in the log: standalone mode has no
// manager to forward them to.
type logSink struct{ log *slog.Logger }

func (l logSink) Report(_ context.Context, s httpboot.Status) error {
	l.log.Info("installer status", "order", s.Order, "phase", string(s.Phase), "progress", s.Progress,
		"client", s.Client, "msg", s.Message)
	return nil
}

// bootdBadgerOptions size Badger for an appliance: Badger's defaults (five
// 64 MiB memtables, a 256 MiB block cache, four compactors building
// compressed tables) alone took more than the 500 MiB a boot server holding
// 100,000 targets and orders may use (bench/RESULTS.md, bench-sync). The
// values are small JSON: no compression, no block cache (reads go through
// the mmapped tables). Writes
// are not fsynced: a killed process loses nothing (the page cache keeps
// it); a power cut may lose the last moments of leases and events.
//
// Full DHCP mode writes a lease per new client: its memtables are 32 MiB,
// so a burst of new clients fills one every half minute rather than every
// few seconds, and the CPU each flush takes from the DHCP answers comes
// four times less often (bench/RESULTS.md, bench-dhcp).
func bootdBadgerOptions(dir string, fullDHCP bool) badger.Options {
	memtable := int64(8 << 20)
	if fullDHCP {
		memtable = 32 << 20
	}
	return badger.DefaultOptions(dir).
		WithLogger(nil).
		WithNumVersionsToKeep(1).
		WithMemTableSize(memtable).
		WithBaseTableSize(1 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(3).
		WithNumLevelZeroTablesStall(8).
		WithNumCompactors(2).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(16 << 20).
		WithValueLogFileSize(64 << 20)
}
