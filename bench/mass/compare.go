package mass

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"osim/bench/internal/lab"
	"osim/bench/internal/procstat"
	"osim/internal/bootd"
	"osim/internal/promtext"
	"osim/internal/pxeclient"
)

// Servers of the peer comparison, in the order Compare runs them.
const (
	ServerBootd      = "osim-bootd"
	ServerDnsmasq    = "dnsmasq"
	ServerDnsmasqMax = "dnsmasq-tftp-max"
)

// DnsmasqBinary is where Debian installs dnsmasq.
const DnsmasqBinary = "/usr/sbin/dnsmasq"

// CompareOptions is one peer comparison: the same targets, one server
// after the other, DHCP + NBP only.
type CompareOptions struct {
	N      int
	UEFI   float64       // share of UEFI (EDK2) targets; the rest are BIOS PXE ROMs
	Spread time.Duration // power-on spread, as in Options
	NBP    int           // bytes of each NBP
	// Timeout bounds each server's run, setup included.
	Timeout time.Duration
	Bin     string   // folder holding osim-bootd
	Servers []string // default: all three
	// Rounds runs the servers in turn this many times (default 1); the
	// figures are pooled over the rounds, the ratios also given per round.
	Rounds   int
	Progress io.Writer
	TTY      bool
	Log      io.Writer
	// Profile, when set, has osim-bootd write a CPU profile of each of
	// its runs to Profile.<round> (--cpu-profile).
	Profile string
}

// CompareReport is what Compare measured; it is also the -json output.
type CompareReport struct {
	Started  string    `json:"started"`
	Targets  int       `json:"targets"`
	UEFI     float64   `json:"uefi_share"`
	Spread   float64   `json:"power_on_spread_s"`
	NBPBytes int       `json:"nbp_bytes"`
	Rounds   int       `json:"rounds"`
	Runs     []*NBPRun `json:"runs"`   // every round's, in the order run
	Pooled   []*NBPRun `json:"pooled"` // per server, over the rounds (Runs when one round)
	Ratios   []Ratio   `json:"ratios"` // from Pooled
	// RoundRatios are the ratios of each round alone (more than one round).
	RoundRatios []Ratio     `json:"round_ratios,omitempty"`
	Verdict     string      `json:"verdict"`
	Met         bool        `json:"target_met"`
	PerMAC      []TargetNBP `json:"per_target"`
	Seconds     float64     `json:"total_s"`
}

// NBPRun is one server's figures.
type NBPRun struct {
	Server  string `json:"server"`
	Round   int    `json:"round,omitempty"`
	Command string `json:"command"`
	Error   string `json:"error,omitempty"` // the run could not be made

	Reached   int            `json:"reached_nbp"`
	Failed    int            `json:"failed"`
	ByPhase   map[string]int `json:"failures_by_phase,omitempty"`
	Failures  []Failure      `json:"failures,omitempty"`
	TimeToNBP Dist           `json:"time_to_nbp_s"` // power-on to the NBP's last block, over the targets that got it
	// P99Never: the 99th percentile over all targets, failures counted as
	// never reaching the NBP, is a failure (more than 1% failed).
	P99Never bool            `json:"p99_over_all_targets_is_never"`
	Phases   map[string]Dist `json:"phases_s"`

	DHCPSent     map[string]int64 `json:"dhcp_sent"`     // by message type, retries included
	DHCPReceived map[string]int64 `json:"dhcp_received"` // by message type
	TFTPMBps     float64          `json:"tftp_mb_per_s"`
	Usage        ServerUsage      `json:"server_usage"`
	// ClientCPUSeconds is this process's CPU over the boot window: the
	// simulated targets share the machine with the server.
	ClientCPUSeconds float64 `json:"clients_cpu_s"`
	// MachineBusy is the share of all CPUs busy over the boot window
	// (/proc/stat): 1 means the run was CPU-bound, whoever used it.
	MachineBusy  float64      `json:"machine_cpu_busy"`
	ServerUDP    lab.UDPStats `json:"server_ns_udp"`
	Counters     []Counter    `json:"counters,omitempty"` // osim-bootd only
	Mismatches   int          `json:"counter_mismatches"`
	Notes        []string     `json:"notes,omitempty"`
	BootSeconds  float64      `json:"boot_s"`
	TotalSeconds float64      `json:"total_s"`

	times []float64 // per target, -1: failed
}

// Ratio is how many times shorter osim-bootd's time-to-NBP is than a peer's.
type Ratio struct {
	Round  int     `json:"round,omitempty"`
	Versus string  `json:"versus"`
	P50    float64 `json:"p50"` // peer's p50 / osim-bootd's p50
	P99    float64 `json:"p99"`
}

