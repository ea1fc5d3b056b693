package mass

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	"osim/bench/internal/lab"
	"osim/internal/promtext"
	"osim/internal/pxeclient"
)

// Report is what one run measured; it is also the -json output.
type Report struct {
	Mode        string  `json:"mode"`
	Started     string  `json:"started"`
	Targets     int     `json:"targets"`
	UEFI        float64 `json:"uefi_share"`
	Spread      float64 `json:"power_on_spread_s"`
	NBPBytes    int     `json:"nbp_bytes"`
	KernelBytes int     `json:"kernel_bytes"`
	InitrdBytes int     `json:"initrd_bytes"`

	Done     int       `json:"done"`
	Failed   int       `json:"failed"`
	Failures []Failure `json:"failures,omitempty"`
	// Orders is the manager's count of the orders by state at the end.
	Orders map[string]int `json:"orders,omitempty"`

	TimeToBoot Dist `json:"time_to_boot_s"` // power-on to the installer's last status call (image mode: the image included)
	// Image is the image mode's figures; nil without it.
	Image  *ImageFigures   `json:"image,omitempty"`
	Phases map[string]Dist `json:"phases_s"` // per phase, over the targets that ran it

	DHCPRepliesPerSec float64 `json:"dhcp_replies_per_s"`
	TFTPMBps          float64 `json:"tftp_mb_per_s"` // 10^6 bytes/s over the TFTP window
	HTTPMBps          float64 `json:"http_mb_per_s"`

	Server  ServerUsage `json:"server"`
	Manager ServerUsage `json:"manager,omitempty"`

	// DHCPServerMeanMs is the boot server's mean time from receiving a
	// DHCP request to its encoded reply (its own histogram).
	DHCPServerMeanMs float64 `json:"dhcp_server_mean_ms"`
	// ServerUDP is the server namespace's UDP counters over the boot window.
	ServerUDP lab.UDPStats `json:"server_ns_udp"`

	Counters   []Counter `json:"counters"`
	Mismatches int       `json:"counter_mismatches"`
	Notes      []string  `json:"notes,omitempty"`

	SetupSeconds  float64 `json:"setup_s"`
	StageSeconds  float64 `json:"stage_s"`
	BootSeconds   float64 `json:"boot_s"`
	OrdersSeconds float64 `json:"orders_done_s"`
	TotalSeconds  float64 `json:"total_s"`
}

// Failure is one target that did not finish.
type Failure struct {
	Target string `json:"target"` // MAC
	Phase  string `json:"phase"`  // stage/phase
	Reason string `json:"reason"`
}

