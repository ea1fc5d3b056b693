// Command osim-demo drives the `make run` demo against a running manager:
// it registers a demo boot image (the installer, the site's default), a
// disk-format OS image and one target per client interface, orders a mass
// reimage of them by label selector, waits for the boot server to stage
// it, then plays every target with the Go PXE client (DHCP, TFTP, HTTP,
// and the installer's protocol: inventory, install plan, the disk image
// streamed and checked, progress, done) while it shows the orders moving
// through their states, and exits 0 once every order is done.
//
// bench/demo/run.sh builds the namespaces and starts the processes; this
// program only talks to the manager's API and runs the simulated targets
// inside the client namespace.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"osim/controlplane/api"
	"osim/internal/pxeclient"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		server  = flag.String("server", envOr("OSIM_SERVER", "http://127.0.0.1:8080"), "manager URL")
		token   = flag.String("token", os.Getenv("OSIM_TOKEN"), "admin or operator token")
		netns   = flag.String("netns", "", "network namespace of the simulated targets (required)")
		ifaces  = flag.String("ifaces", "", "comma-separated client interfaces in --netns, one target each (required)")
		site    = flag.String("site", "demo", "site of the targets (the boot server's site)")
		kernelN = flag.Int("kernel-size", 8<<20, "bytes of the demo kernel")
		initrdN = flag.Int("initrd-size", 4<<20, "bytes of the demo initrd")
		diskN   = flag.Int("disk-size", 16<<20, "bytes of the demo OS disk image")
		steps   = flag.Int("steps", 3, "installer progress reports per target")
		timeout = flag.Duration("timeout", 5*time.Minute, "give up after this long")
	)
	flag.Parse()
	if *netns == "" || *ifaces == "" || *token == "" {
		fmt.Fprintln(os.Stderr, "osim-demo: --netns, --ifaces and --token (or OSIM_TOKEN) are required")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	d := &demo{c: api.NewClient(*server, *token, false), site: *site, netns: *netns,
		ifaces: strings.Split(*ifaces, ","), steps: *steps, out: os.Stdout}
	if err := d.run(ctx, *kernelN, *initrdN, *diskN); err != nil {
		fmt.Fprintf(os.Stderr, "osim-demo: %v\n", err)
		return 1
	}
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type demo struct {
	c      *api.Client
	site   string
	netns  string
	ifaces []string
	steps  int
	out    io.Writer
}

type simTarget struct {
	ifc    string
	mac    net.HardwareAddr
	target api.Target
	fw     pxeclient.Firmware
}

func (d *demo) run(ctx context.Context, kernelN, initrdN, diskN int) error {
	img, err := d.image(ctx, kernelN, initrdN, diskN)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "OS image %s (%s %s): a %d B disk image the installers stream, check and report\n", img.ID, img.Name, img.Version, diskN)
	ns, err := pxeclient.OpenNetns("/run/netns/" + d.netns)
	if err != nil {
		return err
	}
	defer ns.Close()
	targets, err := d.targets(ctx, ns)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "%d targets registered in site %s (label demo=true)\n", len(targets), d.site)
	orders, err := d.c.CreateOrders(ctx, api.OrderRequest{Selector: "demo=true", Image: img.ID, All: true})
	if err != nil {
		return fmt.Errorf("mass reimage: %w", err)
	}
	fmt.Fprintf(d.out, "mass reimage: %d orders created (selector demo=true)\n", len(orders))
	ids := make([]string, len(orders))
	orderOf := map[string]string{} // target id → order id
	for i, o := range orders {
		ids[i] = o.ID
		orderOf[o.Target] = o.ID
	}
	start := time.Now()
	if err := d.watch(ctx, ids, start, func(c map[api.OrderState]int) bool { return c[api.OrderPending] == 0 }); err != nil {
		return fmt.Errorf("waiting for the boot server to stage the orders: %w", err)
	}
	fmt.Fprintf(d.out, "\nstaged on the boot server after %v; powering on %d targets\n", time.Since(start).Round(time.Millisecond), len(targets))

	results := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = d.boot(ctx, ns, t)
		}()
	}
	watchErr := d.watch(ctx, ids, time.Now(), func(c map[api.OrderState]int) bool {
		return c[api.OrderDone]+c[api.OrderFailed]+c[api.OrderCancelled] == len(ids)
	})
	wg.Wait()
	fmt.Fprintln(d.out)
	return d.summary(ctx, targets, orderOf, results, watchErr)
}

