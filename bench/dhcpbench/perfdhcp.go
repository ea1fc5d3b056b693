package dhcpbench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"osim/internal/testlab"
)

// Load is one perfdhcp run: Rate DORA exchanges per second for Period,
// from Clients distinct MACs counted up from BaseMAC (perfdhcp without a
// seed takes them in order: BaseMAC, BaseMAC+1, ..., wrapping at Clients).
type Load struct {
	Rate    int
	Period  time.Duration
	BaseMAC uint64 // the MAC as a 48-bit number
	Clients int
}

// Exchange is perfdhcp's statistics of one exchange type (DISCOVER-OFFER
// or REQUEST-ACK), with the percentiles this package computes from the
// per-packet timestamps perfdhcp prints with -x t.
type Exchange struct {
	Sent, Received, Drops, Orphans, Rejected int
	Min, Avg, Max, Std                       time.Duration // as perfdhcp reports them
	P50, P99                                 time.Duration // from the timestamps
}

// Run is what one perfdhcp run reported.
type Run struct {
	Load     Load
	DO, RA   Exchange
	Leases   map[uint64]string // MAC -> address, from the ACKs (-x l)
	Duration time.Duration     // wall time of the perfdhcp process
	// RcvbufErrors is how many datagrams the server namespace dropped for
	// a full socket buffer during the run (-1: unknown).
	RcvbufErrors int
	// ClientRcvbufErrors: the same in perfdhcp's namespace (answers lost
	// because perfdhcp did not read them in time).
	ClientRcvbufErrors int
	Output             string // perfdhcp's summary (without the per-packet lines), for failures
}

// Achieved is the DISCOVER rate perfdhcp actually sent.
func (r Run) Achieved() float64 { return float64(r.DO.Sent) / r.Load.Period.Seconds() }

// Clean reports whether the run had no drops in either exchange and
// perfdhcp kept up with the rate asked (within 3%): a run perfdhcp could
// not drive proves nothing about the server.
func (r Run) Clean() bool {
	return r.DO.Sent > 0 && r.DO.Drops == 0 && r.RA.Drops == 0 && r.RA.Sent == r.DO.Received &&
		r.Achieved() >= 0.97*float64(r.Load.Rate)
}

// Why says why a run is not clean.
func (r Run) Why() string {
	switch {
	case r.DO.Sent == 0:
		return "perfdhcp sent nothing"
	case r.Achieved() < 0.97*float64(r.Load.Rate):
		return fmt.Sprintf("perfdhcp sent only %.0f/s", r.Achieved())
	case r.DO.Drops > 0 || r.RA.Drops > 0:
		return fmt.Sprintf("drops %d DO, %d RA", r.DO.Drops, r.RA.Drops)
	case r.RA.Sent != r.DO.Received:
		return fmt.Sprintf("%d offers but %d requests", r.DO.Received, r.RA.Sent)
	}
	return ""
}

// Perfdhcp runs perfdhcp from the lab's client namespace.
type Perfdhcp struct {
	Lab  *testlab.Pair
	Path string // perfdhcp binary; default "perfdhcp"
	CPU  int    // pin perfdhcp to this CPU; -1: not pinned
	// Threads is perfdhcp's -g: "single", or "multi" (a receiving thread
	// apart; perfdhcp's default with more than one CPU); "": its default.
	Threads string
}

// exitWait is how long perfdhcp keeps receiving after the period (-W): the
// drop time (-d, 1 s by default), so every answer inside it is counted
// and an exchange still in flight at the end is not taken for a drop.
const exitWait = time.Second

