package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"time"

	"osim/bench/internal/tftpclient"
)

func getCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	server := fs.String("server", "127.0.0.1:69", "server `addr:port`")
	file := fs.String("file", "", "remote file name")
	expect := fs.String("expect", "", "local copy of the file to compare every byte with (empty: only count)")
	blksize := fs.Int("blksize", 1468, "blksize to ask for (0: leave the option out)")
	window := fs.Int("window", 0, "windowsize to ask for (0: leave the option out)")
	tsize := fs.Bool("tsize", true, "ask for tsize")
	clients := fs.Int("clients", 1, "concurrent clients, each with its own socket")
	timeout := fs.Duration("timeout", time.Second, "retransmit timeout")
	retries := fs.Int("retries", 8, "consecutive timeouts before a read fails")
	rrqEvery := fs.Duration("rrq-every", 0, "re-send the RRQ at this interval until answered (0: normal retransmit)")
	limit := fs.Duration("limit", 2*time.Minute, "upper bound of each read")
	reject := fs.Bool("reject-strays", false, "answer packets from a wrong transfer ID with ERROR 5")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return fmt.Errorf("get: -file is required")
	}
	addr, err := netip.ParseAddrPort(*server)
	if err != nil {
		return fmt.Errorf("get: -server %q: %w", *server, err)
	}
	var exp []byte
	if *expect != "" {
		if exp, err = os.ReadFile(*expect); err != nil {
			return fmt.Errorf("get: -expect: %w", err)
		}
	}
	if err := raiseNoFile(); err != nil {
		return err
	}
	lr, err := tftpclient.Load(ctx, tftpclient.LoadConfig{
		Clients: *clients,
		Listen:  tftpclient.Loopback,
		Limit:   *limit,
		Client: tftpclient.Config{
			Server: addr, File: *file, Blksize: *blksize, Window: *window, Tsize: *tsize,
			Timeout: *timeout, Retries: *retries, RRQEvery: *rrqEvery, Expected: exp, RejectStrays: *reject,
		},
	})
	fmt.Printf("clients %d ok %d failed %d bytes %d in %.3fs: %.1f MB/s\n",
		lr.Clients, lr.OK, lr.Failed, lr.Bytes, lr.Wall.Seconds(), lr.MBps())
	fmt.Printf("negotiated blksize %d window %d tsize %d (oack %v, echoed %v)\n",
		lr.Negotiated.Blksize, lr.Negotiated.Window, lr.Negotiated.Tsize, lr.OACK, lr.Negotiated.Echoed)
	fmt.Printf("rrqs %d timeouts %d dups %d gaps %d strays %d (from %d TIDs); p50 %s p99 %s max %s\n",
		lr.RRQs, lr.Timeouts, lr.Dups, lr.Gaps, lr.Strays, lr.StrayTIDs, lr.P50, lr.P99, lr.Max)
	for k, n := range lr.Failures {
		fmt.Printf("failures %q: %d, e.g. %s\n", k, n, lr.Samples[k])
	}
	return err
}
