package harness

import (
	"context"
	"fmt"
	"strings"
	"time"

	"osim/bench/internal/lab"
	"osim/bench/internal/peers"
	"osim/bench/internal/procstat"
)

// linger counts what the server holds c.LingerAfter the burst's last client
// ended, over its idle baseline. Every client has closed its socket by then,
// so a transfer still open serves nobody: with tftpd-hpa it is a child
// process, with atftpd a thread, with dnsmasq and osim-bootd a socket (and
// osim-bootd's active-transfers gauge). After the last burst it also waits
// for the server to return to its baseline, up to c.DrainLimit.
func linger(ctx context.Context, r *peers.Running, base procstat.Load, c Cell, last bool) *Linger {
	lab.Sleep(ctx, c.LingerAfter)
	l := snapshot(ctx, r, base)
	l.AfterS = c.LingerAfter.Seconds()
	if !last {
		return l
	}
	start := time.Now()
	for ctx.Err() == nil {
		s := snapshot(ctx, r, base)
		if s.idle() {
			l.DrainedS = c.LingerAfter.Seconds() + time.Since(start).Seconds()
			return l
		}
		if time.Since(start) > c.DrainLimit {
			l.DrainTimeout = true
			l.DrainedS = c.LingerAfter.Seconds() + time.Since(start).Seconds()
			return l
		}
		lab.Sleep(ctx, 250*time.Millisecond)
	}
	return l
}

func snapshot(ctx context.Context, r *peers.Running, base procstat.Load) *Linger {
	now := procstat.Count(r.PID)
	g, err := scrapeGauge(ctx, r.Metrics, activeGauge)
	if err != nil {
		g = -1
	}
	return &Linger{
		Sockets: now.Sockets - base.Sockets, Threads: now.Threads - base.Threads, Procs: now.Procs - base.Procs,
		ActiveGauge: g,
	}
}

// idle: no socket, process or gauged transfer over the baseline. Threads
// are reported but not judged: Go servers start and park runtime threads
// on their own; atftpd's per-transfer threads each hold a socket anyway.
func (l *Linger) idle() bool {
	return l.Sockets <= 0 && l.Procs <= 0 && l.ActiveGauge <= 0
}

func (l *Linger) String() string {
	s := fmt.Sprintf("+%d sock +%d thr +%d proc", max(l.Sockets, 0), max(l.Threads, 0), max(l.Procs, 0))
	if l.ActiveGauge >= 0 {
		s += fmt.Sprintf(" gauge %g", l.ActiveGauge)
	}
	return s
}

func lingerNote(runs []RunStats, after time.Duration) string {
	var parts []string
	var drain string
	for _, r := range runs {
		l := r.Linger
		if l == nil {
			continue
		}
		parts = append(parts, l.String())
		if l.DrainTimeout {
			drain = fmt.Sprintf("; not back to idle %.0fs after the last burst", l.DrainedS)
		} else if l.DrainedS > 0 {
			drain = fmt.Sprintf("; idle %.1fs after the last burst", l.DrainedS)
		}
	}
	return fmt.Sprintf("left %.0fs after each burst: %s%s", after.Seconds(), strings.Join(parts, " / "), drain)
}
