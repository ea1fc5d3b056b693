// osim-xdpbench measures the XDP fast path (issue 5), as root:
//
//  1. ns per packet per class through BPF_PROG_TEST_RUN (Program.Benchmark);
//  2. a DHCP storm: random-MAC PXE DISCOVERs flooded over a veth (AF_PACKET,
//     as fast as one core sends) while real PXE clients (internal/pxeclient)
//     boot from the other side, served by the real `osim-bootd serve`
//     (standalone, the clients as targets): its CPU seconds (from /proc)
//     and the clients' offer latency, once without an xdp section (the
//     userspace path alone), once with `xdp: {}` (the Go guard only), once
//     with `xdp: {interface: ...}` (the XDP program attached).
//
// `make bench-xdp` runs it; the figures go into bench/RESULTS.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"osim/bench/internal/procstat"
	xdpbench "osim/bench/xdp"
	"osim/dataplane/xdp"
	"osim/internal/pxeclient"
)

func main() {
	bootd := flag.String("bootd", "bin/osim-bootd", "the osim-bootd binary the storm runs")
	clients := flag.Int("clients", 20, "real clients (MACs on the allow list), booted round robin")
	window := flag.Duration("window", 10*time.Second, "how long each storm lasts")
	repeat := flag.Int("repeat", 1_000_000, "runs per Program.Benchmark")
	out := flag.String("out", "", "also write the report (markdown) here")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "osim-xdpbench: needs root (BPF, network namespaces)")
		os.Exit(1)
	}
	var rep strings.Builder
	w := io.MultiWriter(os.Stdout, &rep)
	if err := micro(w, *repeat); err != nil {
		fmt.Fprintln(os.Stderr, "osim-xdpbench:", err)
		os.Exit(1)
	}
	bin, err := filepath.Abs(*bootd)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "osim-xdpbench: -bootd:", err)
		os.Exit(1)
	}
	if err := storms(w, bin, *clients, *window); err != nil {
		fmt.Fprintln(os.Stderr, "osim-xdpbench:", err)
		os.Exit(1)
	}
	if *out != "" {
		if err := os.WriteFile(*out, []byte(rep.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "osim-xdpbench:", err)
			os.Exit(1)
		}
	}
}

// clientMAC is the i-th real client.
func clientMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0x00, 0x97, byte(i >> 8), byte(i)}
}

// --- 1. ns per packet ---