// TargetNBP is one target's time-to-NBP against each server (-1: failed).
type TargetNBP struct {
	MAC      string    `json:"mac"`
	Firmware string    `json:"firmware"`
	Seconds  []float64 `json:"seconds"` // in the order of Runs
}

// compareTargets are the targets of Run, stopped after the first stage:
// UEFI targets are EDK2 (tsize probe, then blksize 1468 windowsize 4), BIOS
// targets a plain PXE ROM (blksize 1432 + tsize, lockstep) that loads an
// NBP: the iPXE ROM of Run gets a script URL from osim-bootd, no NBP.
func compareTargets(n int, uefi float64) []*target {
	ts := makeTargets(n, uefi)
	for _, t := range ts {
		if t.fw.Arch == 7 {
			t.fw = pxeclient.EDK2x64
		} else {
			t.fw = pxeclient.BIOSPXE
		}
		t.fw.Next = nil
	}
	return ts
}

// Compare runs the same targets (MACs, firmware mix, power-on pattern and
// addresses) through DHCP + NBP against osim-bootd in proxy mode, dnsmasq
// as proxyDHCP + TFTP at its defaults, and dnsmasq with --tftp-max raised
// to fit, each in a fresh lab, one after the other.
func Compare(ctx context.Context, o CompareOptions) (*CompareReport, error) {
	if o.N <= 0 {
		o.N = 200
	}
	if o.N > MaxTargets {
		return nil, fmt.Errorf("mass: at most %d targets (the site's addresses)", MaxTargets)
	}
	if o.NBP <= 0 {
		o.NBP = 256 << 10
	}
	if o.Timeout <= 0 {
		o.Timeout = 150 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if len(o.Servers) == 0 {
		o.Servers = []string{ServerBootd, ServerDnsmasq, ServerDnsmasqMax}
	}
	if o.Rounds <= 0 {
		o.Rounds = 1
	}
	t0 := time.Now()
	rep := &CompareReport{Started: t0.UTC().Format(time.RFC3339), Targets: o.N, UEFI: o.UEFI,
		Spread: o.Spread.Seconds(), NBPBytes: o.NBP, Rounds: o.Rounds}
	for round := 1; round <= o.Rounds; round++ {
		for _, s := range o.Servers {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			fmt.Fprintf(o.Log, "--- round %d/%d, %s: %d targets, DHCP + NBP\n", round, o.Rounds, s, o.N)
			run, err := compareOne(ctx, o, s, round)
			if err != nil {
				run = &NBPRun{Server: s, Error: err.Error()}
				fmt.Fprintf(o.Log, "%s: %v\n", s, err)
			}
			if o.Rounds > 1 {
				run.Round = round
			}
			rep.Runs = append(rep.Runs, run)
		}
	}
	rep.summarise(o.N)
	rep.Seconds = time.Since(t0).Seconds()
	return rep, nil
}

func compareOne(ctx context.Context, o CompareOptions, server string, round int) (*NBPRun, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	t0 := time.Now()
	lb, err := NewLab(ctx)
	if err != nil {
		return nil, err
	}
	defer lb.Close()
	// The servers drop to nobody (dnsmasq) or not: either way the root
	// must be readable by all.
	if err := os.Chmod(lb.Dir, 0o755); err != nil {
		return nil, err
	}
	root := filepath.Join(lb.Dir, "tftp")
	files := filepath.Join(lb.Dir, "files")
	for _, d := range []string{root, files} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := writeNBPs(root, o.NBP); err != nil {
		return nil, err
	}
	ts := compareTargets(o.N, o.UEFI)
	run := &NBPRun{Server: server}
	var proc *lab.Proc
	metricsURL := ""
	switch server {
	case ServerBootd:
		cfgPath, err := writeProxyConfig(lb.Dir, root, files, ts)
		if err != nil {
			return nil, err
		}
		argv := []string{filepath.Join(o.Bin, "osim-bootd"), "serve", "--config", cfgPath, "--log-level", "warn"}
		if o.Profile != "" {
			argv = append(argv, "--cpu-profile", fmt.Sprintf("%s.%d", o.Profile, round))
		}
		run.Command = "osim-bootd serve --log-level warn, proxy mode, " + strconv.Itoa(o.N) + " targets (action boot) in its config, TFTP and DHCP at their defaults"
		if proc, err = lb.Start("osim-bootd", argv...); err != nil {
			return nil, err
		}
		metricsURL = "http://127.0.0.1:9169/metrics"
		if err := lb.WaitHTTP(ctx, proc, metricsURL); err != nil {
			return nil, err
		}
	case ServerDnsmasq, ServerDnsmasqMax:
		if _, err := os.Stat(DnsmasqBinary); err != nil {
			return nil, fmt.Errorf("mass: %s missing (apt-get install dnsmasq-base)", DnsmasqBinary)
		}
		argv := dnsmasqArgs(root, server == ServerDnsmasqMax, o.N)
		run.Command = strings.Join(argv, " ")
		if proc, err = lb.Start(server, argv...); err != nil {
			return nil, err
		}
		if err := waitDnsmasq(ctx, proc); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("mass: unknown server %q (want %s, %s or %s)", server, ServerBootd, ServerDnsmasq, ServerDnsmasqMax)
	}

	cpu0, _ := proc.CPU()
	self0 := selfCPU()
	busy0, total0 := machineCPU()
	udp0 := lb.serverUDP()
	shared, err := pxeclient.OpenSharedDHCP("vc", lb.ClientDo)
	if err != nil {
		return nil, err
	}
	defer shared.Close()
	bootStart := time.Now()
	runTargets(ctx, Options{Spread: o.Spread, Progress: o.Progress, TTY: o.TTY}, ts, func(t *target) pxeclient.Config {
		// proxyDHCP: the site's DHCP server gave each target its address
		// (here: target i has 10.78.16.1+i, local in the client namespace).
		return pxeclient.Config{Interface: "vc", MAC: t.mac, Firmware: t.fw, Do: lb.ClientDo,
			Shared: shared, ClientIP: clientIP(t.i)}
	})
	run.BootSeconds = time.Since(bootStart).Seconds()
	cpu1, _ := proc.CPU()
	self1 := selfCPU()
	busy1, total1 := machineCPU()
	if total1 > total0 {
		run.MachineBusy = float64(busy1-busy0) / float64(total1-total0)
	}
	run.ClientCPUSeconds = (self1 - self0).Seconds()
	run.ServerUDP = lb.serverUDP().Minus(udp0)
	run.Usage = ServerUsage{Name: server, CPUSeconds: (cpu1 - cpu0).Seconds()}
	if hwm, err := procstat.HWM(proc.PID); err == nil {
		run.Usage.PeakRSSMiB = float64(hwm) / (1 << 20)
	}
	if proc.Exited() {
		run.Notes = append(run.Notes, fmt.Sprintf("%s exited during the run: %s", server, proc.Tail()))
	}
	run.fill(ts, shared)
	if run.ServerUDP.RcvbufErrors > 0 {
		run.Notes = append(run.Notes, fmt.Sprintf("the server namespace's kernel dropped %d UDP datagrams on full receive buffers (RcvbufErrors)", run.ServerUDP.RcvbufErrors))
	}
	if metricsURL != "" {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer scancel()
		sm, err := promtext.Get(sctx, lb.HTTP(), metricsURL)
		if err != nil {
			run.Notes = append(run.Notes, err.Error())
			run.Mismatches++
		} else {
			r := &Report{}
			r.checkWith(sm, shared, countClients(ts), false)
			run.Counters, run.Mismatches = r.Counters, r.Mismatches
			run.Notes = append(run.Notes, r.Notes...)
		}
	}
	if b, _ := os.ReadFile(proc.Log); strings.Contains(string(b), "restricting maximum simultaneous TFTP transfers") {
		run.Notes = append(run.Notes, "dnsmasq lowered --tftp-max to its file descriptor limit: "+proc.Tail())
	}
	run.TotalSeconds = time.Since(t0).Seconds()
	return run, nil
}

// dnsmasqArgs runs dnsmasq as proxyDHCP (PXE 2.1 §2.2: no addresses, the
// site's DHCP gives them) and TFTP on the server end of the veth; raiseMax
// lifts --tftp-max (default 50) to the targets plus headroom.
func dnsmasqArgs(root string, raiseMax bool, n int) []string {
	args := []string{DnsmasqBinary,
		"--no-daemon",           // foreground, logs to stderr
		"--conf-file=/dev/null", // nothing from /etc/dnsmasq.conf
		"--pid-file=",           // none
		"--port=0",              // no DNS
		"--interface=vs", "--bind-interfaces",
		"--dhcp-range=10.78.0.0,proxy,255.255.0.0",
		"--pxe-service=x86PC,osim-bench,undionly.kpxe",
		"--pxe-service=X86-64_EFI,osim-bench,snponly.efi",
		"--enable-tftp", "--tftp-root=" + root,
		"--quiet-dhcp", "--quiet-tftp", // as osim-bootd at warn: no line per request
	}
	if raiseMax {
		args = append(args, "--tftp-max="+strconv.Itoa(n+100))
	}
	return args
}

// waitDnsmasq waits for dnsmasq's TFTP line in its log (it has no health
// endpoint; it binds every socket before logging it).
func waitDnsmasq(ctx context.Context, p *lab.Proc) error {
	if err := p.WaitLog(ctx, 10*time.Second, "TFTP root is"); err != nil {
		return fmt.Errorf("mass: dnsmasq not ready: %w", err)
	}
	return nil
}

// writeProxyConfig is osim-bootd's standalone proxy-mode config: every
// target known (action boot, with an order and a token), the NBPs by arch.
func writeProxyConfig(dir, root, files string, ts []*target) (string, error) {
	cfg := bootd.Config{
		Address:       serverAddr,
		MetricsListen: "127.0.0.1:9169",
		DHCP:          bootd.DHCPSection{Mode: "proxy"},
		TFTP:          bootd.TFTPSection{Root: root},
		HTTP:          bootd.HTTPSection{Listen: serverAddr + ":8080", Files: files},
		Boot:          bootd.BootSection{BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"}, Unknown: "ignore"},
		Images:        map[string]bootd.Image{"bench": {Kernel: "vmlinuz", Initrds: []string{"initrd.img"}, Cmdline: "console=ttyS0"}},
	}
	for _, t := range ts {
		cfg.Targets = append(cfg.Targets, bootd.Target{MAC: t.mac.String(), Image: "bench",
			Order: fmt.Sprintf("o-%04d", t.i), Token: fmt.Sprintf("t-%04d", t.i)})
	}
	p := filepath.Join(dir, "bootd-proxy.yaml")
	return p, cfg.WriteFile(p)
}

var dhcpNames = map[uint8]string{1: "discover", 2: "offer", 3: "request", 5: "ack", 6: "nak"}

// fill computes one server's figures from its targets.
func (r *NBPRun) fill(ts []*target, shared *pxeclient.SharedDHCP) {
	var times []float64
	phases := map[string][]float64{}
	var tw window
	var tftpBytes int64
	r.ByPhase = map[string]int{}
	r.times = make([]float64, len(ts))
	for i, t := range ts {
		r.times[i] = -1
		if t.err != nil {
			r.Failed++
			ph, why := failure(t)
			r.ByPhase[ph]++
			r.Failures = append(r.Failures, Failure{Target: t.mac.String(), Phase: ph, Reason: why})
		} else {
			r.Reached++
			d := t.end.Sub(t.start).Seconds()
			times = append(times, d)
			r.times[i] = d
		}
		if t.res == nil {
			continue
		}
		at := t.start
		for _, p := range t.res.Phases {
			end := at.Add(p.Duration)
			phases[p.Phase] = append(phases[p.Phase], p.Duration.Seconds())
			if p.Phase == pxeclient.PhaseTFTP || p.Phase == pxeclient.PhaseTsize {
				tw.add(at, end)
			}
			at = end
		}
		for _, f := range t.res.Files {
			tftpBytes += f.Size
		}
	}
	r.TimeToNBP = dist(times)
	// Failures sort last: p99 falls on one when more than 1% failed.
	r.P99Never = int(0.99*float64(len(ts))+0.5) > r.Reached
	r.Phases = map[string]Dist{}
	for k, v := range phases {
		r.Phases[k] = dist(v)
	}
	if tw.secs() > 0 {
		r.TFTPMBps = float64(tftpBytes) / 1e6 / tw.secs()
	}
	r.DHCPSent, r.DHCPReceived = map[string]int64{}, map[string]int64{}
	for t, name := range dhcpNames {
		if n := shared.Sent(t); n > 0 {
			r.DHCPSent[name] = n
		}
		if n := shared.Received(t); n > 0 {
			r.DHCPReceived[name] = n
		}
	}
}

// ratios of each other server's run to osim-bootd's among runs.
func ratios(runs []*NBPRun) (bootd *NBPRun, out []Ratio) {
	for _, r := range runs {
		if r.Server == ServerBootd && r.Error == "" {
			bootd = r
		}
	}
	if bootd == nil || bootd.Reached == 0 {
		return bootd, nil
	}
	for _, r := range runs {
		if r == bootd || r.Error != "" || r.Reached == 0 {
			continue
		}
		out = append(out, Ratio{Round: r.Round, Versus: r.Server,
			P50: r.TimeToNBP.P50 / max(bootd.TimeToNBP.P50, 1e-9),
			P99: r.TimeToNBP.P99 / max(bootd.TimeToNBP.P99, 1e-9)})
	}
	return bootd, out
}

// pool merges one server's rounds: counts summed, time-to-NBP over every
// target of every round, CPU and busy share averaged, peak RSS the highest.
func pool(server string, runs []*NBPRun) *NBPRun {
	p := &NBPRun{Server: server, ByPhase: map[string]int{}}
	var times []float64
	n, all := 0, 0
	for _, r := range runs {
		if r.Error != "" {
			p.Error = r.Error
			continue
		}
		n++
		p.Command = r.Command
		p.Reached += r.Reached
		p.Failed += r.Failed
		for k, v := range r.ByPhase {
			p.ByPhase[k] += v
		}
		for _, t := range r.times {
			all++
			if t >= 0 {
				times = append(times, t)
			}
		}
		p.Usage.Name = r.Usage.Name
		p.Usage.CPUSeconds += r.Usage.CPUSeconds
		p.Usage.PeakRSSMiB = max(p.Usage.PeakRSSMiB, r.Usage.PeakRSSMiB)
		p.ClientCPUSeconds += r.ClientCPUSeconds
		p.MachineBusy += r.MachineBusy
		p.ServerUDP.InDatagrams += r.ServerUDP.InDatagrams
		p.ServerUDP.RcvbufErrors += r.ServerUDP.RcvbufErrors
		p.ServerUDP.InErrors += r.ServerUDP.InErrors
		p.Mismatches += r.Mismatches
		p.TFTPMBps += r.TFTPMBps
		p.BootSeconds += r.BootSeconds
		p.TotalSeconds += r.TotalSeconds
	}
	if n == 0 {
		return p
	}
	p.Error = ""
	f := float64(n)
	p.Usage.CPUSeconds /= f
	p.ClientCPUSeconds /= f
	p.MachineBusy /= f
	p.TFTPMBps /= f
	p.BootSeconds /= f
	p.TotalSeconds /= f
	p.TimeToNBP = dist(times)
	p.P99Never = int(0.99*float64(all)+0.5) > p.Reached
	return p
}

// summarise pools the rounds and computes the ratios, the verdict and the
// per-target table.
func (c *CompareReport) summarise(n int) {
	if c.Rounds <= 1 {
		c.Pooled = c.Runs
	} else {
		var order []string
		by := map[string][]*NBPRun{}
		for _, r := range c.Runs {
			if by[r.Server] == nil {
				order = append(order, r.Server)
			}
			by[r.Server] = append(by[r.Server], r)
		}
		for _, s := range order {
			c.Pooled = append(c.Pooled, pool(s, by[s]))
		}
		for round := 1; round <= c.Rounds; round++ {
			var rs []*NBPRun
			for _, r := range c.Runs {
				if r.Round == round {
					rs = append(rs, r)
				}
			}
			_, rr := ratios(rs)
			c.RoundRatios = append(c.RoundRatios, rr...)
		}
	}
	bootd, rs := ratios(c.Pooled)
	c.Ratios = rs
	var vsMax *Ratio
	for i := range c.Ratios {
		if c.Ratios[i].Versus == ServerDnsmasqMax {
			vsMax = &c.Ratios[i]
		}
	}
	switch {
	case bootd == nil:
		c.Verdict = "not measured: osim-bootd did not run"
	case vsMax == nil:
		c.Verdict = "not measured: dnsmasq with --tftp-max raised did not run or reached no NBP"
	default:
		c.Met = vsMax.P99 >= 3 && bootd.Failed == 0 && bootd.Error == ""
		verdict := "not met"
		if c.Met {
			verdict = "met"
		}
		c.Verdict = fmt.Sprintf("%s: p99 time-to-NBP %.2fx shorter than dnsmasq --tftp-max (target ≥ 3x), osim-bootd failures %d (target 0)",
			verdict, vsMax.P99, bootd.Failed)
	}
	for i := range n {
		t := TargetNBP{MAC: macOf(i).String()}
		for _, r := range c.Runs {
			v := -1.0
			if i < len(r.times) {
				v = r.times[i]
			}
			t.Seconds = append(t.Seconds, v)
		}
		c.PerMAC = append(c.PerMAC, t)
	}
	ts := compareTargets(n, c.UEFI)
	for i := range c.PerMAC {
		c.PerMAC[i].Firmware = ts[i].fw.Name
	}
}

// selfCPU is this process's own user + system time (its threads, not its
// children: the servers are children).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is the busy and total jiffies of all CPUs so far.
func machineCPU() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest times are already in user
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}
