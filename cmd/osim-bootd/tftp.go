package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"osim/dataplane/tftp"
	"osim/internal/bootd"
	"osim/internal/logging"
	"osim/metrics"
)

func runTFTP(args []string) int {
	fs := flag.NewFlagSet("osim-bootd tftp", flag.ContinueOnError)
	var (
		root         = fs.String("root", "", "folder to serve (required)")
		listen       = fs.String("listen", "0.0.0.0:69", "UDP address to listen on (IPv4)")
		maxBlksize   = fs.Int("max-blksize", 1468, "cap on negotiated blksize; 1468 fills a 1500-byte MTU without fragmenting")
		maxWindow    = fs.Int("max-window", 64, "cap on negotiated windowsize (RFC 7440)")
		maxTransfers = fs.Int("max-transfers", 10000, "concurrent transfers, all clients (only acknowledged ones make a request wait)")
		maxPerClient = fs.Int("max-per-client", 64, "concurrent acknowledged transfers per client IP address")
		maxUnacked   = fs.Int("max-unacked", 256, "transfers not acknowledged yet (possibly forged requests); when full, the oldest is dropped")
		firstAck     = fs.Duration("first-ack-timeout", 2*time.Second, "how long a transfer waits for its first ACK; the first packet is resent once, halfway")
		portRange    = fs.String("port-range", "", "LO:HI source ports for transfers (default: kernel ephemeral ports)")
		timeout      = fs.Duration("timeout", time.Second, "first retransmit timeout when the client asks none")
		retries      = fs.Int("retries", 5, "timeouts in a row before a transfer is given up")
		uploadDir    = fs.String("upload-dir", "", "accept write requests into this folder (default: refuse writes)")
		maxUpload    = fs.Int64("max-upload", 64<<20, "largest accepted upload in bytes")
		cacheFile    = fs.Int64("cache-max-file", 64<<20, "largest file kept in the shared memory cache, bytes")
		cacheTotal   = fs.Int64("cache-max-total", 512<<20, "memory cache size, bytes (0 disables the cache)")
		metricsAddr  = fs.String("metrics-listen", "", "serve Prometheus /metrics on this TCP address")
		grace        = fs.Duration("grace", 5*time.Second, "on SIGINT/SIGTERM, how long running transfers may finish")
		spin         = fs.Duration("lockstep-spin", 50*time.Microsecond, "busy-poll this long for the next ACK of a lockstep transfer before sleeping, while few transfers run (negative: never)")
		logLevel     = fs.String("log-level", "info", "debug, info, warn or error")
		logFormat    = fs.String("log-format", "text", "text (key=value) or json, one line per event on stderr")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log, err := logging.New(*logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd tftp: %v\n", err)
		return 2
	}
	// SIGHUP's default would end the process. This mode has no file to
	// re-read: it says so and keeps serving.
	hupCtx, hupStop := context.WithCancel(context.Background())
	defer hupStop()
	watchSIGHUP(hupCtx, func() {
		log.Info("SIGHUP: osim-bootd tftp has no config file to re-read; changed flags need a restart")
	})
	if *root == "" {
		fmt.Fprintln(os.Stderr, "osim-bootd tftp: --root is required")
		fs.Usage()
		return 2
	}
	lo, hi, err := bootd.ParsePortRange(*portRange)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd tftp: %v\n", err)
		return 2
	}

	reg := metrics.NewRegistry()
	m := tftp.NewMetrics(reg)
	folder, err := tftp.NewFolderResolver(*root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd tftp: %v\n", err)
		return 1
	}
	defer folder.Close()
	var resolver tftp.Resolver = folder
	if *cacheTotal > 0 {
		resolver = tftp.NewCache(folder, *cacheFile, *cacheTotal, m)
	}
	srv, err := tftp.NewServer(tftp.Config{
		MaxBlksize: *maxBlksize, MaxWindow: *maxWindow, MaxTransfers: *maxTransfers,
		MaxPerClient: *maxPerClient, MaxUnacked: *maxUnacked, FirstAckTimeout: *firstAck, PortLo: lo, PortHi: hi, Timeout: *timeout, Retries: *retries,
		LockstepSpin: *spin,
		UploadDir:    *uploadDir, MaxUpload: *maxUpload, Logger: log, Metrics: m,
	}, resolver)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd tftp: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *metricsAddr != "" {
		addr, err := metrics.Serve(ctx, *metricsAddr, reg, log)
		if err != nil {
			fmt.Fprintf(os.Stderr, "osim-bootd tftp: %v\n", err)
			return 1
		}
		log.Info("metrics serving", "url", "http://"+addr.String()+"/metrics")
	}
	if err := srv.ListenAndServe(ctx, *listen); err != nil {
		log.Error("tftp server stopped", "err", err)
		return 1
	}
	log.Info("shutting down: no new transfers", "active", srv.Active(), "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown", "err", err)
	} else if err != nil {
		log.Warn("grace period over: running transfers cut", "grace", grace.String())
	}
	return 0
}