func micro(w io.Writer, repeat int) error {
	known := clientMAC(0)
	dhcpFrame := func(dport uint16, opts ...[]byte) []byte {
		f := xdpbench.Discover(known)
		f = f[:14+20+8+240]
		for _, o := range opts {
			f = append(f, o...)
		}
		f = append(f, 255)
		return fixLengths(f, dport)
	}
	opt := func(code byte, v string) []byte { return append([]byte{code, byte(len(v))}, v...) }
	var twenty [][]byte
	twenty = append(twenty, opt(53, "\x01"))
	for i := range 19 {
		twenty = append(twenty, opt(byte(100+i), "abcdef"))
	}
	long := dhcpFrame(67, append(twenty, opt(60, "PXEClient:Arch:00007:UNDI:003000"))...)
	frames := []struct {
		name string
		f    []byte
	}{
		{"PXE DISCOVER, option 60 after 20 options", long},
		{"PXE DISCOVER as EDK2 sends it", xdpbench.Discover(known)},
		{"iPXE DISCOVER", dhcpFrame(67, opt(53, "\x01"), opt(60, "PXEClient:Arch:00000:UNDI:002001"), opt(77, "iPXE"))},
		{"UEFI HTTP boot DISCOVER", dhcpFrame(67, opt(53, "\x01"), opt(60, "HTTPClient:Arch:00016:UNDI:003000"))},
		{"other DHCP (no option 60)", dhcpFrame(67, opt(53, "\x01"), opt(12, "host"))},
		{"proxyDHCP REQUEST", dhcpFrame(4011, opt(53, "\x03"), opt(60, "PXEClient:Arch:00007:UNDI:003000"))},
		{"TFTP read request", fixLengths(append(xdpbench.Discover(known)[:42], "\x00\x01snponly.efi\x00octet\x00"...), 69)},
		{"TFTP ACK to a transfer port", fixLengths(append(xdpbench.Discover(known)[:42], 0, 4, 0, 1), 50050)},
		{"other (IPv6)", func() []byte { f := xdpbench.Discover(known); f[12], f[13] = 0x86, 0xdd; return f }()},
	}
	type variant struct {
		name   string
		cfg    func(*xdp.Config)
		policy bool
	}
	variants := []variant{
		{"classify + count (no policy, no limits)", func(c *xdp.Config) { c.Unknown, c.Rate = xdp.UnknownPass, 0 }, false},
		{"+ policy + token bucket (default config, client allowed)", func(c *xdp.Config) {}, true},
	}
	fmt.Fprintf(w, "### ns per packet (BPF_PROG_TEST_RUN, %d runs each)\n\n", repeat)
	fmt.Fprintf(w, "| packet | class | %s | %s |\n|---|---|---:|---:|\n", variants[0].name, variants[1].name)
	var progs []*xdp.Program
	for _, v := range variants {
		cfg := xdp.DefaultConfig()
		cfg.Ports.TFTPLow, cfg.Ports.TFTPHigh = 50000, 50100
		v.cfg(&cfg)
		p, err := xdp.Load(cfg)
		if err != nil {
			return err
		}
		defer p.Close()
		if v.policy {
			if err := p.SetPolicy([]net.HardwareAddr{known}, nil); err != nil {
				return err
			}
		}
		progs = append(progs, p)
	}
	for _, fr := range frames {
		c, _, _ := xdp.ClassifyFrame(fr.f, xdp.Ports{DHCP: 67, Proxy: 4011, TFTP: 69, TFTPLow: 50000, TFTPHigh: 50100})
		fmt.Fprintf(w, "| %s | %s |", fr.name, c)
		for _, p := range progs {
			d, err := p.Benchmark(fr.f, repeat)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, " %d |", d.Nanoseconds())
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	return nil
}

// fixLengths sets the IPv4 total length, header checksum, UDP length and
// destination port of an untagged frame built on Discover's headers.
func fixLengths(f []byte, dport uint16) []byte {
	ip := f[14:34]
	n := len(f) - 14
	ip[2], ip[3] = byte(n>>8), byte(n)
	ip[10], ip[11] = 0, 0
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	ip[10], ip[11] = byte(^sum>>8), byte(^sum)
	u := f[34:42]
	u[2], u[3] = byte(dport>>8), byte(dport)
	u[4], u[5] = byte((n-20)>>8), byte(n-20)
	return f
}

// --- 2. the storm ---

type stormResult struct {
	path          string
	mode          string
	floodCPU      float64 // osim-bootd's CPU seconds during the flood-only window
	cpu           float64 // osim-bootd's CPU seconds during the window with real clients
	sent          uint64
	boots, served int
	p50, p99, max time.Duration
}

// The storm's three osim-bootd configurations.
var paths = []struct{ path, name string }{
	{"none", "osim-bootd, no `xdp:` section (userspace path alone)"},
	{"guard", "osim-bootd, `xdp: {}` (Go guard only, no program)"},
	{"xdp", "osim-bootd, `xdp: {interface: <veth>}` (XDP attached, %s)"},
}

func storms(w io.Writer, bootd string, clients int, window time.Duration) error {
	var res []stormResult
	for _, p := range paths {
		r, err := storm(bootd, p.path, clients, window)
		if err != nil {
			return fmt.Errorf("storm with %s: %w", p.path, err)
		}
		res = append(res, r)
	}
	fmt.Fprintf(w, "### DHCP storm: random-MAC PXE DISCOVERs over veth; %s of flood alone, then %s of flood while real clients (%d MACs) boot\n\n", window, window, clients)
	fmt.Fprintln(w, "| server | flood frames/s | osim-bootd CPU s, flood alone | vs userspace alone | osim-bootd CPU s, flood + boots | vs userspace alone | real boots | served | offer p50 | offer p99 | offer max |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	base, base2 := res[0].floodCPU, res[0].cpu
	for i, r := range res {
		name := paths[i].name
		if strings.Contains(name, "%s") {
			name = fmt.Sprintf(name, r.mode)
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.0f%% | %.2f | %.0f%% | %d | %d | %s | %s | %s |\n", name, float64(r.sent)/window.Seconds(), r.floodCPU,
			100*r.floodCPU/base, r.cpu, 100*r.cpu/base2, r.boots, r.served, ms(r.p50), ms(r.p99), ms(r.max))
	}
	fmt.Fprintln(w)
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// bootdConfig writes osim-bootd's standalone config into dir: the real
// clients as targets booting an image (so they are on the allow list),
// unknown machines ignored, and the xdp section of path.
func bootdConfig(dir, path string, lab *xdpbench.Lab, clients int) (string, error) {
	for _, d := range []string{"tftp", "files"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tftp", "snponly.efi"), make([]byte, 16<<10), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "files", "vmlinuz"), make([]byte, 1<<10), 0o644); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "address: %s\ndhcp: {mode: proxy}\ntftp: {root: %s}\nhttp: {files: %s}\n", lab.ServerIP,
		filepath.Join(dir, "tftp"), filepath.Join(dir, "files"))
	b.WriteString("boot:\n  arches: [bios, efi-x64]\n  boot_files: {bios: undionly.kpxe, efi-x64: snponly.efi}\n  unknown: ignore\n")
	b.WriteString("images:\n  bench: {kernel: vmlinuz, cmdline: console=ttyS0}\ntargets:\n")
	for i := range clients {
		fmt.Fprintf(&b, "  - {mac: %s, action: boot, image: bench, order: o-%d, token: t%d}\n", clientMAC(i), i, i)
	}
	switch path {
	case "guard":
		b.WriteString("xdp: {}\n")
	case "xdp":
		fmt.Fprintf(&b, "xdp: {interface: %s}\n", lab.ServerIf)
	}
	f := filepath.Join(dir, "serve.yaml")
	return f, os.WriteFile(f, []byte(b.String()), 0o644)
}

// startBootd runs `osim-bootd serve` in the lab's server namespace and
// waits until DHCP and TFTP serve. It returns the process, its mode of
// XDP (from the log), and a function that stops it.
func startBootd(bootd, config string, lab *xdpbench.Lab) (pid int, mode string, stop func(), err error) {
	cmd := exec.Command("ip", "netns", "exec", lab.Server, bootd, "serve", "--config", config, "--log-level", "info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return 0, "", nil, err
	}
	stop = func() {
		cmd.Process.Signal(unix.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	// `ip netns exec` execs the command: the pid is osim-bootd's.
	pid = cmd.Process.Pid
	ready := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stderr)
		dhcpUp, tftpUp, mode := false, false, "userspace path alone"
		for lines.Scan() {
			l := lines.Text()
			switch {
			case strings.Contains(l, `msg="boot server serving"`):
				dhcpUp = true
			case strings.Contains(l, `msg="tftp serving"`):
				tftpUp = true
			case strings.Contains(l, `msg="xdp guard"`):
				if i := strings.Index(l, " mode="); i >= 0 {
					mode = strings.Fields(l[i+6:])[0]
				}
			case strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR"):
				if !strings.Contains(l, "tftp read") {
					fmt.Fprintln(os.Stderr, "osim-bootd:", l)
				}
			}
			if dhcpUp && tftpUp && mode != "" {
				ready <- mode
				mode = ""
			}
		}
		close(ready)
	}()
	select {
	case m, ok := <-ready:
		if !ok {
			stop()
			return 0, "", nil, errors.New("osim-bootd exited before serving")
		}
		mode = m
	case <-time.After(30 * time.Second):
		stop()
		return 0, "", nil, errors.New("osim-bootd did not serve within 30 s")
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || filepath.Base(exe) != filepath.Base(bootd) {
		stop()
		return 0, "", nil, fmt.Errorf("pid %d is %q, not osim-bootd (%v)", pid, exe, err)
	}
	return pid, mode, stop, nil
}

func storm(bootd, path string, clients int, window time.Duration) (stormResult, error) {
	r := stormResult{path: path}
	lab, err := xdpbench.NewLab(strconv.Itoa(os.Getpid()))
	if err != nil {
		return r, err
	}
	defer lab.Close()
	dir, err := os.MkdirTemp("", "osim-xdpbench")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	config, err := bootdConfig(dir, path, lab, clients)
	if err != nil {
		return r, err
	}
	pid, mode, stop, err := startBootd(bootd, config, lab)
	if err != nil {
		return r, err
	}
	defer stop()
	r.mode = mode
	if path == "xdp" && mode != xdp.ModeDriver && mode != xdp.ModeGeneric {
		return r, fmt.Errorf("XDP did not attach (mode %q)", mode)
	}
	cpu := func() float64 {
		c, err := procstat.CPU(pid) // osim-bootd starts no children: its own threads
		if err != nil {
			fmt.Fprintln(os.Stderr, "osim-xdpbench:", err)
		}
		return c.Seconds()
	}

	ns, err := pxeclient.OpenNetns(lab.ClientPath())
	if err != nil {
		return r, err
	}
	defer ns.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sent atomic.Uint64
	flooded := make(chan error, 1)
	go func() { flooded <- xdpbench.Flood(ctx, lab.ClientIf, ns.Do, &sent) }()
	time.Sleep(500 * time.Millisecond)
	// Window 1: the flood alone.
	f0 := cpu()
	time.Sleep(window)
	r.floodCPU = cpu() - f0
	// Window 2: the flood and the real clients.
	cpu0 := cpu()
	sent0 := sent.Load()
	fw := pxeclient.EDK2x64
	fw.Next = nil
	var lat []time.Duration
	deadline := time.Now().Add(window)
	for i := 0; time.Now().Before(deadline); i++ {
		bctx, bcancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := pxeclient.Boot(bctx, pxeclient.Config{Interface: lab.ClientIf, MAC: clientMAC(i % clients), Firmware: fw,
			Schedule:    []time.Duration{time.Second, 2 * time.Second, 4 * time.Second},
			OfferWindow: time.Millisecond, TFTPTimeout: time.Second, Do: ns.Do})
		bcancel()
		r.boots++
		if err != nil {
			var pe *pxeclient.PhaseError
			if !errors.As(err, &pe) || pe.Phase == pxeclient.PhaseDiscover {
				continue // not served
			}
		}
		for _, p := range res.Phases {
			if p.Phase == pxeclient.PhaseDiscover {
				lat = append(lat, p.Duration-time.Millisecond) // minus the offer window
				r.served++
				break
			}
		}
	}
	r.cpu = cpu() - cpu0
	r.sent = sent.Load() - sent0
	cancel()
	if err := <-flooded; err != nil {
		return r, err
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[(len(lat)*99)/100], lat[len(lat)-1]
	}
	return r, nil
}
