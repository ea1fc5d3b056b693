package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/console"
	"osim/controlplane/manager"
	"osim/controlplane/mdb"
	"osim/controlplane/secretbox"
	"osim/internal/buildinfo"
	"osim/internal/diskspace"
	"osim/internal/logging"
	"osim/metrics"
)

// envDefaults sets every flag not given on the command line from
// OSIM_MANAGER_<NAME> (dashes as underscores), if set.
func envDefaults(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		env := "OSIM_MANAGER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

// openStore opens the MDB in dir and explains a lock held by another process.
func openStore(dir string, log *slog.Logger, hint string) (*mdb.DB, error) {
	return openStoreWith(dir, mdb.Options{Logger: log, Version: buildinfo.Get().Short()}, hint)
}

func openStoreWith(dir string, opts mdb.Options, hint string) (*mdb.DB, error) {
	if dir == "" {
		return nil, errors.New("--data-dir is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	db, err := mdb.Open(dir, opts)
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "lock") {
			return nil, fmt.Errorf("%w\nthe data dir %s is in use, most likely by a running osim-manager serve%s", err, dir, hint)
		}
		return nil, err
	}
	return db, nil
}

func runServe(args []string) int {
	o, code := parseServe(args)
	if code >= 0 {
		return code
	}
	return o.serve()
}

// serveOpts is `serve`'s command line, checked.
type serveOpts struct {
	listen, dataDir, metricsL, bootstrap string
	hbEvery, grace, evAge, uploadTTL     time.Duration
	maxImage, reserve                    int64
	evCount                              int
	share                                float64
	ui                                   bool
	credKey                              string
	log                                  *slog.Logger
	certs                                *certReloader // nil: plain HTTP
}

// parseServe reads the flags (and OSIM_MANAGER_* for those not given);
// code is the exit code when the command line is wrong, else -1.
func parseServe(args []string) (o serveOpts, code int) {
	fs := flag.NewFlagSet("osim-manager serve", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "serve the API on this TCP address")
	fs.StringVar(&o.dataDir, "data-dir", "", "the MDB's directory (Badger database and blobs)")
	fs.StringVar(&o.credKey, "credentials-key", "", "key file sealing BMC passwords at rest (osim-manager credentials-key FILE makes one); without it the manager keeps no credentials")
	fs.BoolVar(&o.ui, "ui", true, "serve the web console under /ui/ on the API's listener (sign in with a viewer, operator or admin token)")
	fs.StringVar(&o.metricsL, "metrics-listen", "", "serve Prometheus /metrics on this TCP address (empty: not served)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate (PEM); with --tls-key serve HTTPS")
	tlsKey := fs.String("tls-key", "", "TLS private key (PEM)")
	fs.StringVar(&o.bootstrap, "bootstrap-token-file", "", "if the MDB has no admin token, make one and write its secret to this file (0600)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text (key=value) or json, one line per event on stderr")
	fs.DurationVar(&o.hbEvery, "heartbeat-interval", 10*time.Second, "expected boot server heartbeat interval: stale after 3, down after 10 missed")
	fs.DurationVar(&o.grace, "grace", 5*time.Second, "on SIGINT/SIGTERM, how long running requests may finish")
	fs.Int64Var(&o.maxImage, "max-image-size", mdb.DefaultMaxBlobSize, "largest blob (image file) an upload may announce, in bytes")
	fs.DurationVar(&o.evAge, "event-max-age", manager.DefaultEventMaxAge, "events older than this are deleted")
	fs.IntVar(&o.evCount, "event-max-count", manager.DefaultEventMaxCount, "at most this many events are kept, oldest deleted first")
	fs.DurationVar(&o.uploadTTL, "upload-ttl", manager.DefaultUploadTTL, "an unfinished blob upload idle this long is deleted")
	fs.Float64Var(&o.share, "max-order-share", manager.DefaultMaxOrderShare, "an order by selector covering more than this share of a site's targets needs \"all\": true")
	fs.Int64Var(&o.reserve, "disk-reserve", 0, "bytes kept free in the data dir: writes are refused (507) below it (0: Badger's memtables and a blob chunk, see README)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, 0 // -h: the usage was the answer
		}
		return o, 2
	}
	fail := func(format string, a ...any) (serveOpts, int) {
		fmt.Fprintf(os.Stderr, "osim-manager serve: "+format+"\n", a...)
		return o, 2
	}
	if err := envDefaults(fs); err != nil {
		return fail("%v", err)
	}
	if fs.NArg() > 0 {
		return fail("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.log, err = logging.New(*logLevel, *logFormat); err != nil {
		return fail("%v", err)
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return fail("--tls-cert and --tls-key go together")
	}
	if *tlsCert != "" {
		if o.certs, err = newCertReloader(*tlsCert, *tlsKey); err != nil {
			return fail("TLS: %v", err)
		}
	}
	return o, -1
}

// serve opens the MDB behind the disk guard and serves the API until
// SIGINT or SIGTERM.
func (o serveOpts) serve() int {
	log := o.log
	failed := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "osim-manager serve: "+format+"\n", a...)
		return 1
	}
	guard, err := diskGuard(o.dataDir, o.reserve, log)
	if err != nil {
		return failed("%v", err)
	}
	db, err := openStoreWith(o.dataDir, mdb.Options{Logger: log, Space: guard, MaxBlobSize: o.maxImage, Version: buildinfo.Get().Short()}, "; stop it first")
	if err != nil {
		return failed("%v", err)
	}
	defer closeStore(db, guard, o.dataDir, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if o.bootstrap != "" {
		if err := bootstrapAdmin(ctx, db, o.bootstrap, log); err != nil {
			return failed("--bootstrap-token-file: %v", err)
		}
	}
	reg := metrics.NewRegistry()
	var key *secretbox.Key
	if o.credKey != "" {
		if key, err = secretbox.LoadKey(o.credKey); err != nil {
			return failed("--credentials-key: %v", err)
		}
	}
	srv, err := manager.New(manager.Config{Store: db, Logger: log, Registry: reg, HeartbeatInterval: o.hbEvery,
		EventMaxAge: o.evAge, EventMaxCount: o.evCount, UploadTTL: o.uploadTTL, MaxOrderShare: o.share, CredentialsKey: key})
	if err != nil {
		return failed("%v", err)
	}
	reg.MustRegister(guard)
	go guard.Watch(ctx, time.Second)
	go srv.Run(ctx)
	go reloadOnHUP(ctx, o.certs, log)
	if o.metricsL != "" {
		a, err := metrics.Serve(ctx, o.metricsL, reg, log)
		if err != nil {
			return failed("%v", err)
		}
		log.Info("metrics serving", "url", "http://"+a.String()+"/metrics")
	}
	h := srv.Handler()
	if o.ui {
		ui, err := console.New(console.Config{API: h, Tokens: db, HashSecret: manager.HashSecret, Logger: log.With("component", "console")})
		if err != nil {
			return failed("%v", err)
		}
		h = console.Mount(h, ui)
	}
	return o.serveAPI(ctx, h)
}

