package mass

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// Print writes the side-by-side table, the ratios and the verdict.
func (c *CompareReport) Print(w io.Writer) {
	fmt.Fprintf(w, "\nosim-bench -compare: %d targets (%.0f%% UEFI EDK2, the rest BIOS PXE ROMs), power-on over %.1fs, NBP %d KiB; DHCP + NBP only, proxyDHCP\n",
		c.Targets, c.UEFI*100, c.Spread, c.NBPBytes>>10)
	if c.Rounds <= 1 {
		c.table(w, c.Runs, true)
	} else {
		for round := 1; round <= c.Rounds; round++ {
			var rs []*NBPRun
			for _, r := range c.Runs {
				if r.Round == round {
					rs = append(rs, r)
				}
			}
			fmt.Fprintf(w, "\nround %d of %d:\n", round, c.Rounds)
			c.table(w, rs, true)
		}
		fmt.Fprintf(w, "\npooled over %d rounds (%d target boots per server; CPU, busy share, MB/s and wall: mean per round):\n", c.Rounds, c.Rounds*c.Targets)
		c.table(w, c.Pooled, false)
	}
	for _, r := range c.Runs {
		if r.Error != "" {
			fmt.Fprintf(w, "%s: not run: %s\n", r.Server, r.Error)
		}
	}
	fmt.Fprintln(w)
	for _, ra := range c.RoundRatios {
		fmt.Fprintf(w, "round %d: %s / osim-bootd: p50 %.2fx, p99 %.2fx\n", ra.Round, ra.Versus, ra.P50, ra.P99)
	}
	for _, ra := range c.Ratios {
		fmt.Fprintf(w, "%s / osim-bootd: p50 %.2fx, p99 %.2fx\n", ra.Versus, ra.P50, ra.P99)
	}
	fmt.Fprintln(w, "(time to NBP: over the targets that reached it; each includes the 500 ms the firmware collects offers)")
	fmt.Fprintf(w, "target (p99 ≥ 3x shorter than dnsmasq --tftp-max, zero failures): %s\n", c.Verdict)
	for _, r := range c.Runs {
		c.notes(w, r)
	}
}

// table writes runs side by side; phases only for single runs.
func (c *CompareReport) table(w io.Writer, runs []*NBPRun, phases bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(r *NBPRun) string) {
		fmt.Fprintf(tw, "%s\t", name)
		for _, r := range runs {
			if r.Error != "" {
				fmt.Fprint(tw, "-\t")
				continue
			}
			fmt.Fprintf(tw, "%s\t", f(r))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "\t")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t", r.Server)
	}
	fmt.Fprintln(tw)
	secs := func(v float64) string { return fmt.Sprintf("%.3f s", v) }
	row("reached the NBP", func(r *NBPRun) string { return fmt.Sprintf("%d/%d", r.Reached, r.Reached+r.Failed) })
	row("failed", func(r *NBPRun) string { return fmt.Sprint(r.Failed) })
	row("time to NBP p50", func(r *NBPRun) string { return secs(r.TimeToNBP.P50) })
	row("p95", func(r *NBPRun) string { return secs(r.TimeToNBP.P95) })
	row("p99", func(r *NBPRun) string { return secs(r.TimeToNBP.P99) })
	row("p99, failures as never", func(r *NBPRun) string {
		if r.P99Never {
			return "never"
		}
		return secs(r.TimeToNBP.P99)
	})
	row("max", func(r *NBPRun) string { return secs(r.TimeToNBP.Max) })
	for _, ph := range []string{"dhcp-discover", "pxe-4011", "tftp-tsize-probe", "tftp"} {
		if !phases {
			break
		}
		row(ph+" p50 / p99", func(r *NBPRun) string {
			d := r.Phases[ph]
			return fmt.Sprintf("%.3f / %.3f s", d.P50, d.P99)
		})
	}
	row("TFTP MB/s", func(r *NBPRun) string { return fmt.Sprintf("%.1f", r.TFTPMBps) })
	row("server CPU (boot window)", func(r *NBPRun) string { return fmt.Sprintf("%.2f s", r.Usage.CPUSeconds) })
	row("clients CPU (osim-bench)", func(r *NBPRun) string { return fmt.Sprintf("%.2f s", r.ClientCPUSeconds) })
	row("machine CPU busy (all cores)", func(r *NBPRun) string { return fmt.Sprintf("%.0f%%", r.MachineBusy*100) })
	row("server peak RSS", func(r *NBPRun) string { return fmt.Sprintf("%.1f MiB", r.Usage.PeakRSSMiB) })
	row("server ns UDP RcvbufErrors", func(r *NBPRun) string { return fmt.Sprint(r.ServerUDP.RcvbufErrors) })
	row("wall (boot / with setup)", func(r *NBPRun) string { return fmt.Sprintf("%.1f / %.1f s", r.BootSeconds, r.TotalSeconds) })
	tw.Flush()
}

// notes writes one run's counter mismatches, notes and failures.
func (c *CompareReport) notes(w io.Writer, r *NBPRun) {
	name := r.Server
	if r.Round > 0 {
		name = fmt.Sprintf("round %d, %s", r.Round, r.Server)
	}
	if r.Mismatches > 0 {
		fmt.Fprintf(w, "\n!!! %s: %d counter mismatches between the clients and its own counters:\n", name, r.Mismatches)
		for _, k := range r.Counters {
			if !k.OK {
				fmt.Fprintf(w, "  %s: clients %.0f, server %.0f (%s)\n", k.What, k.Client, k.Server, k.Series)
			}
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "%s: note: %s\n", name, n)
	}
	if r.Failed == 0 {
		return
	}
	fmt.Fprintf(w, "%s: %d failures by phase:", name, r.Failed)
	phases := make([]string, 0, len(r.ByPhase))
	for p := range r.ByPhase {
		phases = append(phases, p)
	}
	sort.Strings(phases)
	for _, p := range phases {
		fmt.Fprintf(w, " %s %d;", p, r.ByPhase[p])
	}
	fmt.Fprintln(w)
	for _, s := range sampleReasons(r.Failures, 4) {
		fmt.Fprintf(w, "  e.g. %s\n", s)
	}
}

// sampleReasons is up to n distinct failure reasons with how often each
// occurred (numbers such as block counts and xids folded away).
func sampleReasons(fs []Failure, n int) []string {
	count := map[string]int{}
	first := map[string]Failure{}
	for _, f := range fs {
		k := f.Phase + ": " + foldDigits(f.Reason)
		if _, ok := count[k]; !ok {
			first[k] = f
		}
		count[k]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return count[b] - count[a] })
	var out []string
	for _, k := range keys[:min(n, len(keys))] {
		f := first[k]
		out = append(out, fmt.Sprintf("%d× %s %s: %s", count[k], f.Target, f.Phase, f.Reason))
	}
	return out
}

func foldDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'f' {
			return '#'
		}
		return r
	}, s)
}
