package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"osim/bench/internal/ceiling"
	"osim/bench/internal/tftpclient"
)

// ceilingCmd runs the bare sender and our client in one process on
// loopback for one file: the machine's ceiling for that setting.
func ceilingCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	path := fs.String("file", "", "local file to send (required)")
	blksize := fs.Int("blksize", 1468, "block size")
	window := fs.Int("window", 64, "window size (1: lockstep)")
	runs := fs.Int("runs", 3, "runs; each prints its MB/s")
	gso := fs.Bool("gso", false, "send windows with UDP GSO instead of sendmmsg")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("ceiling: -file is required")
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		return fmt.Errorf("ceiling: -file: %w", err)
	}
	conn, err := tftpclient.Loopback()
	if err != nil {
		return fmt.Errorf("ceiling: listen: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &ceiling.Sender{Root: filepath.Dir(*path), GSO: *gso}
	go s.Serve(ctx, conn)
	server := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	for i := 0; i < *runs; i++ {
		c, err := tftpclient.Loopback()
		if err != nil {
			return fmt.Errorf("ceiling: client socket: %w", err)
		}
		c.SetReadBuffer(4 << 20)
		r := tftpclient.Get(ctx, c, tftpclient.Config{
			Server: server, File: filepath.Base(*path), Blksize: *blksize, Window: *window, Tsize: true,
			Timeout: time.Second, Retries: 5, Expected: data,
		})
		c.Close()
		if r.Err != nil {
			return r.Err
		}
		fmt.Printf("run %d: %d bytes in %.3fs: %.1f MB/s (blksize %d window %d, dups %d gaps %d timeouts %d)\n",
			i+1, r.Bytes, r.Duration.Seconds(), float64(r.Bytes)/r.Duration.Seconds()/1e6,
			r.Negotiated.Blksize, r.Negotiated.Window, r.Dups, r.Gaps, r.Timeouts)
	}
	return nil
}

// ceilingSenderCmd serves a folder with the bare sender until stopped; the
// harness runs it as a peer process so its CPU and memory are measured like
// a server's.
func ceilingSenderCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ceiling-sender", flag.ContinueOnError)
	root := fs.String("root", "", "folder to serve (required)")
	listen := fs.String("listen", "127.0.0.1:0", "`addr:port` to answer RRQs on")
	gso := fs.Bool("gso", false, "send windows with UDP GSO instead of sendmmsg")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *root == "" {
		return fmt.Errorf("ceiling-sender: -root is required")
	}
	ap, err := netip.ParseAddrPort(*listen)
	if err != nil {
		return fmt.Errorf("ceiling-sender: -listen %q: %w", *listen, err)
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return fmt.Errorf("ceiling-sender: listen on %s: %w", ap, err)
	}
	defer conn.Close()
	s := &ceiling.Sender{Root: *root, GSO: *gso}
	if err := s.Preload(); err != nil {
		return err
	}
	return s.Serve(ctx, conn)
}
