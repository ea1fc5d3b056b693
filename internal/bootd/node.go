// Package bootd assembles a boot server: its config (the YAML of
// `osim-bootd serve`) with every check, and a Node that wires DHCP, TFTP,
// HTTP, the XDP guard, the agent, the disk guard and metrics from it. The
// command parses flags and handles signals; tests and benchmarks build a
// Config in Go.
package bootd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/agent"
	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
	"osim/dataplane/tftp"
	"osim/dataplane/xdp"
	"osim/internal/buildinfo"
	"osim/internal/diskspace"
	"osim/metrics"
)

// Options are what the command line adds to a checked config.
type Options struct {
	Log *slog.Logger
	// Level is the running log level; Reload sets it from the file unless
	// LevelFlag says the command line set it.
	Level     *slog.LevelVar
	LevelFlag bool
	// Path is the config file Reload re-reads ("": none) and Overrides
	// the command line's changes, applied again to what it reads.
	Path      string
	Overrides func(*Config)
	// Registry receives every collector and is what metrics_listen
	// serves (nil: a new metrics.NewRegistry); a test passes its own to
	// read every family the node declares.
	Registry *prometheus.Registry
}

// Node is a built boot server: its sockets bound, its database open.
// Run serves until its context ends; Reload applies a changed config.
type Node struct {
	w             *wiring
	log           *slog.Logger
	reg           *prometheus.Registry
	metricsListen string
	disk          *diskspace.Guard
	agent         *agent.Agent
	guard         *xdp.Program
	data          *standalone // nil in manager mode
	tftp          *tftp.Server
	http          *http.Server
	hln           net.Listener
	dhcp          *dhcp.Server
	reload        *reloader
	closers       []func() // in reverse order at the end of Run, or of a failed Build
}

// ErrStopped wraps the error of the service that ended Run; Run logged it.
var ErrStopped = errors.New("service stopped")

// ConfigError marks a Build failure that the config causes (the command
// exits 2), as opposed to the host refusing something (exit 1).
type ConfigError struct{ Err error }

func (e ConfigError) Error() string { return e.Err.Error() }
func (e ConfigError) Unwrap() error { return e.Err }

