package harness

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"osim/bench/internal/peers"
	"osim/bench/internal/procstat"
	"osim/bench/internal/tftpclient"
	"osim/internal/tftpwire"
)

// Client timing: a read fails after retries consecutive timeouts without
// progress; burst clients re-send the RRQ every second until answered.
const (
	clientTimeout = time.Second
	clientRetries = 8
	rrqEvery      = time.Second
)

// runCell measures one cell against a running peer.
func runCell(ctx context.Context, r *peers.Running, c Cell, expected []byte, pin bool) Outcome {
	o := Outcome{Server: r.Name, Cell: c.ID, Label: c.Label, Kind: c.Kind}
	if pin && c.Kind == Single && runtime.NumCPU() >= 2 {
		unpin, err := pinApart(r.PID)
		if err != nil {
			o.Notes = append(o.Notes, "not pinned: "+err.Error())
		}
		defer unpin()
	}
	cfg := tftpclient.Config{
		Server: r.Addr, File: c.File, Blksize: c.Blksize, Window: c.Window, Tsize: true,
		Timeout: clientTimeout, Retries: clientRetries, Expected: expected,
	}
	listen := r.Listen
	sample := time.Second
	if c.Kind == Single {
		// Room for a 64-block window even if the reader is late (capped by
		// net.core.rmem_max, which the bench does not change).
		listen = bigBuffer(r.Listen)
		sample = 250 * time.Millisecond
	}
	if c.Kind == Burst {
		cfg.RRQEvery = rrqEvery
	}
	var base procstat.Load
	if c.Kind == Burst {
		base = procstat.Count(r.PID)
	}
	var first tftpclient.LoadResult
	for i := 0; i < c.Runs && ctx.Err() == nil && !r.Exited(); i++ {
		meter, err := procstat.Start(r.PID, r.CPU, sample)
		if err != nil && !slices.ContainsFunc(o.Notes, func(n string) bool { return strings.HasPrefix(n, "not metered") }) {
			o.Notes = append(o.Notes, "not metered: "+err.Error())
		}
		lr, err := tftpclient.Load(ctx, tftpclient.LoadConfig{Clients: c.Clients, Listen: listen, Limit: c.Limit, Client: cfg})
		if err != nil {
			slog.Warn("load ended early", "server", r.Name, "cell", c.ID, "err", err)
		}
		run := runFrom(lr)
		if meter != nil {
			if u, err := meter.Stop(); err == nil {
				run.Metered = true
				run.CPUS, run.HWMMiB, run.PSSMiB = u.CPU.Seconds(), mibs(u.HWM), mibs(u.PeakPSS)
			}
		}
		if c.Kind == Burst {
			run.Linger = linger(ctx, r, base, c, i == c.Runs-1)
		}
		if first.OK == 0 && lr.OK > 0 {
			first = lr
		}
		o.Runs = append(o.Runs, run)
	}
	o.OACK, o.Echoed = first.OACK, first.Negotiated.Echoed
	o.GotBlk, o.GotWindow = first.Negotiated.Blksize, first.Negotiated.Window
	summarizeRuns(&o, c)
	o.Notes = append(o.Notes, notes(o, c)...)
	return o
}

// pinApart puts the server on CPU 0 and the bench on CPU 1 for a single
// stream. Lockstep throughput on loopback is the cost of one wakeup per
// block, and that differs threefold between the two ends sharing a CPU and
// not: left to the scheduler, runs of the same cell flip between the two.
// Apart is the stable case and the one that resembles two machines.
func pinApart(server int) (func(), error) {
	unpin := func() {
		procstat.Pin(server)
		procstat.PinSelf()
	}
	if err := procstat.Pin(server, 0); err != nil {
		unpin()
		return func() {}, err
	}
	if err := procstat.PinSelf(1); err != nil {
		unpin()
		return func() {}, err
	}
	return unpin, nil
}

func bigBuffer(listen tftpclient.ListenFunc) tftpclient.ListenFunc {
	return func() (*net.UDPConn, error) {
		c, err := listen()
		if err == nil {
			c.SetReadBuffer(4 << 20)
		}
		return c, err
	}
}

func mibs(b int64) float64 { return float64(b) / bytesPerMiB }

// summarizeRuns sets the headline: the median run of a single cell, the
// sum of the bursts of a burst cell.
func summarizeRuns(o *Outcome, c Cell) {
	if len(o.Runs) == 0 {
		return
	}
	for _, r := range o.Runs {
		o.Failed += r.Failed
		o.Clients += r.Clients
		o.HWMMiB = max(o.HWMMiB, r.HWMMiB)
		o.Metered = o.Metered || r.Metered
		o.PSSMiB = max(o.PSSMiB, r.PSSMiB)
	}
	switch c.Kind {
	case Burst:
		var bytes int64
		var wall float64
		for _, r := range o.Runs {
			bytes += r.Bytes
			wall += r.WallS
			o.CPUS += r.CPUS
		}
		if wall > 0 {
			o.MBps = float64(bytes) / wall / 1e6
		}
	default:
		o.MBps = median(o.Runs, func(r RunStats) float64 { return r.MBps })
		o.CPUS = median(o.Runs, func(r RunStats) float64 { return r.CPUS })
	}
}

func median(runs []RunStats, f func(RunStats) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

// notes are the findings worth a line in the table.
func notes(o Outcome, c Cell) []string {
	var n []string
	served := 0
	for _, r := range o.Runs {
		served += r.OK
	}
	if served == 0 {
		n = append(n, "no read succeeded")
	} else {
		if !o.OACK {
			n = append(n, "no OACK: options ignored, 512-byte lockstep")
		}
		if c.Window > 0 && !slices.Contains(o.Echoed, tftpwire.OptWindowsize) {
			n = append(n, "n/a: ignores windowsize → lockstep")
		} else if c.Window > 0 && o.GotWindow != c.Window {
			n = append(n, fmt.Sprintf("windowsize %d→%d", c.Window, o.GotWindow))
		}
		if o.OACK && o.GotBlk != c.Blksize {
			n = append(n, fmt.Sprintf("blksize %d→%d", c.Blksize, o.GotBlk))
		}
	}
	if c.Kind == Single && len(o.Runs) > 1 {
		var per []string
		for _, r := range o.Runs {
			per = append(per, fmt.Sprintf("%.0f", r.MBps))
		}
		n = append(n, "runs "+strings.Join(per, "/"))
	}
	fails := map[string]int{}
	var timeouts, strays, strayTIDs, rrqs int
	for _, r := range o.Runs {
		for k, v := range r.Failures {
			fails[k] += v
		}
		timeouts += r.Timeouts
		strays += r.Strays
		strayTIDs += r.StrayTIDs
		rrqs += r.RRQs
	}
	if len(fails) > 0 {
		var parts []string
		for k, v := range fails {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(parts)
		n = append(n, "failed: "+strings.Join(parts, ", "))
	}
	if c.Kind == Burst {
		var per []string
		for _, r := range o.Runs {
			per = append(per, fmt.Sprintf("%d", r.OK))
		}
		n = append(n, fmt.Sprintf("served %s of %d; %d RRQs", strings.Join(per, "/"), c.Clients, rrqs))
		n = append(n, lingerNote(o.Runs, c.LingerAfter))
	}
	if strayTIDs > 0 {
		n = append(n, fmt.Sprintf("duplicate transfers seen by clients: %d (%d packets)", strayTIDs, strays))
	}
	if timeouts > 0 && c.Kind != Burst {
		n = append(n, fmt.Sprintf("client timeouts %d", timeouts))
	}
	return n
}
