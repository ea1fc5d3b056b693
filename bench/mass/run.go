package mass

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"osim/bench/internal/lab"
	"osim/bench/internal/procstat"
	"osim/controlplane/api"
	"osim/dataplane/dhcp"
	"osim/internal/bootd"
	"osim/internal/promtext"
	"osim/internal/pxeclient"
)

// Options is one osim-bench run.
type Options struct {
	N      int           // targets
	UEFI   float64       // share of UEFI targets (EDK2 → iPXE snponly); the rest BIOS (iPXE ROM)
	Spread time.Duration // power-on spread: target i starts at i*Spread/N
	NBP    int           // bytes of each NBP served over TFTP
	Kernel int           // bytes of the kernel over HTTP
	Initrd int           // bytes of the initrd over HTTP
	Steps  int           // installer progress reports between the first and the last
	// ImageSize, when set, is the image mode: the order names a
	// disk-format os image of one random disk file of this many bytes and
	// a boot image (the NBPs, kernel and initrd), and the targets play the
	// osim installer's install mode (plan, stream, verify) into io.Discard.
	ImageSize int64
	Timeout   time.Duration // the whole run, setup included
	Bin       string        // folder holding osim-manager and osim-bootd
	Progress  io.Writer     // progress line (rewritten in place when a terminal); nil: none
	TTY       bool
	Log       io.Writer // setup messages; nil: none
}