// Build wires the services of k and binds their sockets; nothing answers
// before Run. On error, what it opened is closed.
func Build(k *Checked, o Options) (n *Node, err error) {
	w, cfg, log := k.w, k.cfg, o.Log
	reg := o.Registry
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	n = &Node{w: w, log: log, reg: reg, metricsListen: cfg.MetricsListen}
	defer func() {
		if err != nil {
			n.close()
			n = nil
		}
	}()
	for _, m := range k.Missing {
		log.Warn("a file named in the config is missing", "problem", m)
	}
	// One Badger per process: full mode's leases own lease/, the agent
	// agent/ and evq/.
	var db *badger.DB
	if w.dhcpMode == "full" || w.manager != nil {
		var closeDB func()
		if db, n.disk, closeDB, err = openDataDir(w.dataDir, w.dhcpMode == "full", log, n.reg); err != nil {
			return n, err
		}
		n.defers(closeDB)
	}

	// The local folders: everything in standalone mode, the fallback for
	// what is not a staged image file in manager mode.
	folder, err := tftp.NewFolderResolver(w.tftpRoot)
	if err != nil {
		return n, err
	}
	n.defers(func() { folder.Close() })
	var hfiles httpboot.Files // nil: none (manager mode without http.files)
	if w.httpFiles != "" {
		ff, err := httpboot.NewFolderFiles(w.httpFiles)
		if err != nil {
			return n, err
		}
		hfiles = ff
	}
	n.data = newStandalone(w) // Reload swaps it
	var (
		resolver  tftp.Resolver       = folder
		httpFiles                     = hfiles
		scripts   httpboot.Scripts    = n.data
		tokens    httpboot.Tokens     = n.data
		sink      httpboot.StatusSink = logSink{log}
		backend   dhcp.Backend        = n.data
	)
	if w.manager != nil {
		n.agent, err = agent.New(agent.Config{DB: db, BlobDir: filepath.Join(w.dataDir, "blobs"),
			Client:    w.managerClient,
			JoinToken: w.joinToken, Name: w.manager.Name, Site: w.manager.Site,
			Addresses:        []string{w.addr.String()},
			DefaultBootFiles: w.bootFiles, Unknown: w.unknown, Fallback: folder, FallbackFiles: hfiles,
			Logger: log, Registry: n.reg, Stats: n.reg, Space: n.disk,
			DiscoveryImage: w.discovery.image, DiscoverThen: w.discovery.then, BootLoop: w.discovery.loop,
			EgressCeiling: w.egressCeiling, Version: buildinfo.Get().Short(), HeartbeatInterval: w.manager.HeartbeatInterval})
		if err != nil {
			return n, fmt.Errorf("agent: %w", err)
		}
		resolver, httpFiles, scripts, tokens, sink, backend = n.agent, n.agent, n.agent, n.agent, n.agent, n.agent
		n.data = nil
	}

	tm := tftp.NewMetrics(n.reg)
	if n.tftp, err = tftp.NewServer(w.tftpConfig(cfg, log, tm), tftp.NewCache(resolver, 64<<20, 512<<20, tm)); err != nil {
		return n, ConfigError{err}
	}

	// Full mode's leases: DHCP hands them out, HTTP binds status tokens
	// to them.
	var leases *dhcp.BadgerLeases
	if w.dhcpMode == "full" {
		if leases, err = dhcp.OpenBadgerLeases(db); err != nil {
			return n, err
		}
		leases.SetSpace(n.disk)
	}

	hcfg := httpboot.Config{Scripts: scripts, Files: httpFiles, Tokens: tokens,
		Sink: sink, BaseURL: w.baseURL, Logger: log, Metrics: httpboot.NewMetrics(n.reg)}
	if n.agent != nil {
		hcfg.Targets, hcfg.Plans, hcfg.FirstBoots, hcfg.Answers = n.agent, n.agent, n.agent, n.agent
		if w.discovery.image != "" {
			hcfg.Discoveries, hcfg.DiscoverLimits = n.agent, w.discovery.limits
			log.Info("discovery", "image", w.discovery.image, "then", w.discovery.then, "interval", w.discovery.discoverInterval().String())
		}
	}
	if leases != nil {
		hcfg.Leases = leasedAddr(leases)
	}
	hh, err := httpboot.New(hcfg)
	if err != nil {
		return n, ConfigError{err}
	}
	if n.hln, err = net.Listen("tcp4", w.httpListen); err != nil {
		return n, fmt.Errorf("http: %w", err)
	}
	n.defers(func() { n.hln.Close() }) // Serve owns it once running; closing twice is harmless
	n.http = &http.Server{Handler: hh, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}

	// DHCP: the script and HTTP boot URLs it hands out are httpboot's.
	dh := &dhcp.Handler{Backend: backend, ServerIP: net.IP(w.addr.AsSlice()), URLs: httpboot.URLs{Base: w.baseURL},
		Metrics: dhcp.NewMetrics(n.reg), Log: log}
	if w.dhcpMode == "full" {
		dh.Mode = dhcp.ModeFull
		dh.Full = &dhcp.Full{Pools: w.pools, Leases: leases, Metrics: dhcp.NewLeaseMetrics(n.reg, w.pools, leases, nil)}
	}
	scfg := dhcp.ServerConfig{DHCPAddr: w.dhcpListen, BootAddr: w.bootListen}
	if w.xdp != nil {
		if scfg.Guard, err = n.attachGuard(); err != nil {
			return n, err
		}
	}
	if n.dhcp, err = dhcp.NewServer(dh, scfg); err != nil {
		return n, fmt.Errorf("dhcp: %w", err)
	}
	n.defers(func() { n.dhcp.Close() })

	n.reload = &reloader{path: o.Path, overrides: o.Overrides, levelFlag: o.LevelFlag, level: o.Level,
		running: cfg, data: n.data, log: log}
	if n.guard != nil && n.data != nil {
		n.reload.guard = n.guard
	}
	return n, nil
}