// ServerUsage is a process's CPU over the boot window and its peak RSS.
type ServerUsage struct {
	Name       string  `json:"name,omitempty"`
	CPUSeconds float64 `json:"cpu_s"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
}

// Counter is one quantity counted by the clients and by the server.
type Counter struct {
	What   string  `json:"what"`
	Client float64 `json:"client"`
	Server float64 `json:"server"`
	Series string  `json:"series"`
	OK     bool    `json:"ok"`
}

// Dist is a distribution in seconds.
type Dist struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func dist(v []float64) Dist {
	if len(v) == 0 {
		return Dist{}
	}
	slices.Sort(v)
	q := func(p float64) float64 {
		i := int(p*float64(len(v)) + 0.5)
		return v[min(max(i-1, 0), len(v)-1)]
	}
	return Dist{N: len(v), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: v[len(v)-1]}
}

// window tracks the earliest start and latest end of some activity.
type window struct{ a, b time.Time }

func (w *window) add(a, b time.Time) {
	if w.a.IsZero() || a.Before(w.a) {
		w.a = a
	}
	if b.After(w.b) {
		w.b = b
	}
}

func (w *window) secs() float64 { return w.b.Sub(w.a).Seconds() }

func isDHCP(p string) bool {
	return p == pxeclient.PhaseDiscover || p == pxeclient.PhaseRequest || p == pxeclient.PhaseProxy
}

func isHTTPPhase(p string) bool {
	return p == pxeclient.PhaseScript || p == pxeclient.PhaseKernel || p == pxeclient.PhaseInitrd
}

// fill computes the figures from the targets' results.
func (r *Report) fill(ts []*target, bootStart time.Time, shared *pxeclient.SharedDHCP) {
	var boot []float64
	phases := map[string][]float64{}
	var dw, tw, hw window
	var tftpBytes, httpBytes int64
	for _, t := range ts {
		if t.err != nil {
			r.Failed++
			ph, why := failure(t)
			r.Failures = append(r.Failures, Failure{Target: t.mac.String(), Phase: ph, Reason: why})
		} else {
			r.Done++
			boot = append(boot, t.end.Sub(t.start).Seconds())
		}
		if t.res == nil {
			continue
		}
		// Phases run one after the other: rebuild their start times.
		at := t.start
		for _, p := range t.res.Phases {
			end := at.Add(p.Duration)
			phases[p.Phase] = append(phases[p.Phase], p.Duration.Seconds())
			switch {
			case isDHCP(p.Phase):
				dw.add(at, end)
			case p.Phase == pxeclient.PhaseTFTP || p.Phase == pxeclient.PhaseTsize:
				tw.add(at, end)
			case isHTTPPhase(p.Phase):
				hw.add(at, end)
			}
			at = end
		}
		for _, f := range t.res.Files {
			if f.Kind == "nbp" {
				tftpBytes += f.Size
			} else {
				httpBytes += f.Size
			}
		}
	}
	sort.Slice(r.Failures, func(i, j int) bool { return r.Failures[i].Target < r.Failures[j].Target })
	r.TimeToBoot = dist(boot)
	r.Phases = map[string]Dist{}
	for k, v := range phases {
		r.Phases[k] = dist(v)
	}
	if shared != nil && dw.secs() > 0 {
		replies := shared.Received(2) + shared.Received(5) + shared.Received(6)
		r.DHCPRepliesPerSec = float64(replies) / dw.secs()
	}
	if tw.secs() > 0 {
		r.TFTPMBps = float64(tftpBytes) / 1e6 / tw.secs()
	}
	if hw.secs() > 0 {
		r.HTTPMBps = float64(httpBytes) / 1e6 / hw.secs()
	}
}

// clientCounts adds up what the clients did, by the server's vocabulary.
type clientCounts struct {
	probes, nbps, nbpBytes    int64
	scripts, files, fileBytes int64
	statusCalls               int64
}

func countClients(ts []*target) clientCounts {
	var c clientCounts
	for _, t := range ts {
		if t.res == nil {
			continue
		}
		for _, p := range t.res.Phases {
			if p.Phase == pxeclient.PhaseTsize {
				c.probes++ // the probe's RRQ reached the server whether or not its OACK came back
			}
		}
		for _, f := range t.res.Files {
			switch f.Kind {
			case "nbp":
				c.nbps++
				c.nbpBytes += f.Size
			case "script":
				c.scripts++
			default:
				c.files++
				c.fileBytes += f.Size
			}
		}
		c.statusCalls += int64(t.res.StatusCalls)
		if im := t.res.Image; im != nil {
			c.files += int64(im.Files)
			c.fileBytes += im.Served
		}
	}
	return c
}

// check compares the clients' counts with the boot server's counters.
func (r *Report) checkWith(sm promtext.Samples, shared *pxeclient.SharedDHCP, c clientCounts, http bool) {
	add := func(what string, client, server float64, series string) {
		ok := client == server
		r.Counters = append(r.Counters, Counter{What: what, Client: client, Server: server, Series: series, OK: ok})
		if !ok {
			r.Mismatches++
		}
	}
	if shared != nil {
		add("DHCPDISCOVER sent / received", float64(shared.Sent(1)), sm.Sum("osim_dhcp_packets_total", "type", "discover"), `osim_dhcp_packets_total{type="discover"}`)
		add("DHCPREQUEST sent / received", float64(shared.Sent(3)), sm.Sum("osim_dhcp_packets_total", "type", "request"), `osim_dhcp_packets_total{type="request"}`)
		add("DHCPOFFER received / sent", float64(shared.Received(2)), sm.Sum("osim_dhcp_packets_total", "action", "offer"), `osim_dhcp_packets_total{action="offer"}`)
		add("DHCPACK received / sent", float64(shared.Received(5)), sm.Sum("osim_dhcp_packets_total", "action", "ack"), `osim_dhcp_packets_total{action="ack"}`)
	}
	if sum, n := sm.Sum("osim_dhcp_reply_latency_seconds_sum"), sm.Sum("osim_dhcp_reply_latency_seconds_count"); n > 0 {
		r.DHCPServerMeanMs = sum / n * 1000
	}
	add("TFTP tsize probes", float64(c.probes), sm.Sum("osim_tftp_tsize_probes_total"), "osim_tftp_tsize_probes_total")
	add("TFTP transfers started", float64(c.probes+c.nbps), sm.Sum("osim_tftp_transfers_started_total", "direction", "read"), `osim_tftp_transfers_started_total{direction="read"}`)
	add("TFTP transfers completed", float64(c.nbps), sm.Sum("osim_tftp_transfers_completed_total", "direction", "read"), `osim_tftp_transfers_completed_total{direction="read"}`)
	if rt := sm.Sum("osim_tftp_retransmits_total"); rt == 0 {
		add("TFTP payload bytes (no retransmits)", float64(c.nbpBytes), sm.Sum("osim_tftp_bytes_sent_total"), "osim_tftp_bytes_sent_total")
	} else {
		r.Notes = append(r.Notes, fmt.Sprintf("TFTP: %v retransmits, so bytes_sent_total (%v) exceeds the payload the clients kept (%d)",
			rt, sm.Sum("osim_tftp_bytes_sent_total"), c.nbpBytes))
	}
	if !http {
		return
	}
	add("HTTP scripts", float64(c.scripts), sm.Sum("osim_httpboot_requests_total", "route", "script"), `osim_httpboot_requests_total{route="script"}`)
	add("HTTP files (kernel, initrd, disk image)", float64(c.files), sm.Sum("osim_httpboot_requests_total", "route", "file"), `osim_httpboot_requests_total{route="file"}`)
	add("HTTP file bytes", float64(c.fileBytes), sm.Sum("osim_httpboot_response_bytes_total", "route", "file"), `osim_httpboot_response_bytes_total{route="file"}`)
	add("installer status calls", float64(c.statusCalls), sm.Sum("osim_httpboot_requests_total", "route", "status"), `osim_httpboot_requests_total{route="status"}`)
}

// Print writes the summary table.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\nosim-bench: %d targets (%.0f%% UEFI), power-on over %.1fs, NBP %d KiB, kernel+initrd %.1f MiB, %s DHCP\n",
		r.Targets, r.UEFI*100, r.Spread, r.NBPBytes>>10, float64(r.KernelBytes+r.InitrdBytes)/(1<<20), r.Mode)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "done\t%d/%d\n", r.Done, r.Targets)
	fmt.Fprintf(tw, "failed\t%d\n", r.Failed)
	if r.Orders != nil {
		fmt.Fprintf(tw, "orders (manager)\t%v\n", r.Orders)
	}
	d := r.TimeToBoot
	fmt.Fprintf(tw, "time to boot\tp50 %.2fs  p95 %.2fs  p99 %.2fs  max %.2fs  (p99/p50 %.2f)\n", d.P50, d.P95, d.P99, d.Max, d.P99/max(d.P50, 1e-9))
	names := make([]string, 0, len(r.Phases))
	for k := range r.Phases {
		names = append(names, k)
	}
	order := []string{pxeclient.PhaseDiscover, pxeclient.PhaseRequest, pxeclient.PhaseProxy, pxeclient.PhaseTsize, pxeclient.PhaseTFTP,
		pxeclient.PhaseScript, pxeclient.PhaseInitrd, pxeclient.PhaseKernel, pxeclient.PhasePlan, pxeclient.PhaseImage, pxeclient.PhaseInstall}
	sort.Slice(names, func(i, j int) bool { return slices.Index(order, names[i]) < slices.Index(order, names[j]) })
	for _, k := range names {
		d := r.Phases[k]
		fmt.Fprintf(tw, "  %s (n=%d)\tp50 %.3fs  p95 %.3fs  p99 %.3fs  max %.3fs\n", k, d.N, d.P50, d.P95, d.P99, d.Max)
	}
	if im := r.Image; im != nil {
		fmt.Fprintf(tw, "image\t%.1f MiB disk file, installers: %v\n", float64(im.Bytes)/(1<<20), im.Installed)
		fmt.Fprintf(tw, "boot server egress\t%.2f GB over the boot window, %.0f MB/s\n", im.EgressBytes/1e9, im.EgressMBps)
		w := im.WriteMBps
		fmt.Fprintf(tw, "installer write rate\tp50 %.1f MB/s  p99 %.1f MB/s (per target), %.0f MB/s all together\n", w.P50, w.P99, im.AggregateMBps)
	}
	fmt.Fprintf(tw, "DHCP replies/s\t%.0f (server's mean handling time %.2f ms)\n", r.DHCPRepliesPerSec, r.DHCPServerMeanMs)
	fmt.Fprintf(tw, "TFTP MB/s\t%.1f\n", r.TFTPMBps)
	fmt.Fprintf(tw, "HTTP MB/s\t%.1f\n", r.HTTPMBps)
	fmt.Fprintf(tw, "%s\tCPU %.2fs over the boot window, peak RSS %.1f MiB\n", r.Server.Name, r.Server.CPUSeconds, r.Server.PeakRSSMiB)
	if r.Manager.Name != "" {
		fmt.Fprintf(tw, "%s\tCPU %.2fs (whole run), peak RSS %.1f MiB\n", r.Manager.Name, r.Manager.CPUSeconds, r.Manager.PeakRSSMiB)
	}
	fmt.Fprintf(tw, "server ns UDP\tin %d, RcvbufErrors %d, InErrors %d\n", r.ServerUDP.InDatagrams, r.ServerUDP.RcvbufErrors, r.ServerUDP.InErrors)
	fmt.Fprintf(tw, "wall\tsetup %.1fs (staging %.1fs), boot %.1fs, orders done at %.1fs, total %.1fs\n",
		r.SetupSeconds, r.StageSeconds, r.BootSeconds, r.OrdersSeconds, r.TotalSeconds)
	tw.Flush()
	fmt.Fprintln(w, "\nclients vs the boot server's counters:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WHAT\tCLIENTS\tSERVER\tSERIES\t")
	for _, c := range r.Counters {
		mark := "ok"
		if !c.OK {
			mark = "MISMATCH"
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%s\n", c.What, c.Client, c.Server, c.Series, mark)
	}
	tw.Flush()
	if r.Mismatches > 0 {
		fmt.Fprintf(w, "\n!!! %d COUNTER MISMATCHES between the clients and the boot server !!!\n", r.Mismatches)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(r.Failures) > 0 {
		fmt.Fprintf(w, "\nfailures (%d):\n", len(r.Failures))
		byPhase := map[string]int{}
		for _, f := range r.Failures {
			byPhase[f.Phase]++
		}
		for p, n := range byPhase {
			fmt.Fprintf(w, "  %s: %d\n", p, n)
		}
		for i, f := range r.Failures {
			if i == 10 {
				fmt.Fprintf(w, "  … %d more (see -json)\n", len(r.Failures)-10)
				break
			}
			fmt.Fprintf(w, "  %s %s: %s\n", f.Target, f.Phase, f.Reason)
		}
	}
}
