package storm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"osim/bench/internal/lab"
	xdpbench "osim/bench/xdp"
	"osim/dataplane/xdp"
	"osim/internal/bootd"
	"osim/internal/pxeclient"
	"osim/internal/testlab"
)

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
func bootdConfig(dir, path string, pair *testlab.Pair, clients int) (string, error) {
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
	cfg := bootd.Config{
		Address: pair.ServerAddr.Addr().String(),
		DHCP:    bootd.DHCPSection{Mode: "proxy"},
		TFTP:    bootd.TFTPSection{Root: filepath.Join(dir, "tftp")},
		HTTP:    bootd.HTTPSection{Files: filepath.Join(dir, "files")},
		Boot: bootd.BootSection{Arches: []string{"bios", "efi-x64"},
			BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"}, Unknown: "ignore"},
		Images: map[string]bootd.Image{"bench": {Kernel: "vmlinuz", Cmdline: "console=ttyS0"}},
	}
	for i := range clients {
		cfg.Targets = append(cfg.Targets, bootd.Target{MAC: clientMAC(i).String(), Action: "boot", Image: "bench",
			Order: fmt.Sprintf("o-%d", i), Token: fmt.Sprintf("t%d", i)})
	}
	switch path {
	case "guard":
		cfg.XDP = &bootd.XDPSection{}
	case "xdp":
		cfg.XDP = &bootd.XDPSection{Interface: pair.ServerIf}
	}
	f := filepath.Join(dir, "serve.yaml")
	return f, cfg.WriteFile(f)
}

// startBootd runs `osim-bootd serve` in the lab's server namespace, logging
// into dir, and waits until DHCP and TFTP serve. It returns the process and
// its mode of XDP (from the log).
func startBootd(dir, bootd, config string, pair *testlab.Pair) (*lab.Proc, string, error) {
	p, err := lab.Start(lab.Spec{Name: "osim-bootd", Argv: []string{bootd, "serve", "--config", config, "--log-level", "info"},
		Netns: pair.Server, Log: filepath.Join(dir, "bootd.log")})
	if err != nil {
		return nil, "", err
	}
	if err := p.WaitLog(context.Background(), 30*time.Second, `msg="boot server serving"`, `msg="tftp serving"`); err != nil {
		p.Stop()
		return nil, "", err
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID))
	if err != nil || filepath.Base(exe) != filepath.Base(bootd) {
		p.Stop()
		return nil, "", fmt.Errorf("pid %d is %q, not osim-bootd (%v)", p.PID, exe, err)
	}
	mode := "userspace path alone"
	for _, l := range logLines(p.Log) {
		if strings.Contains(l, `msg="xdp guard"`) {
			if i := strings.Index(l, " mode="); i >= 0 {
				mode = strings.Fields(l[i+6:])[0]
			}
		}
	}
	return p, mode, nil
}

// stopBootd stops osim-bootd and passes on its warnings and errors (but
// the flood's refused TFTP reads).
func stopBootd(p *lab.Proc) {
	p.Stop()
	for _, l := range logLines(p.Log) {
		if (strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR")) && !strings.Contains(l, "tftp read") {
			fmt.Fprintln(os.Stderr, "osim-bootd:", l)
		}
	}
}

func logLines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Split(string(b), "\n")
}

func storm(bootd, path string, clients int, window time.Duration) (stormResult, error) {
	r := stormResult{path: path}
	pair, err := newLab()
	if err != nil {
		return r, err
	}
	defer pair.Close()
	dir, err := os.MkdirTemp("", "osim-xdpbench")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	config, err := bootdConfig(dir, path, pair, clients)
	if err != nil {
		return r, err
	}
	bd, mode, err := startBootd(dir, bootd, config, pair)
	if err != nil {
		return r, err
	}
	defer stopBootd(bd)
	r.mode = mode
	if path == "xdp" && mode != xdp.ModeDriver && mode != xdp.ModeGeneric {
		return r, fmt.Errorf("XDP did not attach (mode %q)", mode)
	}
	cpu := func() float64 {
		c, err := bd.CPU() // osim-bootd starts no children: its own threads
		if err != nil {
			fmt.Fprintln(os.Stderr, "osim-xdpbench:", err)
		}
		return c.Seconds()
	}

	ns, err := pxeclient.OpenNetns(pair.ClientPath())
	if err != nil {
		return r, err
	}
	defer ns.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sent atomic.Uint64
	flooded := make(chan error, 1)
	go func() { flooded <- xdpbench.Flood(ctx, pair.ClientIf, ns.Do, &sent) }()
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
		res, err := pxeclient.Boot(bctx, pxeclient.Config{Interface: pair.ClientIf, MAC: clientMAC(i % clients), Firmware: fw,
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