func (o *Options) defaults() {
	if o.N <= 0 {
		o.N = 200
	}
	if o.NBP <= 0 {
		o.NBP = 256 << 10
	}
	if o.Kernel <= 0 {
		o.Kernel = 6 << 20
	}
	if o.Initrd <= 0 {
		o.Initrd = 2 << 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// target is one simulated machine.
type target struct {
	i   int
	mac net.HardwareAddr
	fw  pxeclient.Firmware
	// filled by the run
	start, end time.Time
	res        *pxeclient.Result
	err        error
}

func macOf(i int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0x00, 0xbe, byte(i >> 8), byte(i)}
}

func (t *target) arch() string {
	if t.fw.Arch == 7 {
		return "efi-x64"
	}
	return "bios"
}

func makeTargets(n int, uefi float64) []*target {
	ts := make([]*target, n)
	acc := 0.0
	for i := range ts {
		ts[i] = &target{i: i, mac: macOf(i), fw: pxeclient.IPXEBIOS}
		acc += uefi
		if acc >= 1 {
			acc--
			ts[i].fw = pxeclient.EDK2x64
		}
	}
	return ts
}

// Run is a mass reimage against a manager and osim-bootd (full DHCP) it
// starts in a fresh lab.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	t0 := time.Now()
	ctx, lab, done, err := openLab(ctx, o)
	if err != nil {
		return nil, err
	}
	defer done()
	rep := &Report{Mode: "full", Targets: o.N, UEFI: o.UEFI, Spread: o.Spread.Seconds(),
		NBPBytes: o.NBP, KernelBytes: o.Kernel, InitrdBytes: o.Initrd, Started: t0.UTC().Format(time.RFC3339)}

	w, err := startServers(ctx, o, lab, nil)
	if err != nil {
		return nil, err
	}
	c, mgr, bs, metricsURL, img, bootImg := w.c, w.mgr, w.bs, w.metricsURL, w.img, w.bootImg
	if o.ImageSize > 0 {
		rep.Mode += "+image"
	}
	ts := makeTargets(o.N, o.UEFI)
	if err := registerTargets(ctx, c, ts, nil); err != nil {
		return nil, err
	}
	orders, err := c.CreateOrders(ctx, api.OrderRequest{Selector: "bench=mass", Image: img.ID, BootImage: bootImg.ID, All: true})
	if err != nil {
		return nil, fmt.Errorf("mass: mass reimage order: %w", err)
	}
	if len(orders) != o.N {
		return nil, fmt.Errorf("mass: %d orders created for %d targets", len(orders), o.N)
	}
	fmt.Fprintf(o.Log, "%d targets, %d orders; waiting for the boot server to stage them\n", o.N, len(orders))
	tStage := time.Now()
	if err := waitOrders(ctx, c, func(n map[api.OrderState]int) bool { return n[api.OrderPending] == 0 }); err != nil {
		return nil, fmt.Errorf("mass: staging: %w", err)
	}
	// The boot server learns the orders through its sync; give its copy a
	// moment to be applied after the manager marks them staged.
	time.Sleep(500 * time.Millisecond)
	rep.SetupSeconds = time.Since(t0).Seconds()
	rep.StageSeconds = time.Since(tStage).Seconds()

	cpu0, _ := bs.CPU()
	udp0 := lab.serverUDP()
	shared, err := pxeclient.OpenSharedDHCP("vc", lab.ClientDo)
	if err != nil {
		return nil, err
	}
	defer shared.Close()
	var before promtext.Samples
	if o.ImageSize > 0 {
		// Egress counts from here: staging does not go through this server's HTTP.
		if before, err = promtext.Get(ctx, lab.HTTP(), metricsURL); err != nil {
			return nil, err
		}
	}
	bootStart := time.Now()
	runTargets(ctx, o, ts, func(t *target) pxeclient.Config {
		return pxeclient.Config{Interface: "vc", MAC: t.mac, Firmware: t.fw, Do: lab.ClientDo,
			Shared: shared, BindLease: true,
			Install: &pxeclient.InstallConfig{Steps: o.Steps, Delay: 100 * time.Millisecond,
				Image: &pxeclient.ImageConfig{DiskSize: 4 * o.ImageSize}}}
	})
	rep.BootSeconds = time.Since(bootStart).Seconds()
	// The orders reach done once the boot server's events are uploaded.
	var states map[api.OrderState]int
	octx, ocancel := context.WithTimeout(ctx, 30*time.Second)
	defer ocancel()
	ok := 0
	for _, t := range ts {
		if t.err == nil {
			ok++
		}
	}
	// Wait for every order whose target finished (the others never move).
	werr := waitOrders(octx, c, func(n map[api.OrderState]int) bool {
		states = n
		return n[api.OrderDone]+n[api.OrderFailed]+n[api.OrderCancelled] >= ok
	})
	rep.OrdersSeconds = time.Since(bootStart).Seconds()
	rep.Orders = map[string]int{}
	for k, v := range states {
		rep.Orders[string(k)] = v
	}
	if werr != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("orders did not all end: %v", werr))
	}
	cpu1, _ := bs.CPU()
	rep.ServerUDP = lab.serverUDP().Minus(udp0)
	if rep.ServerUDP.RcvbufErrors > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the server namespace's kernel dropped %d UDP datagrams on full receive buffers (UDP RcvbufErrors): requests the boot server never saw",
			rep.ServerUDP.RcvbufErrors))
	}
	rep.Server = ServerUsage{Name: "osim-bootd", CPUSeconds: (cpu1 - cpu0).Seconds()}
	if hwm, err := procstat.HWM(bs.PID); err == nil {
		rep.Server.PeakRSSMiB = float64(hwm) / (1 << 20)
	}
	if mc, err := mgr.CPU(); err == nil {
		rep.Manager.CPUSeconds = mc.Seconds()
	}
	if hwm, err := procstat.HWM(mgr.PID); err == nil {
		rep.Manager.Name, rep.Manager.PeakRSSMiB = "osim-manager", float64(hwm)/(1<<20)
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	sm, err := promtext.Get(sctx, lab.HTTP(), metricsURL)
	if err != nil {
		rep.Notes = append(rep.Notes, err.Error())
		rep.Mismatches++
	}
	rep.fill(ts, bootStart, shared)
	if o.ImageSize > 0 && err == nil {
		rep.Image = imageFigures(ts, o.ImageSize, before, sm, rep.BootSeconds)
		if n := rep.Image.Installed["done"]; n != rep.Done {
			rep.Notes = append(rep.Notes, fmt.Sprintf("image mode: %d installers reported done, %d targets ended without error", n, rep.Done))
		}
	}
	rep.checkWith(sm, shared, countClients(ts), true)
	if lost := float64(shared.Sent(1)+shared.Sent(3)) - sm.Sum("osim_dhcp_packets_total", "type", "discover") - sm.Sum("osim_dhcp_packets_total", "type", "request"); lost != 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("DHCP requests sent but never counted by the boot server: %.0f; the server namespace's UDP RcvbufErrors: %d",
			lost, rep.ServerUDP.RcvbufErrors))
	}
	rep.TotalSeconds = time.Since(t0).Seconds()
	return rep, nil
}

