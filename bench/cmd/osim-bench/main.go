// Command osim-bench is a mass reimage of simulated PXE targets: N targets
// (a mix of BIOS iPXE ROMs and UEFI EDK2 → iPXE, as recorded in
// bench/lab/README.md) in a client network namespace, one veth into a
// server namespace where it starts osim-manager and osim-bootd (full DHCP),
// orders the reimage through the manager's API, powers the targets on at
// once or over -spread, and reports time-to-boot, time per phase,
// throughput, the boot server's CPU and peak RSS, and its Prometheus
// counters checked against what the clients counted. Needs root.
//
// With -compare it is the peer comparison instead: the same targets (MACs,
// BIOS/UEFI mix, power-on pattern, addresses as a site's DHCP would give)
// through DHCP + NBP only against osim-bootd in proxy mode, dnsmasq as
// proxyDHCP + TFTP at its defaults, and dnsmasq with --tftp-max raised,
// one after the other; time-to-NBP and failures side by side, as ratios.
//
//	osim-bench -n 2000 -spread 1s -json out.json
//	osim-bench -compare -n 2000 -json compare.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"osim/controlplane/api"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"osim/bench/mass"
	"osim/internal/cpuprofile"
)

func main() { os.Exit(run()) }

func run() int {
	exe, _ := os.Executable()
	var o mass.Options
	flag.IntVar(&o.N, "n", 2000, "simulated targets")
	flag.Float64Var(&o.UEFI, "uefi", 0.5, "share of UEFI targets (EDK2, then iPXE snponly.efi); the rest are BIOS iPXE ROMs")
	flag.DurationVar(&o.Spread, "spread", time.Second, "power the targets on over this long (0: all at once)")
	flag.IntVar(&o.NBP, "nbp-size", 256<<10, "bytes of each NBP (TFTP)")
	flag.IntVar(&o.Kernel, "kernel-size", 6<<20, "bytes of the kernel (HTTP)")
	flag.IntVar(&o.Initrd, "initrd-size", 2<<20, "bytes of the initrd (HTTP)")
	flag.IntVar(&o.Steps, "steps", 1, "installer progress reports between the first and the last")
	flag.DurationVar(&o.Timeout, "timeout", 170*time.Second, "give up after this long (setup included)")
	flag.StringVar(&o.Bin, "bin", filepath.Dir(exe), "folder with osim-manager and osim-bootd")
	imageSize := flag.String("image-size", "", "image mode: order a disk-format os image of this size (e.g. 64MiB) with a boot image; the targets play the installer's install mode")
	jsonOut := flag.String("json", "", "write the report as JSON to this file")
	compare := flag.Bool("compare", false, "peer comparison, DHCP + NBP only: osim-bootd (proxy mode), dnsmasq, dnsmasq with --tftp-max raised (-timeout: per server)")
	rounds := flag.Int("rounds", 1, "with -compare: run the servers in turn this many times; figures pooled over the rounds")
	servers := flag.String("servers", "", "with -compare: comma-separated subset of osim-bootd,dnsmasq,dnsmasq-tftp-max")
	profile := flag.String("profile", "", "with -compare: osim-bootd writes a CPU profile of each round to FILE.<round>")
	selfProfile := flag.String("self-profile", "", "write a CPU profile of osim-bench itself (the simulated targets) to this file")
	rollout := flag.Bool("rollout", false, "rollout mode: osim starts the targets itself, wave by wave (wake-on-LAN from the boot server), through a rollout with a failure budget; image mode (default -image-size 16MiB)")
	var ro mass.RolloutOptions
	flag.IntVar(&ro.WaveSize, "wave-size", 250, "with -rollout: targets per wave")
	flag.Float64Var(&ro.FailRate, "fail-rate", 0.02, "with -rollout: share of targets whose disk fails mid-write")
	flag.IntVar(&ro.FailureBudget, "failure-budget", 0, "with -rollout: stop the rollout after this many failed orders (0: none)")
	flag.IntVar(&ro.WaveFailurePercent, "wave-failure-percent", 0, "with -rollout: stop when a wave fails this share or more")
	flag.IntVar(&ro.MaxPerBootServer, "max-per-boot-server", 0, "with -rollout: orders in flight per boot server at most (0: no cap)")
	flag.StringVar(&ro.EgressCeiling, "egress-ceiling", "", "with -rollout: osim-bootd's http.egress_ceiling (e.g. 300M/s; empty: none)")
	flag.Uint64Var(&ro.Seed, "seed", 1, "with -rollout: picks the targets with a failing disk")
	flag.Parse()
	if *imageSize != "" {
		n, err := parseSize(*imageSize)
		if err != nil {
			fmt.Fprintf(os.Stderr, "osim-bench: -image-size: %v\n", err)
			return 2
		}
		o.ImageSize = n
	}
	stopProfile, err := cpuprofile.Start(*selfProfile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bench: %v\n", err)
		return 2
	}
	defer stopProfile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.Progress = os.Stderr
	if st, err := os.Stderr.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		o.TTY = true
	}
	o.Log = os.Stderr
	if *compare {
		return runCompare(ctx, o, *servers, *rounds, *jsonOut, *profile)
	}
	if *rollout {
		timeoutSet := false
		flag.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
		if !timeoutSet {
			o.Timeout = 20 * time.Minute // waves one after the other
		}
		return runRollout(ctx, o, ro, *jsonOut)
	}
	status := 0
	rep, err := mass.Run(ctx, o)
	if errors.Is(err, mass.ErrImageRefused) {
		fmt.Fprintf(os.Stderr, "osim-bench: SKIPPED the image mode: %v\n(this manager predates disk-format images, issue 13)\n", err)
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bench: %v\n", err)
		return 1
	}
	rep.Print(os.Stdout)
	if rep.Failed > 0 || rep.Mismatches > 0 {
		status = 1
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "osim-bench: %v\n", err)
			return 1
		}
	}
	return status
}

func runRollout(ctx context.Context, o mass.Options, ro mass.RolloutOptions, jsonOut string) int {
	rep, err := mass.RunRollout(ctx, o, ro)
	if rep != nil {
		rep.Print(os.Stdout)
		if jsonOut != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "osim-bench: %v\n", err)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bench: %v\n", err)
		return 1
	}
	if len(rep.Notes) > 0 {
		return 1 // a machine failed without an injected failure
	}
	return 0
}

func runCompare(ctx context.Context, o mass.Options, servers string, rounds int, jsonOut, profile string) int {
	co := mass.CompareOptions{N: o.N, UEFI: o.UEFI, Spread: o.Spread, NBP: o.NBP, Timeout: o.Timeout, Rounds: rounds,
		Bin: o.Bin, Progress: o.Progress, TTY: o.TTY, Log: o.Log, Profile: profile}
	if servers != "" {
		co.Servers = strings.Split(servers, ",")
	}
	rep, err := mass.Compare(ctx, co)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bench: %v\n", err)
		return 1
	}
	rep.Print(os.Stdout)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "osim-bench: %v\n", err)
			return 1
		}
	}
	// dnsmasq's failures are findings; osim-bootd's, or a server that could
	// not be run, fail the bench.
	for _, r := range rep.Runs {
		if r.Error != "" || (r.Server == mass.ServerBootd && (r.Failed > 0 || r.Mismatches > 0)) {
			return 1
		}
	}
	return 0
}

// parseSize is api.ParseSize (64MiB, 512K, plain bytes), positive only.
func parseSize(s string) (int64, error) {
	n, err := api.ParseSize(s)
	if err == nil && n <= 0 {
		err = fmt.Errorf("size %q: want more than 0 bytes", s)
	}
	return n, err
}
