// osim-xdpbench measures the XDP fast path (issue 5), as root:
//
//  1. ns per packet per class through BPF_PROG_TEST_RUN (Program.Benchmark);
//  2. a DHCP storm: random-MAC PXE DISCOVERs flooded over a veth (AF_PACKET,
//     as fast as one core sends) while real PXE clients (internal/pxeclient)
//     boot from the other side, with the DHCP server in its own process:
//     its CPU seconds and the clients' offer latency, once with the
//     userspace path alone, once with the userspace classifier as guard,
//     once with XDP attached.
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
	"log/slog"
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

	xdpbench "osim/bench/xdp"
	"osim/dataplane/dhcp"
	"osim/dataplane/tftp"
	"osim/dataplane/xdp"
	"osim/internal/pxeclient"
)

func main() {
	serve := flag.String("serve", "", "internal: run the DHCP+TFTP server in this namespace with this path: none, guard or xdp")
	ifname := flag.String("if", "", "internal: the server's interface")
	ip := flag.String("ip", "", "internal: the server's address")
	clients := flag.Int("clients", 20, "real clients (MACs on the allow list), booted round robin")
	window := flag.Duration("window", 10*time.Second, "how long each storm lasts")
	repeat := flag.Int("repeat", 1_000_000, "runs per Program.Benchmark")
	out := flag.String("out", "", "also write the report (markdown) here")
	flag.Parse()
	if *serve != "" {
		if err := runServer(*serve, *ifname, *ip, *clients); err != nil {
			fmt.Fprintln(os.Stderr, "osim-xdpbench server:", err)
			os.Exit(1)
		}
		return
	}
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
	if err := storms(w, *clients, *window); err != nil {
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
	path              string
	mode              string
	floodCPU          float64 // server process CPU seconds during the flood-only window
	cpu               float64 // server process CPU seconds during the window with real clients
	sent              uint64
	boots, served     int
	p50, p99, max     time.Duration
	xdpPass, xdpDrops uint64
}

func storms(w io.Writer, clients int, window time.Duration) error {
	var res []stormResult
	for _, path := range []string{"none", "guard", "xdp"} {
		r, err := storm(path, clients, window)
		if err != nil {
			return fmt.Errorf("storm with %s: %w", path, err)
		}
		res = append(res, r)
	}
	fmt.Fprintf(w, "### DHCP storm: random-MAC PXE DISCOVERs over veth; %s of flood alone, then %s of flood while %d real clients boot\n\n", window, window, clients)
	fmt.Fprintln(w, "| server path | flood frames/s | server CPU s, flood alone | vs userspace alone | server CPU s, flood + boots | real boots | served | offer p50 | offer p99 | offer max |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	base := res[0].floodCPU
	for _, r := range res {
		name := map[string]string{"none": "userspace path alone", "guard": "userspace classifier as guard", "xdp": "XDP attached (" + r.mode + ")"}[r.path]
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.0f%% | %.2f | %d | %d | %s | %s | %s |\n", name, float64(r.sent)/window.Seconds(), r.floodCPU,
			100*r.floodCPU/base, r.cpu, r.boots, r.served, ms(r.p50), ms(r.p99), ms(r.max))
	}
	fmt.Fprintln(w)
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func storm(path string, clients int, window time.Duration) (stormResult, error) {
	r := stormResult{path: path}
	lab, err := xdpbench.NewLab(strconv.Itoa(os.Getpid()))
	if err != nil {
		return r, err
	}
	defer lab.Close()
	self, err := os.Executable()
	if err != nil {
		return r, err
	}
	cmd := exec.Command("ip", "netns", "exec", lab.Server, self, "-serve", path, "-if", lab.ServerIf, "-ip", lab.ServerIP,
		"-clients", strconv.Itoa(clients))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	ask := func(q string) (string, error) {
		if _, err := fmt.Fprintln(stdin, q); err != nil {
			return "", err
		}
		if !lines.Scan() {
			return "", fmt.Errorf("server gone: %v", lines.Err())
		}
		return lines.Text(), nil
	}
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "ready") {
		return r, fmt.Errorf("server did not start: %q", lines.Text())
	}
	r.mode = strings.TrimSpace(strings.TrimPrefix(lines.Text(), "ready"))

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
	f0, err := ask("cpu")
	if err != nil {
		return r, err
	}
	time.Sleep(window)
	f1, err := ask("cpu")
	if err != nil {
		return r, err
	}
	// Window 2: the flood and the real clients.
	cpu0, err := ask("cpu")
	if err != nil {
		return r, err
	}
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
	cpu1, err := ask("cpu")
	if err != nil {
		return r, err
	}
	r.sent = sent.Load() - sent0
	cancel()
	if err := <-flooded; err != nil {
		return r, err
	}
	c0, _ := strconv.ParseFloat(cpu0, 64)
	c1, _ := strconv.ParseFloat(cpu1, 64)
	r.cpu = c1 - c0
	g0, _ := strconv.ParseFloat(f0, 64)
	g1, _ := strconv.ParseFloat(f1, 64)
	r.floodCPU = g1 - g0
	if len(lat) > 0 {
		slices.Sort(lat)
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[(len(lat)*99)/100], lat[len(lat)-1]
	}
	return r, nil
}

// runServer is the boot server's DHCP and TFTP, as osim-bootd runs them,
// in its own process so that its CPU time is its own. It answers "cpu"
// lines on stdin with its CPU seconds so far.
func runServer(path, ifname, ip string, clients int) error {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var allow []net.HardwareAddr
	var machines []dhcp.FileMachine
	for i := range clients {
		allow = append(allow, clientMAC(i))
		machines = append(machines, dhcp.FileMachine{MAC: clientMAC(i).String(), Action: "boot"})
	}
	backend, err := dhcp.NewFileBackend(dhcp.FileConfig{HTTPBase: "http://" + ip + ":8080",
		BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"}, Unknown: "ignore", Machines: machines})
	if err != nil {
		return err
	}
	scfg := dhcp.ServerConfig{Workers: 2}
	mode := "userspace"
	switch path {
	case "guard":
		p, err := xdp.Userspace(xdp.DefaultConfig(), nil)
		if err != nil {
			return err
		}
		p.SetPolicy(allow, nil)
		scfg.Guard = p
	case "xdp":
		p, err := xdp.Attach(ifname, xdp.DefaultConfig(), nil)
		if err != nil {
			return err
		}
		defer p.Close()
		if p.Mode() == xdp.ModeUserspace {
			return errors.New("XDP did not attach")
		}
		p.SetPolicy(allow, nil)
		scfg.Guard = p
		mode = p.Mode()
	}
	srv, err := dhcp.NewServer(&dhcp.Handler{Backend: backend, ServerIP: net.ParseIP(ip)}, scfg)
	if err != nil {
		return err
	}
	go srv.Serve(ctx)
	dir, err := os.MkdirTemp("", "osim-xdpbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "snponly.efi"), make([]byte, 16<<10), 0o644); err != nil {
		return err
	}
	res, err := tftp.NewFolderResolver(dir)
	if err != nil {
		return err
	}
	defer res.Close()
	tsrv, err := tftp.NewServer(tftp.Config{}, res)
	if err != nil {
		return err
	}
	tconn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip), Port: 69})
	if err != nil {
		return err
	}
	defer tconn.Close()
	go tsrv.Serve(ctx, tconn)
	fmt.Println("ready", mode)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var ru unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru)
		fmt.Printf("%.3f\n", time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds())
	}
	return nil
}