// image registers the demo's images and answers the OS image to order: a
// boot image standing for the osim installer (random kernel and initrd:
// the simulated targets hash them, they never run them), made the site's
// default, and a disk-format OS image of diskN random bytes, which the
// targets stream and check as the installer does.
func (d *demo) image(ctx context.Context, kernelN, initrdN, diskN int) (api.Image, error) {
	imgs, err := d.c.ListImages(ctx)
	if err != nil {
		return api.Image{}, err
	}
	var boot, osImg api.Image
	for _, im := range imgs {
		switch {
		case im.Name == "demo-installer" && im.Version == "2":
			boot = im
		case im.Name == "demo-os" && im.Version == "1":
			osImg = im
		}
	}
	rng := rand.NewChaCha8([32]byte{'o', 's', 'i', 'm'})
	upload := func(name, role string, n int) (api.ImageFile, error) {
		b := make([]byte, n)
		rng.Read(b)
		sum := sha256.Sum256(b)
		sha := hex.EncodeToString(sum[:])
		if _, err := d.c.UploadBlob(ctx, sha, int64(len(b)), bytes.NewReader(b), 1<<20); err != nil {
			return api.ImageFile{}, fmt.Errorf("uploading %s: %w", name, err)
		}
		return api.ImageFile{Name: name, SHA256: sha, Size: int64(len(b)), Role: role}, nil
	}
	if boot.ID == "" {
		spec := api.ImageSpec{Name: "demo-installer", Version: "2", Kind: api.KindBoot, Cmdline: "console=ttyS0"}
		for _, f := range []struct {
			name, role string
			n          int
		}{{"vmlinuz", api.RoleKernel, kernelN}, {"initrd.img", api.RoleInitrd, initrdN}} {
			file, err := upload(f.name, f.role, f.n)
			if err != nil {
				return api.Image{}, err
			}
			spec.Files = append(spec.Files, file)
		}
		if boot, err = d.c.CreateImage(ctx, spec); err != nil {
			return api.Image{}, err
		}
	}
	if _, err := d.c.PutSite(ctx, d.site, api.Site{DefaultBootImage: boot.ID}); err != nil {
		return api.Image{}, fmt.Errorf("site %s: default boot image: %w", d.site, err)
	}
	if osImg.ID == "" {
		file, err := upload("demo-os.img", api.RoleDisk, diskN)
		if err != nil {
			return api.Image{}, err
		}
		file.RawSize = file.Size
		osImg, err = d.c.CreateImage(ctx, api.ImageSpec{Name: "demo-os", Version: "1", Kind: api.KindOS,
			Format: api.FormatDisk, Files: []api.ImageFile{file}, Defaults: map[string]string{"hostname": "demo"}})
		if err != nil {
			return api.Image{}, err
		}
	}
	fmt.Fprintf(d.out, "boot image %s (%s %s, the site's default): kernel %d B, initrd %d B\n", boot.ID, boot.Name, boot.Version, kernelN, initrdN)
	return osImg, nil
}

