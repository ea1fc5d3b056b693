// osim-dhcpbench compares osim-bootd in full DHCP mode with ISC Kea's
// kea-dhcp4 (memfile leases) under ISC's own load tool, perfdhcp (issue 6),
// as root: for each server in turn, in a server network namespace joined
// by a veth to perfdhcp's, the highest DORA rate it sustains with no drops
// and perfdhcp's latencies, then a restart on the same lease store and the
// same again with clients that all hold leases (checked: the server's lease
// count before and after, every client gets its address back).
//
// `make bench-dhcp` runs it; the markdown report goes to stdout and -out.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"osim/bench/dhcpbench"
	"osim/bench/internal/lab"
	"osim/internal/testlab"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "fetch" {
		os.Exit(fetch(os.Args[2])) // re-executed inside the server namespace
	}
	bootd := flag.String("bootd", "bin/osim-bootd", "the osim-bootd binary")
	kea := flag.String("kea", "/usr/sbin/kea-dhcp4", "the kea-dhcp4 binary")
	perfdhcp := flag.String("perfdhcp", "/usr/sbin/perfdhcp", "the perfdhcp binary (Debian: kea-admin)")
	servers := flag.String("servers", "osim,kea", "which servers, in order: osim, kea")
	start := flag.Int("start", 1000, "first rate probed, DORA/s")
	maxRate := flag.Int("max", 64000, "highest rate probed, DORA/s")
	probe := flag.Duration("probe", 2*time.Second, "length of a search probe (whole seconds: perfdhcp's -p)")
	sustain := flag.Duration("sustain", 10*time.Second, "length of the run that confirms a rate (whole seconds)")
	pin := flag.Bool("pin", true, "pin the server to CPU 0 and perfdhcp to CPU 1 (needs 2 CPUs)")
	out := flag.String("out", "", "also write the markdown report here")
	keep := flag.Bool("keep", false, "keep the work folder (configs, logs, lease stores) and print its path")
	share := flag.Float64("cpu-share", 0.5, "hold each server to this share of its CPU (cgroup CPU bandwidth), so the server, not perfdhcp, is the bottleneck; 0: uncapped")
	threads := flag.String("perfdhcp-threads", "single", "perfdhcp's -g: single or multi. Pinned to one CPU, perfdhcp's multi-thread mode (its default on 2 CPUs) loses answers in its own socket at rates its single thread reads in time")
	profile := flag.String("profile", "", "write osim-bootd's CPU profiles to FILE.1 (fresh phase), FILE.2 (after restart)")
	flag.Parse()
	for _, d := range []*time.Duration{probe, sustain} {
		if *d < time.Second || *d%time.Second != 0 {
			fmt.Fprintln(os.Stderr, "osim-dhcpbench: -probe and -sustain are whole seconds (perfdhcp's -p takes an integer)")
			os.Exit(2)
		}
	}
	if err := testlab.NeedRoot("network namespaces"); err != nil {
		fmt.Fprintln(os.Stderr, "osim-dhcpbench:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *share < 0 || *share > 1 {
		fmt.Fprintln(os.Stderr, "osim-dhcpbench: -cpu-share is a share of one CPU, 0 to 1")
		os.Exit(2)
	}
	if *threads != "single" && *threads != "multi" {
		fmt.Fprintln(os.Stderr, "osim-dhcpbench: -perfdhcp-threads is single or multi")
		os.Exit(2)
	}
	if err := run(ctx, *bootd, *kea, *perfdhcp, *servers, *threads, *pin, *keep, *out, *share, *profile, dhcpbench.Config{
		Start: *start, Max: *maxRate, Probe: *probe, Sustain: *sustain, Log: os.Stderr}); err != nil {
		fmt.Fprintln(os.Stderr, "osim-dhcpbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bootd, kea, perfdhcp, servers, perfdhcpThreads string, pin, keep bool, out string, share float64, profile string, cfg dhcpbench.Config) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, b := range []*string{&bootd, &kea, &perfdhcp} {
		p, err := exec.LookPath(*b)
		if err != nil {
			return fmt.Errorf("%s: %w (perfdhcp and kea-dhcp4: apt-get install kea-admin kea-dhcp4-server)", *b, err)
		}
		if *b, err = filepath.Abs(p); err != nil {
			return err
		}
	}
	srvCPU, pdCPU := -1, -1
	if pin {
		if runtime.NumCPU() < 2 {
			return fmt.Errorf("-pin needs 2 CPUs, this machine has %d", runtime.NumCPU())
		}
		srvCPU, pdCPU = 0, 1
	}
	dir, err := os.MkdirTemp("", "osim-dhcpbench")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "osim-dhcpbench: work folder", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	pair, err := dhcpbench.NewLab()
	if err != nil {
		return err
	}
	defer pair.Close()
	fetchIn := func(ctx context.Context, ns, url string) (string, error) {
		b, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, self, "fetch", url).Output()
		return string(b), err
	}
	var cpuCap *lab.CPUCap
	if share > 0 {
		if cpuCap, err = lab.NewCPUCap(fmt.Sprintf("osim-dhcpbench-%d", os.Getpid()), share); err != nil {
			return err
		}
		defer cpuCap.Close()
	}
	if profile != "" {
		if profile, err = filepath.Abs(profile); err != nil {
			return err
		}
	}
	pd := dhcpbench.Perfdhcp{Lab: pair, Path: perfdhcp, CPU: pdCPU, Threads: perfdhcpThreads}
	var res []*dhcpbench.Result
	for _, name := range strings.Split(servers, ",") {
		var srv dhcpbench.Server
		switch strings.TrimSpace(name) {
		case "osim":
			srv = &dhcpbench.Bootd{Lab: pair, Bin: bootd, Dir: filepath.Join(dir, "osim"), CPU: srvCPU, Cap: cpuCap, Profile: profile, Fetch: fetchIn}
		case "kea":
			srv = &dhcpbench.Kea{Lab: pair, Bin: kea, Dir: filepath.Join(dir, "kea"), CPU: srvCPU, Cap: cpuCap}
		default:
			return fmt.Errorf("-servers: unknown %q (want osim, kea)", name)
		}
		r, err := dhcpbench.Measure(ctx, cfg, pd, srv)
		if err != nil {
			return fmt.Errorf("%s: %w", srv.Name(), err)
		}
		res = append(res, r)
	}
	pv, _ := exec.Command(perfdhcp, "-v").Output() // "VERSION: 2.2.0"
	pver := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(pv)), "VERSION:"))
	how := fmt.Sprintf("`make bench-dhcp` (`osim-dhcpbench`), as root on %d CPUs: each server in turn in its own network namespace, perfdhcp %s "+
		"in another (`-g %s`), joined by a veth; perfdhcp acts as a relay (`-l %s`: giaddr set, from port 67), so both servers answer by unicast to it. "+
		"One /%d subnet, pool %s–%s (about a million addresses: never the limit), lease time %s on both, a fresh lease store per server. %s",
		runtime.NumCPU(), pver, perfdhcpThreads, dhcpbench.RelayIP, dhcpbench.Network.Bits(), dhcpbench.PoolStart, dhcpbench.PoolEnd,
		dhcpbench.LeaseTime, pinNote(pin)) + capNote(cpuCap)
	var w io.Writer = os.Stdout
	var f *os.File
	if out != "" {
		if f, err = os.Create(out); err != nil {
			return err
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}
	dhcpbench.Report(w, cfg, how, res)
	return nil
}

func pinNote(pin bool) string {
	if pin {
		return "The server is pinned to CPU 0 and perfdhcp to CPU 1 (`taskset`), so the load generator does not take the server's CPU."
	}
	return "Nothing pinned: server and perfdhcp share the CPUs."
}

// fetch prints the body of url (run inside a namespace by the bench).
func fetch(url string) int {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	io.Copy(os.Stdout, resp.Body)
	return 0
}

func capNote(c *lab.CPUCap) string {
	if c == nil {
		return " The servers are not capped: both may answer faster than perfdhcp receives, and then the rate is perfdhcp's."
	}
	return fmt.Sprintf(" Each server is held to %s by the CFS bandwidth controller (a cgroup: `-cpu-share`), "+
		"so the server, not perfdhcp on its own CPU, is what runs out: the rates compare what each server does with the same CPU.", c)
}
