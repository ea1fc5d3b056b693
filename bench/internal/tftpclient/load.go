package tftpclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"osim/internal/tftpwire"
)

// LoadConfig runs Clients reads of the same file at once, each from its own
// socket.
type LoadConfig struct {
	Clients int
	Listen  ListenFunc
	// Limit bounds each read from start to end; a read still running then
	// is a failure.
	Limit  time.Duration
	Client Config
}

// LoadResult sums up the reads.
type LoadResult struct {
	Clients, OK, Failed int
	Bytes               int64 // verified bytes of all reads, finished or not
	Wall                time.Duration
	// Negotiated and OACK are from the first successful read.
	Negotiated tftpwire.Negotiated
	OACK       bool
	// Failures counts failed reads by kind, with one sample message each.
	Failures map[string]int
	Samples  map[string]string
	// Sums of the per-read counters.
	RRQs, Timeouts, Dups, Gaps, Strays, StrayTIDs int
	// Completion times of the successful reads.
	P50, P99, Max time.Duration
}

// MBps is the aggregate goodput in 10^6 bytes per second.
func (r LoadResult) MBps() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Wall.Seconds() / 1e6
}

// Load opens every socket first, then starts all reads at once, and waits
// for the last one.
func Load(ctx context.Context, lc LoadConfig) (LoadResult, error) {
	conns := make([]*net.UDPConn, 0, lc.Clients)
	for i := 0; i < lc.Clients; i++ {
		c, err := lc.Listen()
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return LoadResult{}, fmt.Errorf("tftpclient: open socket %d of %d: %w", i+1, lc.Clients, err)
		}
		conns = append(conns, c)
	}
	results := make([]Result, lc.Clients)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			// Closed as soon as the read ends, as firmware moves on: a server
			// still sending to the port then gets ICMP port unreachable.
			defer c.Close()
			<-start
			cctx, cancel := context.WithTimeout(ctx, lc.Limit)
			defer cancel()
			results[i] = Get(cctx, c, lc.Client)
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return summarize(results, time.Since(t0)), ctx.Err()
}

func summarize(results []Result, wall time.Duration) LoadResult {
	lr := LoadResult{Clients: len(results), Wall: wall, Failures: map[string]int{}, Samples: map[string]string{}}
	var durs []time.Duration
	for _, r := range results {
		lr.Bytes += r.Bytes
		lr.RRQs += r.RRQs
		lr.Timeouts += r.Timeouts
		lr.Dups += r.Dups
		lr.Gaps += r.Gaps
		lr.Strays += r.Strays
		lr.StrayTIDs += r.StrayTIDs
		if r.Err != nil {
			lr.Failed++
			k := FailureKind(r.Err)
			lr.Failures[k]++
			if _, ok := lr.Samples[k]; !ok {
				lr.Samples[k] = r.Err.Error()
			}
			continue
		}
		if lr.OK == 0 {
			lr.Negotiated, lr.OACK = r.Negotiated, r.OACK
		}
		lr.OK++
		durs = append(durs, r.Duration)
	}
	if len(durs) > 0 {
		slices.Sort(durs)
		lr.P50 = durs[len(durs)/2]
		lr.P99 = durs[(len(durs)*99)/100]
		lr.Max = durs[len(durs)-1]
	}
	return lr
}

// FailureKind names the class of a read's error for counting.
func FailureKind(err error) string {
	switch {
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrMismatch):
		return "wrong bytes"
	case errors.Is(err, ErrServer):
		return "server error"
	case errors.Is(err, ErrProtocol):
		return "protocol"
	}
	return "other"
}
