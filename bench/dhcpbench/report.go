package dhcpbench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report writes the markdown section: how it was run, the table, the
// lease checks, the target's verdict and the osim/Kea ratios. res[0] is
// osim-bootd, res[1] Kea (either may be missing).
func Report(w io.Writer, cfg Config, how string, res []*Result) {
	fmt.Fprintf(w, "### bench-dhcp: osim-bootd full mode vs Kea (perfdhcp)\n\n")
	fmt.Fprintf(w, "%s\n\n", how)
	for _, r := range res {
		fmt.Fprintf(w, "- **%s**: %s.\n", r.Server, r.Note)
	}
	fmt.Fprintf(w, "\nRate search per phase: probes of %s doubling from %d DORA/s (the restart phase from the fresh result), bisected to within 10%%, "+
		"then **sustained** = a %s run (10%% lower, up to 6 times, if it fails) at that rate with 0 drops in DISCOVER-OFFER and REQUEST-ACK "+
		"(perfdhcp's drop time 1 s, -W 1 s so answers in flight at the end count) and perfdhcp sending at least 97%% of the rate asked. "+
		"Latencies are perfdhcp's min/avg/max/std dev of that run; p50/p99 are computed from its per-packet timestamps (`-x t`).\n\n",
		cfg.Probe, cfg.Start, cfg.Sustain)
	fmt.Fprintln(w, "| server | phase | sustained DORA/s | DISCOVER-OFFER ms: min / avg / p50 / p99 / max (std) | REQUEST-ACK ms: min / avg / p50 / p99 / max (std) | server CPU s in the sustained run | CPU µs per DORA | server CPU s, whole phase | probes | the failed runs' drops: total / server socket full / perfdhcp socket full |")
	fmt.Fprintln(w, "|---|---|---:|---|---|---:|---:|---:|---|---|")
	for _, r := range res {
		for _, ph := range []Phase{r.Fresh, r.Restart} {
			perDORA := "–"
			if n := ph.Sustained.RA.Received; n > 0 {
				perDORA = fmt.Sprintf("%.0f", float64(ph.SustainedCPU.Microseconds())/float64(n))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.2f | %s | %.2f | %s | %s |\n", r.Server, ph.Name, rate(ph),
				lat(ph.Sustained.DO), lat(ph.Sustained.RA), ph.SustainedCPU.Seconds(), perDORA, ph.CPU.Seconds(), probes(ph), failed(ph))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| server | clients ACKed (perfdhcp) | server's bound leases before restart | after restart | restart (stop + start) | restart-phase ACKs: same address / other address / client not seen before |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|")
	for _, r := range res {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s | %d / %d / %d |\n", r.Server, r.Acked, r.LeasesBefore, r.LeasesAfter,
			r.RestartTime.Round(10*time.Millisecond), r.Same, r.Moved, r.Unseen)
	}
	fmt.Fprintln(w)
	if len(res) == 2 {
		o, k := res[0], res[1]
		fmt.Fprintf(w, "Ratios osim-bootd / Kea: sustained rate %s fresh, %s after restart; DISCOVER-OFFER avg latency %s fresh, %s after restart; "+
			"CPU per DORA %s fresh, %s after restart.\n\n",
			ratio(float64(o.Fresh.Rate), float64(k.Fresh.Rate)), ratio(float64(o.Restart.Rate), float64(k.Restart.Rate)),
			ratio(float64(o.Fresh.Sustained.DO.Avg), float64(k.Fresh.Sustained.DO.Avg)),
			ratio(float64(o.Restart.Sustained.DO.Avg), float64(k.Restart.Sustained.DO.Avg)),
			ratio(perDORA(o.Fresh), perDORA(k.Fresh)), ratio(perDORA(o.Restart), perDORA(k.Restart)))
		fmt.Fprintf(w, "**Target** (full DHCP mode: at least Kea's sustained DORA rate with zero drops, leases intact after restart): %s\n\n", Verdict(o, k))
	}
	for _, r := range res {
		if r.Metrics == nil {
			continue
		}
		var keys []string
		for k, v := range r.Metrics {
			if strings.HasPrefix(k, "osim_dhcp_decisions_total") && v > 0 {
				keys = append(keys, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, "osim_dhcp_decisions_total"), v))
			}
		}
		slices.Sort(keys)
		fmt.Fprintf(w, "%s's `osim_dhcp_decisions_total` at the end: %s.\n\n", r.Server, strings.Join(keys, ", "))
	}
}

// Verdict judges the target for osim-bootd (o) against Kea (k).
func Verdict(o, k *Result) string {
	var why []string
	if o.Fresh.Rate < k.Fresh.Rate {
		why = append(why, fmt.Sprintf("fresh rate %d < Kea's %d", o.Fresh.Rate, k.Fresh.Rate))
	}
	if o.Restart.Rate < k.Restart.Rate {
		why = append(why, fmt.Sprintf("after-restart rate %d < Kea's %d", o.Restart.Rate, k.Restart.Rate))
	}
	if !Intact(o) {
		why = append(why, fmt.Sprintf("leases not intact (%d before, %d after, %d clients moved)", o.LeasesBefore, o.LeasesAfter, o.Moved))
	}
	if o.Fresh.Rate == 0 || o.Restart.Rate == 0 {
		why = append(why, "no rate sustained")
	}
	if len(why) == 0 {
		return "**met**."
	}
	return "**not met**: " + strings.Join(why, "; ") + "."
}

// Intact: the server counts as many bound leases after the restart as
// before, at least as many as perfdhcp saw ACKed, and every client of the
// fresh phase that came back got its address again.
func Intact(r *Result) bool {
	return r.LeasesBefore == r.LeasesAfter && r.LeasesAfter >= r.Acked && r.Moved == 0 && r.Same > 0
}

func perDORA(ph Phase) float64 {
	if ph.Sustained.RA.Received == 0 {
		return 0
	}
	return float64(ph.SustainedCPU) / float64(ph.Sustained.RA.Received)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func rate(ph Phase) string {
	if ph.Rate == 0 {
		return "none"
	}
	return fmt.Sprintf("**%d**", ph.Rate)
}

func msf(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d.Microseconds())/1000) }

func lat(e Exchange) string {
	if e.Received == 0 {
		return "–"
	}
	return fmt.Sprintf("%s / %s / %s / %s / %s (%s)", msf(e.Min), msf(e.Avg), msf(e.P50), msf(e.P99), msf(e.Max), msf(e.Std))
}

// failed sums the drops of the runs that failed, and where the kernel
// counted datagrams dropped for a full socket buffer: the server's (it
// fell behind) or perfdhcp's (the load generator fell behind).
func failed(ph Phase) string {
	drops, srv, pd := 0, 0, 0
	for _, r := range ph.Probes {
		if r.Clean() {
			continue
		}
		drops += r.DO.Drops + r.RA.Drops
		srv += max(r.RcvbufErrors, 0)
		pd += max(r.ClientRcvbufErrors, 0)
	}
	return fmt.Sprintf("%d / %d / %d", drops, srv, pd)
}

// probes lists the search's runs: rate and ✓ or ✗.
func probes(ph Phase) string {
	var s []string
	for _, r := range ph.Probes {
		mark := "✓"
		if !r.Clean() {
			mark = "✗"
		}
		s = append(s, fmt.Sprintf("%d%s", r.Load.Rate, mark))
	}
	return strings.Join(s, " ")
}