// Run drives one Load and parses the report.
func (p Perfdhcp) Run(ctx context.Context, l Load) (Run, error) {
	bin := p.Path
	if bin == "" {
		bin = "perfdhcp"
	}
	argv := []string{"ip", "netns", "exec", p.Lab.Client}
	if p.CPU >= 0 {
		argv = append(argv, "taskset", "-c", strconv.Itoa(p.CPU))
	}
	argv = append(argv, bin, "-4", "-l", RelayIP.String(),
		"-r", strconv.Itoa(l.Rate), "-p", strconv.Itoa(int(l.Period.Seconds())), // whole seconds only
		"-R", strconv.Itoa(l.Clients), "-b", "mac="+macString(l.BaseMAC),
		"-W", strconv.FormatInt(exitWait.Microseconds(), 10), "-x", "tl")
	if p.Threads != "" {
		argv = append(argv, "-g", p.Threads)
	}
	argv = append(argv, ServerIP.String())
	cctx, cancel := context.WithTimeout(ctx, l.Period+exitWait+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Run{}, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	rb0, rberr := rcvbufErrors(p.Lab.Server)
	cb0, cberr := rcvbufErrors(p.Lab.Client)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Run{}, fmt.Errorf("dhcpbench: start perfdhcp: %w", err)
	}
	r, perr := parse(out)
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	r.Duration = time.Since(start)
	r.Load = l
	r.RcvbufErrors, r.ClientRcvbufErrors = -1, -1
	if cb1, err := rcvbufErrors(p.Lab.Client); err == nil && cberr == nil {
		r.ClientRcvbufErrors = cb1 - cb0
	}
	if rb1, err := rcvbufErrors(p.Lab.Server); err == nil && rberr == nil {
		r.RcvbufErrors = rb1 - rb0
	}
	if perr != nil {
		return r, fmt.Errorf("dhcpbench: perfdhcp %s: %w; stderr: %s", strings.Join(argv[4:], " "), perr, stderr.String())
	}
	// Exit status 3: some exchanges not completed; the report says which.
	if ee, ok := werr.(*exec.ExitError); werr != nil && (!ok || ee.ExitCode() != 3) {
		return r, fmt.Errorf("dhcpbench: perfdhcp %s: %w; stderr: %s", strings.Join(argv[4:], " "), werr, stderr.String())
	}
	return r, nil
}

// parse reads perfdhcp's report: the statistics blocks, the timestamps
// (-x t) and the leases (-x l).
func parse(rd io.Reader) (Run, error) {
	r := Run{Leases: map[uint64]string{}}
	var (
		cur     *Exchange
		lat     *[]time.Duration
		leases  bool
		summary strings.Builder
		doLat   []time.Duration
		raLat   []time.Duration
		seen    bool
	)
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "***") {
			lat, leases = nil, false
			switch line {
			case "***Statistics for: DISCOVER-OFFER***":
				cur, seen = &r.DO, true
			case "***Statistics for: REQUEST-ACK***":
				cur = &r.RA
			case "***Timestamps for packets: DISCOVER-OFFER***":
				cur, lat = nil, &doLat
			case "***Timestamps for packets: REQUEST-ACK***":
				cur, lat = nil, &raLat
			case "***Leases for REQUEST-ACK***":
				cur, leases = nil, true
			default:
				cur = nil
			}
			summary.WriteString(line + "\n")
			continue
		}
		switch {
		case lat != nil:
			// sent / received: 000000.000071 / 000000.000407
			v, ok := strings.CutPrefix(line, "sent / received: ")
			if !ok {
				continue
			}
			a, b, ok := strings.Cut(v, " / ")
			s, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
			e, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
			if ok && err1 == nil && err2 == nil {
				*lat = append(*lat, time.Duration((e-s)*float64(time.Second)))
			}
		case leases:
			// client_id,adrress,prefix: 01000c01020304,10.98.1.0,
			f := strings.Split(line, ",")
			if len(f) < 2 || len(f[0]) != 14 || !strings.HasPrefix(f[0], "01") {
				continue
			}
			mac, err := strconv.ParseUint(f[0][2:], 16, 64)
			if err == nil {
				r.Leases[mac] = f[1]
			}
		case cur != nil:
			summary.WriteString(line + "\n")
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			switch k {
			case "sent packets":
				cur.Sent = atoi(v)
			case "received packets":
				cur.Received = atoi(v)
			case "drops":
				cur.Drops = atoi(v)
			case "orphans":
				cur.Orphans = atoi(v)
			case "rejected leases":
				cur.Rejected = atoi(v)
			case "min delay":
				cur.Min = ms(v)
			case "avg delay":
				cur.Avg = ms(v)
			case "max delay":
				cur.Max = ms(v)
			case "std deviation":
				cur.Std = ms(v)
			}
		case strings.HasPrefix(line, "Rate:"):
			summary.WriteString(line + "\n")
		}
	}
	r.Output = summary.String()
	if err := sc.Err(); err != nil {
		return r, err
	}
	if !seen {
		return r, fmt.Errorf("no statistics in the report")
	}
	r.DO.P50, r.DO.P99 = percentiles(doLat)
	r.RA.P50, r.RA.P99 = percentiles(raLat)
	return r, nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}

// ms reads perfdhcp's "0.219 ms".
func ms(s string) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "ms")), 64)
	if err != nil || math.IsNaN(f) {
		return 0
	}
	return time.Duration(f * float64(time.Millisecond))
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)/2], d[(len(d)*99)/100]
}

// macString formats a 48-bit number as perfdhcp's -b mac= wants it.
func macString(m uint64) string {
	b := make([]string, 6)
	for i := range 6 {
		b[i] = fmt.Sprintf("%02x", byte(m>>(8*(5-i))))
	}
	return strings.Join(b, ":")
}
