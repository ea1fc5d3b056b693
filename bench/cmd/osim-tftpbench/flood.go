package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"osim/bench/internal/lab"
	"osim/internal/promtext"
	"osim/internal/tftpwire"
	"osim/internal/udpflood"
)

// floodCmd re-runs the TFTP slot flood of issue 11: read requests from many
// sources that never acknowledge, sent in a short burst at an osim-bootd it
// starts on loopback, then real clients (tftp-hpa, atftp) fetch a file. It
// reports how long the real clients took, whether any was refused, and what
// the flood drew back (packets and bytes per request).
func floodCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	bootd := fs.String("bootd", "bin/osim-bootd", "osim-bootd binary to start (osim-bootd tftp on 127.0.0.1)")
	bootdArgs := fs.String("bootd-args", "", "extra flags for osim-bootd tftp, space-separated")
	port := fs.Int("port", 16990, "TFTP port on 127.0.0.1; metrics on port+1")
	n := fs.Int("n", 10000, "forged read requests, each from its own socket on its own 127.88.x.y address")
	over := fs.Duration("over", 300*time.Millisecond, "spread the requests over this long")
	file := fs.String("file", "images/debian-12/efi/snponly64.efi", "file every request asks for (43-byte RRQ: the issue's 44)")
	size := fs.Int("size", 1<<20, "size of that file in bytes")
	during := fs.Bool("during", true, "also start atftp (blksize 1468, windowsize 16) halfway through the flood")
	settle := fs.Duration("settle", 90*time.Second, "longest wait for the server to go idle after the flood")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := raiseNoFile(); err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "osim-flood-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	data := make([]byte, *size)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	if err := os.MkdirAll(filepath.Join(root, filepath.Dir(*file)), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, *file), data, 0o644); err != nil {
		return err
	}
	server := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(*port))
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", *port+1)
	stop, err := startFloodBootd(ctx, *bootd, root, server, *port+1, strings.Fields(*bootdArgs), metricsURL)
	if err != nil {
		return err
	}
	defer stop()

	rrq := tftpwire.AppendRRQ(nil, *file, nil)
	fmt.Printf("flood: %d read requests of %d bytes for %q (%d bytes), each from its own 127.88.x.y:port, over %v\n",
		*n, len(rrq), *file, *size, *over)
	duringDone := make(chan clientRun, 1)
	fl, err := udpflood.Open(*n, 88)
	if err != nil {
		return err
	}
	defer fl.Close()
	start := time.Now()
	if *during {
		go func() {
			time.Sleep(*over / 2)
			duringDone <- runRealClient(ctx, "atftp", root, server, *file, data)
		}()
	}
	if err := fl.Send(server, *over, rrq); err != nil {
		return err
	}
	sent := time.Since(start)
	after := runRealClient(ctx, "tftp", root, server, *file, data)
	fmt.Printf("flood sent in %v\n", sent.Round(time.Millisecond))
	fmt.Printf("tftp-hpa right after the flood: %s\n", after)
	if *during {
		fmt.Printf("atftp started %v into the flood: %s\n", (*over / 2).Round(time.Millisecond), <-duringDone)
	}

	if err := waitIdle(ctx, metricsURL, *settle); err != nil {
		fmt.Printf("server not idle: %v\n", err)
	} else {
		fmt.Printf("server idle %v after the flood began\n", time.Since(start).Round(100*time.Millisecond))
	}
	byOp, bytes := fl.Replies()
	fmt.Printf("flood replies: %d DATA, %d OACK, %d ERROR; %d bytes for %d request bytes: %.2f packets and %.1fx bytes per request\n",
		byOp[tftpwire.OpDATA], byOp[tftpwire.OpOACK], byOp[tftpwire.OpERROR], bytes, *n*len(rrq),
		float64(byOp[tftpwire.OpDATA]+byOp[tftpwire.OpERROR]+byOp[tftpwire.OpOACK])/float64(*n), float64(bytes)/float64(*n*len(rrq)))
	m, err := scrape(metricsURL)
	if err != nil {
		return err
	}
	for _, k := range []string{"osim_tftp_refusals_total", "osim_tftp_transfers_started_total",
		"osim_tftp_unacked_evicted_total", "osim_tftp_unacked_spared_total", "osim_tftp_first_ack_timeouts_total",
		"osim_tftp_retransmits_total", "osim_tftp_transfers_completed_total"} {
		fmt.Printf("  %s %v\n", k, m[k])
	}
	return nil
}