// closeStore closes the MDB unless the disk is too full for Badger's
// close-time flush (through mmap: on a full disk, a SIGBUS); the synced
// write-ahead log then holds every acknowledged write.
func closeStore(db *mdb.DB, guard *diskspace.Guard, dir string, log *slog.Logger) {
	if need := diskspace.BadgerReserve(mdb.BadgerOptions("", log)); !guard.CloseRoom(need) {
		log.With("component", "disk").Warn("not closing the MDB on a nearly full disk; its write-ahead log holds every acknowledged write and is replayed at the next start",
			"dir", dir, "need", diskspace.Bytes(need))
		return
	}
	if err := db.Close(); err != nil {
		log.Error("closing the MDB", "err", err)
	}
}

// serveAPI listens (TLS with a certificate), prints the URL on stdout and
// serves h until ctx ends, then lets requests finish for the grace.
func (o serveOpts) serveAPI(ctx context.Context, h http.Handler) int {
	log := o.log
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-manager serve: listen on %q: %v\n", o.listen, err)
		return 1
	}
	scheme := "http"
	if o.certs != nil {
		scheme = "https"
		ln = tls.NewListener(ln, &tls.Config{GetCertificate: o.certs.get, MinVersion: tls.VersionTLS12})
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	url := scheme + "://" + ln.Addr().String()
	// Logs only: stdout stays empty, so a unit's journal or a log
	// shipper sees one stream of one format.
	log.Info("serving", "url", url, "api", url+api.Prefix+"/", "data_dir", o.dataDir, "version", buildinfo.Get().Short())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		log.Error("server stopped", "err", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", o.grace)
	sctx, cancel := context.WithTimeout(context.Background(), o.grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("shutdown: requests still running were cut", "err", err)
	}
	return 0
}

// diskGuard checks the data dir's filesystem before the MDB opens: it
// refuses to start when opening could fault (one line: the free space),
// and warns when the manager starts read-only.
func diskGuard(dir string, reserve int64, log *slog.Logger) (*diskspace.Guard, error) {
	if dir == "" {
		return nil, errors.New("--data-dir is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	bo := mdb.BadgerOptions(filepath.Join(dir, "db"), log)
	if reserve <= 0 {
		reserve = diskspace.BadgerReserve(bo) + manager.MaxBlobChunk
	}
	g := diskspace.New(dir, reserve, diskspace.Options{Ballast: bo.MemTableSize, Logger: log})
	low, err := g.Prepare(diskspace.OpenMin(bo))
	if err != nil {
		return nil, err
	}
	if low {
		free, _ := g.Free()
		log.With("component", "disk").Warn("starting read-only: the data dir's free space is below its reserve; writes answer 507 until space is freed",
			"dir", dir, "free", diskspace.Bytes(free), "reserve", diskspace.Bytes(reserve))
	}
	return g, nil
}

// bootstrapAdmin makes an admin token when the MDB has none and writes
// its secret to file (0600). With an admin token already there it leaves
// the file alone.
func bootstrapAdmin(ctx context.Context, store manager.Store, file string, log *slog.Logger) error {
	toks, err := store.ListTokens(ctx)
	if err != nil {
		return err
	}
	for _, t := range toks {
		if t.Role == api.RoleAdmin {
			log.Info("bootstrap: an admin token exists; not making another", "token", t.ID, "file", file)
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	info, err := manager.CreateToken(ctx, store, api.RoleAdmin, "bootstrap", time.Now())
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(info.Secret+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	log.Info("bootstrap: admin token created", "token", info.ID, "file", file)
	return nil
}