// attachGuard starts the XDP guard of DHCP: the program on the interface,
// or (one warning) the userspace classifier when it cannot attach.
func (n *Node) attachGuard() (*xdp.Program, error) {
	w, log := n.w, n.log
	var err error
	if w.xdpIface != "" {
		n.guard, err = xdp.Attach(w.xdpIface, *w.xdp, log)
	} else {
		n.guard, err = xdp.Userspace(*w.xdp, log)
	}
	if err != nil {
		return nil, fmt.Errorf("xdp: %w", err)
	}
	n.defers(func() { n.guard.Close() }) // detaches the program
	if err := n.reg.Register(n.guard); err != nil {
		return nil, fmt.Errorf("xdp metrics: %w", err)
	}
	if n.agent == nil {
		if err := n.guard.SetPolicy(n.data.BootMACs(), nil); err != nil {
			return nil, fmt.Errorf("xdp policy: %w", err)
		}
	}
	log.Info("xdp guard", "mode", n.guard.Mode(), "interface", w.xdpIface, "unknown", w.xdp.Unknown.String())
	return n.guard, nil
}

func (n *Node) defers(f func()) { n.closers = append(n.closers, f) }

func (n *Node) close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i]()
	}
	n.closers = nil
}

// Reload re-reads the config file (SIGHUP): the log level always, in
// standalone mode the targets, images and boot policy; what needs a
// restart is logged. A file that does not check changes nothing.
func (n *Node) Reload() { n.reload.reload() }

// Run serves until ctx ends or a service fails, then lets running
// transfers finish for grace and closes everything Build opened. Ending
// by ctx is no error; a service failing is ErrStopped.
func (n *Node) Run(ctx context.Context, grace time.Duration) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer n.close()
	w, log := n.w, n.log
	if n.metricsListen != "" {
		a, err := metrics.Serve(ctx, n.metricsListen, n.reg, log)
		if err != nil {
			return err
		}
		log.Info("metrics serving", "url", "http://"+a.String()+"/metrics")
	}
	if n.disk != nil {
		go n.disk.Watch(ctx, time.Second)
	}
	if n.guard != nil && n.agent != nil {
		go xdp.KeepPolicy(ctx, n.agent, n.guard, nil, log)
	}
	log.Info("boot server serving", "address", w.addr.String(), "dhcp_mode", w.dhcpMode, "dhcp", n.dhcp.DHCPAddr().String(),
		"proxy", n.dhcp.BootAddr().String(), "tftp", w.tftpListen, "http", w.baseURL)
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
	run("tftp", func() error { return n.tftp.ListenAndServe(ctx, w.tftpListen) })
	run("http", func() error { return n.http.Serve(n.hln) })
	run("dhcp", func() error { return n.dhcp.Serve(ctx) })
	if n.agent != nil {
		log.Info("agent syncing from the manager", "url", w.manager.URL, "name", w.manager.Name, "site", w.manager.Site)
		// The agent stopping (its join token refused) is logged, not fatal:
		// DHCP, TFTP and HTTP keep answering from the local copy.
		run("agent", func() error { logAgentStop(ctx, n.agent.Run(ctx), log); return nil })
	}
	var failed error
	select {
	case <-ctx.Done():
	case failed = <-errc:
		log.Error("service stopped", "err", failed)
		stop()
	}
	log.Info("shutting down: no new requests", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	_ = n.dhcp.Close()
	_ = n.http.Shutdown(sctx)
	if err := n.tftp.Shutdown(sctx); err != nil {
		log.Warn("grace period over: running transfers cut", "err", err)
	}
	wg.Wait()
	if failed != nil {
		return fmt.Errorf("%w: %w", ErrStopped, failed)
	}
	return nil
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