// openLab checks o's size against the pool and builds a fresh lab under
// o.Timeout; done closes the lab and ends the timeout.
func openLab(ctx context.Context, o Options) (context.Context, *Lab, func(), error) {
	if o.N > MaxTargets {
		return ctx, nil, nil, fmt.Errorf("mass: at most %d targets (the pool)", MaxTargets)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	lab, err := NewLab(ctx)
	if err != nil {
		cancel()
		return ctx, nil, nil, err
	}
	return ctx, lab, func() { lab.Close(); cancel() }, nil
}

// servers is a lab's manager and osim-bootd, an admin client, and the
// images registered for the run.
type servers struct {
	c            *api.Client
	mgr, bs      *lab.Proc
	metricsURL   string // osim-bootd's, inside the server namespace
	img, bootImg api.Image
}

// startServers starts the manager and osim-bootd (full DHCP, manager
// mode; tune, when set, adjusts its configuration) in the lab's server
// namespace and registers the run's images.
func startServers(ctx context.Context, o Options, l *Lab, tune func(*bootd.Config)) (w servers, err error) {
	// The manager, an admin token for us and a join token for the boot server.
	mgrDir, bsDir := filepath.Join(l.Dir, "manager"), filepath.Join(l.Dir, "bootd")
	tftpRoot := filepath.Join(bsDir, "tftp")
	if err := os.MkdirAll(tftpRoot, 0o755); err != nil {
		return w, err
	}
	mgrBin, bsBin := filepath.Join(o.Bin, "osim-manager"), filepath.Join(o.Bin, "osim-bootd")
	admin, err := exec.CommandContext(ctx, mgrBin, "token", "create", "--role", "admin", "--name", "bench-admin", "--data-dir", mgrDir).Output()
	if err != nil {
		return w, fmt.Errorf("mass: admin token: %w", err)
	}
	w.mgr, err = l.Start("osim-manager", mgrBin, "serve", "--listen", "127.0.0.1:8080", "--data-dir", mgrDir,
		"--heartbeat-interval", "2s", "--log-level", "warn")
	if err != nil {
		return w, err
	}
	if err := l.WaitHTTP(ctx, w.mgr, "http://127.0.0.1:8080/healthz"); err != nil {
		return w, err
	}
	c := api.NewClient("http://127.0.0.1:8080", strings.TrimSpace(string(admin)), false)
	c.HTTP = l.HTTP()
	w.c = c
	// A join token is bound to a site (and here to the one boot server).
	join, err := c.CreateToken(ctx, api.TokenRequest{Role: api.RoleJoin, Site: "bench", Name: "bench-bootd"})
	if err != nil {
		return w, fmt.Errorf("mass: join token: %w", err)
	}
	joinFile := filepath.Join(l.Dir, "join.token")
	if err := os.WriteFile(joinFile, []byte(join.Secret), 0o600); err != nil {
		return w, err
	}
	if err := writeNBPs(tftpRoot, o.NBP); err != nil {
		return w, err
	}
	cfg := bootd.Config{
		Address:       serverAddr,
		MetricsListen: "127.0.0.1:9169",
		DataDir:       filepath.Join(bsDir, "data"),
		DHCP:          bootd.DHCPSection{Mode: "full", Pools: []dhcp.PoolConfig{{Network: "10.78.0.0/16", Start: poolFirst, End: poolLast, LeaseTime: "1h"}}},
		TFTP:          bootd.TFTPSection{Root: tftpRoot},
		HTTP:          bootd.HTTPSection{Listen: serverAddr + ":8080"},
		Boot:          bootd.BootSection{BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"}, Unknown: "ignore"},
		Manager:       &bootd.ManagerSection{URL: "http://127.0.0.1:8080", JoinTokenFile: joinFile, Name: "bench-bootd", Site: "bench"},
	}
	if tune != nil {
		tune(&cfg)
	}
	cfgPath := filepath.Join(l.Dir, "bootd.yaml")
	if err := cfg.WriteFile(cfgPath); err != nil {
		return w, err
	}
	w.bs, err = l.Start("osim-bootd", bsBin, "serve", "--config", cfgPath)
	if err != nil {
		return w, err
	}
	w.metricsURL = "http://127.0.0.1:9169/metrics"
	if err := l.WaitHTTP(ctx, w.bs, w.metricsURL); err != nil {
		return w, err
	}

	rng := rand.NewChaCha8([32]byte{'o', 's', 'i', 'm', 'k'}) // kernel and initrd bytes
	if o.ImageSize > 0 {
		if w.img, w.bootImg, err = registerDiskImages(ctx, c, o); err != nil {
			return w, err
		}
	} else if w.img, err = registerImage(ctx, c, rng, o.Kernel, o.Initrd); err != nil {
		return w, err
	}
	return w, nil
}

func registerImage(ctx context.Context, c *api.Client, rng *rand.ChaCha8, kernelN, initrdN int) (api.Image, error) {
	spec := api.ImageSpec{Name: "bench-installer", Version: "1", Kind: api.KindOS, Arch: "efi-x64",
		Cmdline:  "console=ttyS0 osim.status={{.StatusURL}} osim.token={{.Token}}",
		Defaults: map[string]string{}}
	for _, f := range []struct {
		name, role string
		n          int
	}{{"vmlinuz", api.RoleKernel, kernelN}, {"initrd.img", api.RoleInitrd, initrdN}} {
		b := make([]byte, f.n)
		rng.Read(b)
		sum := sha256.Sum256(b)
		sha := hex.EncodeToString(sum[:])
		if _, err := c.UploadBlob(ctx, sha, int64(len(b)), bytes.NewReader(b), 4<<20); err != nil {
			return api.Image{}, fmt.Errorf("mass: uploading %s: %w", f.name, err)
		}
		spec.Files = append(spec.Files, api.ImageFile{Name: f.name, SHA256: sha, Size: int64(len(b)), Role: f.role})
	}
	img, err := c.CreateImage(ctx, spec)
	if err != nil {
		return img, fmt.Errorf("mass: image: %w", err)
	}
	return img, nil
}

// registerTargets makes a target per simulated machine (label
// bench=mass), with power, when set, as its power spec.
func registerTargets(ctx context.Context, c *api.Client, ts []*target, power *api.PowerSpec) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := atomic.Int64{}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ts) {
					return
				}
				t := ts[i]
				_, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("bench-%04d", i), MACs: []string{t.mac.String()},
					Arch: t.arch(), Site: "bench", Labels: map[string]string{"bench": "mass"}, Power: power})
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("mass: target %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// waitOrders counts the orders by state every 300 ms until done says so.
func waitOrders(ctx context.Context, c *api.Client, done func(map[api.OrderState]int) bool) error {
	for {
		n := map[api.OrderState]int{}
		after := ""
		for {
			page, err := c.ListOrders(ctx, "", "", "bench", after, 1000)
			if err != nil {
				return err
			}
			for _, o := range page.Orders {
				n[o.State]++
			}
			if page.Next == "" {
				break
			}
			after = page.Next
		}
		if done(n) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (orders by state: %v)", ctx.Err(), n)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// runTargets powers the targets on (target i at i*Spread/N) and waits for
// every one to end, showing progress.
func runTargets(ctx context.Context, o Options, ts []*target, cfg func(*target) pxeclient.Config) {
	var wg sync.WaitGroup
	var ended, failed atomic.Int64
	start := time.Now()
	for _, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := start
			if o.Spread > 0 {
				at = start.Add(time.Duration(int64(o.Spread) * int64(t.i) / int64(len(ts))))
			}
			select {
			case <-time.After(time.Until(at)):
			case <-ctx.Done():
				t.err = ctx.Err()
				ended.Add(1)
				failed.Add(1)
				return
			}
			t.start = time.Now()
			t.res, t.err = pxeclient.Boot(ctx, cfg(t))
			t.end = time.Now()
			if t.err != nil {
				failed.Add(1)
			}
			ended.Add(1)
		}()
	}
	stop := make(chan struct{})
	var pw sync.WaitGroup
	if o.Progress != nil {
		pw.Add(1)
		go func() {
			defer pw.Done()
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			last := int64(-1)
			for {
				select {
				case <-stop:
					progressLine(o, len(ts), ended.Load(), failed.Load(), start, true)
					return
				case <-tick.C:
					if e := ended.Load(); o.TTY || e/int64(max(1, len(ts)/10)) != last {
						last = e / int64(max(1, len(ts)/10))
						progressLine(o, len(ts), e, failed.Load(), start, false)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	pw.Wait()
}

func progressLine(o Options, n int, ended, failed int64, start time.Time, final bool) {
	const width = 40
	fill := int(ended) * width / max(1, n)
	bar := strings.Repeat("#", fill) + strings.Repeat(".", width-fill)
	line := fmt.Sprintf("[%s] %d/%d ended, %d failed, %.1fs", bar, ended, n, failed, time.Since(start).Seconds())
	switch {
	case o.TTY && final:
		fmt.Fprintf(o.Progress, "\r%s\n", line)
	case o.TTY:
		fmt.Fprintf(o.Progress, "\r%s", line)
	default:
		fmt.Fprintln(o.Progress, line)
	}
}

// failure sorts a target's error into its phase.
func failure(t *target) (phase, reason string) {
	var pe *pxeclient.PhaseError
	if errors.As(t.err, &pe) {
		return pe.Stage + "/" + pe.Phase, pe.Err.Error()
	}
	return "run", t.err.Error()
}

// writeNBPs writes undionly.kpxe and snponly.efi of size bytes into dir:
// the same random bytes every run (the targets hash them, never run them).
func writeNBPs(dir string, size int) error {
	rng := rand.NewChaCha8([32]byte{'o', 's', 'i', 'm', 'b'})
	for _, f := range []string{"undionly.kpxe", "snponly.efi"} {
		b := make([]byte, size)
		rng.Read(b)
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