// targets registers one target per client interface (or finds it again),
// alternating BIOS (iPXE ROM) and UEFI (EDK2 then iPXE snponly) firmware.
func (d *demo) targets(ctx context.Context, ns *pxeclient.Netns) ([]simTarget, error) {
	var out []simTarget
	for i, ifc := range d.ifaces {
		var mac net.HardwareAddr
		err := ns.Do(func() error {
			ni, err := net.InterfaceByName(ifc)
			if err != nil {
				return err
			}
			mac = ni.HardwareAddr
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("interface %s in %s: %w", ifc, d.netns, err)
		}
		st := simTarget{ifc: ifc, mac: mac, fw: pxeclient.IPXEBIOS}
		arch := "bios"
		if i%2 == 1 {
			st.fw, arch = pxeclient.EDK2x64, "efi-x64"
		}
		spec := api.TargetSpec{Hostname: fmt.Sprintf("demo-%02d", i+1), MACs: []string{mac.String()}, Arch: arch,
			Site: d.site, Labels: map[string]string{"demo": "true", "rack": fmt.Sprintf("r%d", i/10+1)}}
		t, err := d.c.CreateTarget(ctx, spec)
		if api.IsStatus(err, http.StatusConflict) {
			t, err = d.c.GetTarget(ctx, mac.String())
		}
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", spec.Hostname, err)
		}
		st.target = t
		out = append(out, st)
	}
	return out, nil
}

// boot plays one target: PXE firmware, iPXE, kernel and initrd, then the
// installer's status reports.
func (d *demo) boot(ctx context.Context, ns *pxeclient.Netns, t simTarget) error {
	// Stagger power-on a little, as a rack does.
	select {
	case <-time.After(time.Duration(rand.IntN(1000)) * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	cfg := pxeclient.Config{Interface: t.ifc, MAC: t.mac, Firmware: t.fw, Do: ns.Do,
		Install: &pxeclient.InstallConfig{Steps: d.steps, Delay: 300 * time.Millisecond,
			Facts: map[string]string{"cpus": "2", "memory_mb": "4096", "disk": "vda"}},
		OnLease: func(ack *dhcpv4.DHCPv4) error {
			ones, bits := net.IPMask(ack.SubnetMask()).Size()
			if bits != 32 {
				return fmt.Errorf("ACK without a usable subnet mask")
			}
			a := fmt.Sprintf("%s/%d", ack.YourIPAddr, ones)
			if out, err := exec.Command("ip", "-n", d.netns, "addr", "replace", a, "dev", t.ifc).CombinedOutput(); err != nil {
				return fmt.Errorf("ip addr replace %s dev %s: %v: %s", a, t.ifc, err, out)
			}
			return nil
		}}
	_, err := pxeclient.Boot(ctx, cfg)
	return err
}

// watch follows the orders' states, printing one status line (rewritten in
// place on a terminal), until done says so.
func (d *demo) watch(ctx context.Context, ids []string, start time.Time, done func(map[api.OrderState]int) bool) error {
	tty := isTTY(d.out)
	last := ""
	for {
		counts := map[api.OrderState]int{}
		for _, id := range ids {
			o, err := d.c.GetOrder(ctx, id)
			if err != nil {
				return err
			}
			counts[o.State]++
		}
		var parts []string
		for _, s := range api.OrderStates {
			if counts[s] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", s, counts[s]))
			}
		}
		line := fmt.Sprintf("%6.1fs  %s", time.Since(start).Seconds(), strings.Join(parts, "  "))
		if tty {
			fmt.Fprintf(d.out, "\r%-80s", line)
		} else if l := strings.Join(parts, "  "); l != last {
			fmt.Fprintln(d.out, line)
			last = l
		}
		if done(counts) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (d *demo) summary(ctx context.Context, targets []simTarget, orderOf map[string]string, results []error, watchErr error) error {
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tHOSTNAME\tMAC\tFIRMWARE\tORDER\tSTATE\tCREATED→DONE\tCLIENT")
	failed := 0
	for i, t := range targets {
		o, err := d.c.GetOrder(ctx, orderOf[t.target.ID])
		if err != nil {
			return err
		}
		took := "-"
		if o.State == api.OrderDone {
			took = o.Updated.Sub(o.Created).Round(time.Millisecond).String()
		} else {
			failed++
		}
		res := "ok"
		if results[i] != nil {
			res = results[i].Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.target.ID, t.target.Hostname, t.mac, t.fw.Name, o.ID, o.State, took, res)
	}
	tw.Flush()
	if watchErr != nil {
		return watchErr
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d targets did not reach done", failed, len(targets))
	}
	fmt.Fprintf(d.out, "all %d targets done\n", len(targets))
	return nil
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