// startFloodBootd starts osim-bootd tftp serving root and waits for its
// metrics endpoint. Its log (warnings only) goes to stderr when it stops.
func startFloodBootd(ctx context.Context, bin, root string, addr netip.AddrPort, metricsPort int, extra []string, metricsURL string) (func(), error) {
	argv := append([]string{bin, "tftp", "--root", root, "--listen", addr.String(),
		"--metrics-listen", "127.0.0.1:" + strconv.Itoa(metricsPort), "--log-level", "warn"}, extra...)
	p, err := lab.Start(lab.Spec{Name: "osim-bootd", Argv: argv,
		Log: filepath.Join(os.TempDir(), fmt.Sprintf("osim-flood-bootd-%d.log", os.Getpid()))})
	if err != nil {
		return nil, err
	}
	stop := func() {
		p.Stop()
		if b, _ := os.ReadFile(p.Log); len(b) > 0 {
			os.Stderr.Write(b)
		}
		os.Remove(p.Log)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := scrape(metricsURL); err == nil {
			return stop, nil
		}
		if p.Exited() || time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s: metrics at %s never answered", bin, metricsURL)
		}
		if err := lab.Sleep(ctx, 50*time.Millisecond); err != nil {
			stop()
			return nil, err
		}
	}
}

// clientRun is what a real client got.
type clientRun struct {
	took time.Duration
	err  error
}

func (r clientRun) String() string {
	if r.err != nil {
		return fmt.Sprintf("FAILED after %v: %v", r.took.Round(time.Millisecond), r.err)
	}
	return fmt.Sprintf("served, every byte, in %v", r.took.Round(time.Millisecond))
}

// runRealClient fetches file with tftp-hpa ("tftp", no options) or atftp
// (blksize and windowsize: the OACK path) and checks every byte.
func runRealClient(ctx context.Context, bin, dir string, server netip.AddrPort, file string, want []byte) clientRun {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	local := filepath.Join(dir, "got-"+bin)
	port := strconv.Itoa(int(server.Port()))
	var args []string
	if bin == "tftp" {
		args = []string{"-v", "127.0.0.1", port, "-m", "binary", "-c", "get", file, local}
	} else {
		args = []string{"--option", "blksize 1468", "--option", "windowsize 16", "-g", "-r", file, "-l", local, "127.0.0.1", port}
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	took := time.Since(start)
	switch {
	case err != nil:
		return clientRun{took, fmt.Errorf("%s: %w: %s", bin, err, strings.TrimSpace(string(out)))}
	case strings.Contains(string(out), "Error code") || strings.Contains(string(out), "Transfer timed out"):
		// tftp-hpa exits 0 on errors ("server busy" among them).
		return clientRun{took, fmt.Errorf("%s: %s", bin, strings.TrimSpace(string(out)))}
	}
	got, err := os.ReadFile(local)
	if err == nil && string(got) != string(want) {
		err = fmt.Errorf("%s: got %d bytes, not the file's %d", bin, len(got), len(want))
	}
	return clientRun{took, err}
}

// waitIdle polls the server's active-transfers gauge until it reads 0.
func waitIdle(ctx context.Context, url string, limit time.Duration) error {
	start := time.Now()
	for {
		m, err := scrape(url)
		if err == nil && m["osim_tftp_active_transfers"] == 0 {
			return nil
		}
		if time.Since(start) > limit {
			return fmt.Errorf("still %v transfers after %v", m["osim_tftp_active_transfers"], limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// scrape reads a Prometheus text page into name -> sum over its series.
func scrape(url string) (map[string]float64, error) {
	sm, err := promtext.Get(context.Background(), http.DefaultClient, url)
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for name := range sm {
		m[name] = sm.Sum(name)
	}
	return m, nil
}
