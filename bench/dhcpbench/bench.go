package dhcpbench

import (
	"context"
	"fmt"
	"io"
	"time"

	"osim/bench/internal/lab"
)

// Config bounds the rate search.
type Config struct {
	Start   int           // first rate probed (DORA/s); the restart phase starts at the fresh result
	Max     int           // highest rate probed
	Probe   time.Duration // length of a search probe
	Sustain time.Duration // length of the run that confirms a rate: "sustained"
	Log     io.Writer     // progress, one line per perfdhcp run
}

// Phase is one rate search on one server.
type Phase struct {
	Name      string
	Probes    []Run         // every run, in order (the confirming runs too)
	Sustained Run           // the run that confirmed Rate
	Rate      int           // the highest rate sustained for Config.Sustain with no drops; 0: none
	CPU       time.Duration // server CPU over the whole phase
	// SustainedCPU is the server's CPU during the confirming run.
	SustainedCPU time.Duration
}

// Result is one server's two phases and the lease checks between them.
type Result struct {
	Server, Note   string
	Fresh, Restart Phase
	// Acked is how many distinct clients perfdhcp saw ACKed in the fresh
	// phase; LeasesBefore the server's count of bound leases before the
	// restart, LeasesAfter right after it (before any new traffic).
	Acked                     int
	LeasesBefore, LeasesAfter int
	RestartTime               time.Duration // from SIGTERM to serving again
	// Of the ACKs of the restart phase (clients of the fresh phase):
	// Same got the address they had, Moved another one, Unseen were
	// clients perfdhcp never saw ACKed before.
	Same, Moved, Unseen int
	Metrics             map[string]float64 // osim-bootd's /metrics at the end (nil for Kea)
}

// baseMAC is the first client's MAC: locally administered.
const baseMAC = 0x02_00_00_00_00_00

// manyClients is perfdhcp's -R in the fresh phase: more than any run
// sends, so every exchange of the phase is a new client.
const manyClients = 1 << 24

// Measure runs both phases on srv: a rate search with new clients only
// (each run's MACs follow the previous run's), a restart on the same lease
// store, then a rate search with the fresh phase's clients, which all hold
// leases.
func Measure(ctx context.Context, cfg Config, pd Perfdhcp, srv Server) (*Result, error) {
	res := &Result{Server: srv.Name(), Note: srv.Note()}
	p, err := srv.Start(ctx)
	if err != nil {
		return res, err
	}
	defer func() { p.Stop() }()
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "%s: "+format+"\n", append([]any{srv.Name()}, args...)...)
		}
	}

	next := uint64(baseMAC)
	known := map[uint64]string{}
	fresh := func(rate int, d time.Duration) Load {
		l := Load{Rate: rate, Period: d, BaseMAC: next, Clients: manyClients}
		return l
	}
	res.Fresh, err = search(ctx, cfg, pd, p, "fresh store, new clients", cfg.Start, fresh, func(r Run) {
		next += uint64(r.DO.Sent) + 16 // the next run's clients are new too
		for mac, ip := range r.Leases {
			known[mac] = ip
		}
	}, logf)
	if err != nil {
		return res, err
	}
	res.Acked = len(known)
	if res.LeasesBefore, err = srv.Leases(ctx, p); err != nil {
		return res, err
	}

	t0 := time.Now()
	p.Stop()
	if p, err = srv.Start(ctx); err != nil {
		return res, fmt.Errorf("restart: %w", err)
	}
	res.RestartTime = time.Since(t0)
	if res.LeasesAfter, err = srv.Leases(ctx, p); err != nil {
		return res, err
	}
	logf("restarted in %s: %d leases before, %d after", res.RestartTime.Round(time.Millisecond), res.LeasesBefore, res.LeasesAfter)

	clients := int(next - baseMAC)
	renew := func(rate int, d time.Duration) Load {
		return Load{Rate: rate, Period: d, BaseMAC: baseMAC, Clients: clients}
	}
	start := max(res.Fresh.Rate, cfg.Start/4, 50)
	res.Restart, err = search(ctx, cfg, pd, p, "after restart, clients holding leases", start, renew, func(r Run) {
		for mac, ip := range r.Leases {
			switch old, ok := known[mac]; {
			case !ok:
				res.Unseen++
			case old == ip:
				res.Same++
			default:
				res.Moved++
			}
		}
	}, logf)
	if err != nil {
		return res, err
	}
	if b, ok := srv.(*Bootd); ok {
		res.Metrics, _ = b.Metrics(ctx)
	}
	return res, nil
}

// search finds the highest rate with no drops: doubling from start until
// a probe fails, bisecting to within 10%, then confirming with a run of
// cfg.Sustain (stepping down 10% if it fails, six times at most).
func search(ctx context.Context, cfg Config, pd Perfdhcp, p *lab.Proc, name string, start int,
	load func(rate int, d time.Duration) Load, seen func(Run), logf func(string, ...any)) (Phase, error) {
	ph := Phase{Name: name}
	cpu0 := cpu(p)
	run := func(rate int, d time.Duration) (Run, time.Duration, error) {
		c0 := cpu(p)
		r, err := pd.Run(ctx, load(rate, d))
		c := cpu(p) - c0
		if err != nil {
			return r, c, err
		}
		if p.Exited() {
			return r, c, fmt.Errorf("server exited: %s", p.Tail())
		}
		seen(r)
		ph.Probes = append(ph.Probes, r)
		verdict := "clean"
		if !r.Clean() {
			verdict = r.Why()
		}
		logf("%s: %d/s for %s: %s (DO avg %s max %s, RA avg %s max %s; socket overflows: server %d, perfdhcp %d; server CPU %.2f s)",
			name, rate, d, verdict, r.DO.Avg, r.DO.Max, r.RA.Avg, r.RA.Max, r.RcvbufErrors, r.ClientRcvbufErrors, c.Seconds())
		// Let a server that fell behind drain its socket before the next run.
		time.Sleep(500 * time.Millisecond)
		return r, c, nil
	}
	lo, hi := 0, 0
	rate := start
	for {
		r, _, err := run(rate, cfg.Probe)
		if err != nil {
			return ph, err
		}
		if !r.Clean() {
			hi = rate
			break
		}
		lo = rate
		if rate >= cfg.Max {
			break
		}
		rate = min(rate*2, cfg.Max)
	}
	for lo == 0 && hi > 50 { // even the start failed: halve
		rate = hi / 2
		r, _, err := run(rate, cfg.Probe)
		if err != nil {
			return ph, err
		}
		if r.Clean() {
			lo = rate
		} else {
			hi = rate
		}
	}
	for hi > 0 && lo > 0 && hi-lo > lo/10 {
		rate = (lo + hi) / 2
		r, _, err := run(rate, cfg.Probe)
		if err != nil {
			return ph, err
		}
		if r.Clean() {
			lo = rate
		} else {
			hi = rate
		}
	}
	for range 6 {
		if lo == 0 {
			break
		}
		r, c, err := run(lo, cfg.Sustain)
		if err != nil {
			return ph, err
		}
		if r.Clean() {
			ph.Rate, ph.Sustained, ph.SustainedCPU = lo, r, c
			break
		}
		lo = lo * 9 / 10
	}
	ph.CPU = cpu(p) - cpu0
	return ph, nil
}
