package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"osim/controlplane/api"
	bootdcfg "osim/internal/bootd"
	"osim/internal/testlab"
	"osim/ips/gpt"
)

// These tests run issue 13's install and its failure paths with the real
// processes and no QEMU: osim-manager, osim-bootd (manager mode) on
// loopback, and osim-installer in its `run` flag mode as the target,
// writing to a loop device that the order names with disk.path (or, for
// "no disk matches", a serial no disk has), so the host's disks are never
// candidates. The installer's command line comes from the boot server's
// iPXE script for the target's MAC, fetched from the address the
// installer then uses, as a target's firmware would.

const mib = 1 << 20

// installRig is a manager and a boot server of one site whose default
// boot image is registered (its bytes are never booted here).
type installRig struct {
	t    *testing.T
	m    *managerProc
	b    *bootd
	c    *api.Client
	site string
}

func newInstallRig(t *testing.T, site string, tweak func(*bootdcfg.Config), bootdArgs ...string) *installRig {
	t.Helper()
	ctx := context.Background()
	m := startManager(t, t.TempDir())
	b := newBootdWith(t, "bootd-"+site, site, m.url, m.joinToken(t, site), tweak, bootdArgs...)
	b.restart()
	r := &installRig{t: t, m: m, b: b, c: m.admin, site: site}
	inst := must(r.c.CreateImage(ctx, api.ImageSpec{Name: "osim-installer", Version: "1", Kind: api.KindBoot, Cmdline: "console=ttyS0",
		Files: []api.ImageFile{uploadFile(t, r.c, "vmlinuz", api.RoleKernel, []byte(strings.Repeat("kernel ", 500))),
			uploadFile(t, r.c, "initrd.img", api.RoleInitrd, []byte(strings.Repeat("initrd ", 700)))}}))(t)
	must(r.c.PutSite(ctx, site, api.Site{DefaultBootImage: inst.ID}))(t)
	return r
}

// diskImage builds a raw GPT disk of size bytes: partition 1 (1 MiB of a
// pattern seeded by variant, so that two variants hash apart) and
// partition 2, Linux root x86-64, an ext4 made by mke2fs -d holding
// /etc/marker, up to the last usable sector.
func diskImage(t *testing.T, size int64, variant string) (raw []byte, rootFirst int64) {
	t.Helper()
	mke2fs := testlab.RequireTool(t, "mke2fs", "e2fsprogs")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc/marker"), []byte("installed by osim "+variant+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := gpt.Table{DiskGUID: gpt.DerivedGUID("disk/" + variant), Sectors: uint64(size / gpt.SectorSize)}
	const p1, p2 = 2048, 4096
	tb.Partitions = []gpt.Partition{
		{Type: gpt.TypeLinuxData, GUID: gpt.DerivedGUID("data/" + variant), FirstLBA: p1, LastLBA: p2 - 1, Name: "data"},
		{Type: gpt.TypeLinuxRootX64, GUID: gpt.DerivedGUID("root/" + variant), FirstLBA: p2, LastLBA: tb.LastUsableLBA(), Name: "root"},
	}
	rootBytes := int64(tb.LastUsableLBA()-p2+1) * gpt.SectorSize
	part := filepath.Join(dir, "root.ext4")
	if out, err := exec.Command(mke2fs, "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "osimroot", "-d", tree,
		part, strconv.FormatInt(rootBytes/4096, 10)).CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v: %s", err, out)
	}
	fs, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	raw = make([]byte, size)
	seed := []byte("osim failure paths " + variant + " ")
	for i := int64(p1 * gpt.SectorSize); i < p2*gpt.SectorSize; i++ {
		raw[i] = seed[i%int64(len(seed))] ^ byte(i>>9)
	}
	copy(raw[p2*gpt.SectorSize:], fs)
	if err := tb.Write(sliceAt(raw)); err != nil {
		t.Fatal(err)
	}
	return raw, p2 * gpt.SectorSize
}

type sliceAt []byte

func (s sliceAt) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(s)) {
		return 0, fmt.Errorf("write of %d bytes at %d past %d", len(p), off, len(s))
	}
	return copy(s[off:], p), nil
}

func zstdBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// diskOSImage uploads served (raw, or its compression) and registers a
// disk-format OS image of it.
func (r *installRig) diskOSImage(name string, raw, served []byte, compression string, procs ...api.Procedure) (api.Image, api.ImageFile) {
	r.t.Helper()
	f := uploadFile(r.t, r.c, "disk.img", api.RoleDisk, served)
	f.Compression, f.RawSize = compression, int64(len(raw))
	img := must(r.c.CreateImage(context.Background(), api.ImageSpec{Name: name, Version: "1", Kind: api.KindOS, Format: api.FormatDisk,
		Files: []api.ImageFile{f}, Procedures: procs}))(r.t)
	return img, f
}

// order makes a target with mac and an order of img for it with params,
// and waits until the boot server has staged it.
func (r *installRig) order(host, mac string, img api.Image, params map[string]string) (api.Target, api.Order) {
	r.t.Helper()
	ctx := context.Background()
	tg := must(r.c.CreateTarget(ctx, api.TargetSpec{Hostname: host, Site: r.site, Arch: "bios", MACs: []string{mac}}))(r.t)
	o := must(r.c.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID, Params: params}))(r.t)[0]
	r.waitOrder(o.ID, 60*time.Second, api.OrderStaged)
	return tg, o
}

func (r *installRig) waitOrder(id string, d time.Duration, want api.OrderState) api.Order {
	r.t.Helper()
	var o api.Order
	waitFor(r.t, d, "order "+id+" "+string(want), func() (bool, string) {
		if ok, why := r.b.checkAlive(); !ok {
			r.t.Fatal(why)
		}
		var err error
		if o, err = r.c.GetOrder(context.Background(), id); err != nil {
			return false, err.Error()
		}
		if o.State != want && (o.State == api.OrderDone || o.State == api.OrderFailed || o.State == api.OrderCancelled) {
			r.t.Fatalf("order %s ended %s (%s), want %s", id, o.State, o.Message, want)
		}
		return o.State == want, fmt.Sprintf("%s (%s)", o.State, o.Message)
	})
	return o
}

// bootArgs fetches the iPXE script for mac as the target's firmware would
// and returns the osim.* arguments of its kernel line.
func (r *installRig) bootArgs(mac string) string {
	r.t.Helper()
	// The order is staged at the manager a moment before the boot
	// server's copy says so (DHCP stays silent meanwhile): poll.
	var args []string
	waitFor(r.t, 10*time.Second, "the script for "+mac+" to boot the installer", func() (bool, string) {
		script := httpGet(r.t, r.b.http+"/ipxe/"+mac, "", 200)
		args = args[:0]
		for _, line := range strings.Split(script, "\n") {
			if !strings.HasPrefix(line, "kernel ") {
				continue
			}
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "osim.") {
					args = append(args, f)
				}
			}
		}
		return strings.Contains(strings.Join(args, " "), "osim.token="), script
	})
	return strings.Join(args, " ")
}

// script is the iPXE script the boot server answers for mac now.
func (r *installRig) script(mac string) string {
	r.t.Helper()
	return httpGet(r.t, r.b.http+"/ipxe/"+mac, "", 200)
}

// waitLocalBoot waits until mac's script is the local-disk one.
func (r *installRig) waitLocalBoot(mac string) {
	r.t.Helper()
	waitFor(r.t, 30*time.Second, "the local-disk script for "+mac, func() (bool, string) {
		s := r.script(mac)
		return strings.Contains(s, "boot from local disk") && !strings.Contains(s, "kernel "), s
	})
}

// installerRun is one osim-installer run in flag mode.
type installerRun struct {
	code   int
	output string
	took   time.Duration
}

// runInstaller runs osim-installer with the osim.* arguments args until it
// exits (at most d, or until ctx ends); loop devices may be chosen. It
// may run on another goroutine than the test's: it reports with Errorf
// and code -1.
func runInstaller(ctx context.Context, t *testing.T, args string, d time.Duration) installerRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "osim-installer"), "run", "--cmdline", args, "--no-init",
		"--include-loop", "--mount-dir", filepath.Join(t.TempDir(), "root"), "--report-window", "30s", "--stream-give-up", "60s")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	res := installerRun{output: out.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.code = -1
		t.Errorf("osim-installer still running after %v (it must exit in flag mode):\n%s", res.took.Round(time.Millisecond), res.output)
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		res.code = -1
		t.Errorf("osim-installer: %v", err)
	}
	t.Logf("osim-installer exited %d after %v:\n%s", res.code, res.took.Round(time.Millisecond), res.output)
	return res
}

// loopDevice attaches a file of size bytes filled with a pattern as a loop
// device with partition scanning, detached when the test ends.
func loopDevice(t *testing.T, size int64) (dev string, fill []byte) {
	t.Helper()
	losetup := testlab.RequireTool(t, "losetup", "mount")
	file := filepath.Join(t.TempDir(), "disk")
	fill = bytes.Repeat([]byte("osim-untouched!\n"), int(size/16))
	if err := os.WriteFile(file, fill, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "-f", "--show", "-P", file).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
	return dev, fill
}

func readDevice(t *testing.T, dev string, n int64) []byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatalf("reading %s: %v", dev, err)
	}
	return b
}

// statusEvents are the manager's install.status events of an order.
func (r *installRig) statusEvents(order string) []api.Event {
	r.t.Helper()
	return must(r.c.ListEvents(context.Background(), 0, api.EventFilter{Order: order, Type: api.EventInstallStatus, Limit: 1000}))(r.t).Events
}

// checkFailed waits for the order to fail at the manager, then checks that
// its reason names step (once) and contains want, that the manager holds the
// failed report with that step, that the next script boots the local
// disk and that the installer exited 1 without rebooting.
func (r *installRig) checkFailed(run installerRun, o api.Order, mac, step, want string) []api.Event {
	r.t.Helper()
	if run.code != 1 || !strings.Contains(run.output, "not as PID 1: exiting") {
		r.t.Errorf("installer exited %d, want 1 (failed) without reboot or loop; output:\n%s", run.code, run.output)
	}
	got := r.waitOrder(o.ID, 30*time.Second, api.OrderFailed)
	// The console says "FAILED at <step>: <reason>"; the order's reason
	// is "<step>: <reason>", the step named once.
	reason := ""
	if _, after, ok := strings.Cut(run.output, "FAILED at "+step+": "); ok {
		reason, _, _ = strings.Cut(after, "\n")
	}
	if reason == "" || got.Message != step+": "+reason || !strings.Contains(got.Message, want) {
		r.t.Errorf("order failed with %q, want %q naming %q", got.Message, step+": "+reason, want)
	}
	evs := r.statusEvents(o.ID)
	var failed *api.Event
	for i := range evs {
		if evs[i].Phase == "failed" {
			failed = &evs[i]
		}
	}
	if failed == nil || failed.Data["step"] != step {
		r.t.Errorf("no failed install.status of step %s at the manager: %+v", step, evs)
	}
	r.waitLocalBoot(mac)
	return evs
}

// TestInstallerProcessInstallsAndFailsCleanly runs the real installer
// against the real manager and boot server: a disk image installs (bytes,
// seed, facts, states, local boot after), and each failure (a corrupted
// staged blob, a disk too small, no disk matching the rule, a post
// procedure exiting non-zero) fails the order at its step with its reason,
// leaves what it must untouched, lets the next boot go to the local disk
// and ends the installer instead of looping.
func TestInstallerProcessInstallsAndFailsCleanly(t *testing.T) {
	needBinaries(t)
	testlab.RequireRoot(t, "the installer writes loop devices and mounts the installed root")
	t.Parallel()
	r := newInstallRig(t, "inst", nil)
	raw, rootFirst := diskImage(t, 20*mib, "main")
	served := zstdBytes(t, raw)
	img, _ := r.diskOSImage("disk-main", raw, served, api.CompressionZstd)
	const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFailPathsKey osim@e2e"

	t.Run("WritesTheImageSeedsTheRootAndBootsLocal", func(t *testing.T) {
		r := *r
		r.t = t
		dev, _ := loopDevice(t, 32*mib)
		const mac = "02:e5:00:00:00:01"
		_, o := r.order("web-01.e2e.test", mac, img, map[string]string{"disk.path": dev, "ssh_authorized_keys": sshKey})
		run := runInstaller(t.Context(), t, r.bootArgs(mac), 60*time.Second)
		if run.code != 0 {
			t.Fatalf("installer exited %d:\n%s", run.code, run.output)
		}
		done := r.waitOrder(o.ID, 30*time.Second, api.OrderDone)
		var path []api.OrderState
		for _, h := range done.History {
			path = append(path, h.To)
		}
		if want := []api.OrderState{api.OrderPending, api.OrderStaged, api.OrderBooting, api.OrderInstalling, api.OrderDone}; fmt.Sprint(path) != fmt.Sprint(want) {
			t.Errorf("order states %v, want %v", path, want)
		}
		var steps []string
		progressed := false
		for _, e := range r.statusEvents(o.ID) {
			steps = append(steps, e.Data["step"])
			progressed = progressed || (e.Phase == "installing" && e.Progress > 0)
		}
		if !progressed {
			t.Errorf("no installing progress reached the manager: steps %v", steps)
		}
		if s := strings.Join(steps, ","); !regexp.MustCompile(`^inventory,disk,.*verify,customize,finish$`).MatchString(s) {
			t.Errorf("install.status steps %s, want inventory, disk, …, verify, customize, finish", s)
		}

		// The disk holds the image up to the root (which the seed changed).
		if got := readDevice(t, dev, rootFirst); !bytes.Equal(got, raw[:rootFirst]) {
			t.Errorf("the first %d bytes of %s differ from the image", rootFirst, dev)
		}
		// Mounted over the root partition's range: partition nodes
		// (/dev/loopNp2) need udev, which a container may not run.
		mount := testlab.RequireTool(t, "mount", "mount")
		mnt := t.TempDir()
		ro := fmt.Sprintf("ro,loop,offset=%d,sizelimit=%d", rootFirst, int64(len(raw))-rootFirst-34*512)
		if out, err := exec.Command(mount, "-t", "ext4", "-o", ro, dev, mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount %s (%s): %v: %s", dev, ro, err, out)
		}
		defer exec.Command("umount", mnt).Run()
		for name, want := range map[string]string{
			"etc/marker":                           "installed by osim main",
			"var/lib/cloud/seed/nocloud/user-data": sshKey,
			"var/lib/cloud/seed/nocloud/meta-data": "web-01.e2e.test",
		} {
			if b, err := os.ReadFile(filepath.Join(mnt, name)); err != nil || !strings.Contains(string(b), want) {
				t.Errorf("%s on the installed root: %q, %v; want it to hold %q", name, b, err, want)
			}
		}

		tg := must(r.c.GetTarget(context.Background(), mac))(t)
		name := filepath.Base(dev)
		if tg.Facts["disk."+name+".size"] != strconv.Itoa(32*mib) || tg.Facts["cpu.count"] == "" || tg.Facts["memory.bytes"] == "" {
			t.Errorf("the target's facts lack the inventory (disk.%s.size = 32 MiB, cpu.count, memory.bytes): %v", name, tg.Facts)
		}
		r.waitLocalBoot(mac)
	})

	t.Run("CorruptedStagedBlobFailsVerifyNamingTheHash", func(t *testing.T) {
		r := *r
		r.t = t
		raw, _ := diskImage(t, 20*mib, "corrupt")
		served := zstdBytes(t, raw)
		img, f := r.diskOSImage("disk-corrupt", raw, served, api.CompressionZstd)
		dev, _ := loopDevice(t, 32*mib)
		const mac = "02:e5:00:00:00:02"
		_, o := r.order("web-02.e2e.test", mac, img, map[string]string{"disk.path": dev})
		blob := filepath.Join(r.b.data, "blobs", "sha256", f.SHA256)
		flipByte(t, blob, int64(len(served)/2))
		run := runInstaller(t.Context(), t, r.bootArgs(mac), 60*time.Second)
		r.checkFailed(run, o, mac, api.StepVerify, f.SHA256)
	})

	t.Run("DiskTooSmallFailsAtDiskAndLeavesItUntouched", func(t *testing.T) {
		r := *r
		r.t = t
		dev, fill := loopDevice(t, 8*mib)
		const mac = "02:e5:00:00:00:03"
		_, o := r.order("web-03.e2e.test", mac, img, map[string]string{"disk.path": dev})
		run := runInstaller(t.Context(), t, r.bootArgs(mac), 60*time.Second)
		r.checkFailed(run, o, mac, api.StepDisk, "too small")
		if !bytes.Equal(readDevice(t, dev, int64(len(fill))), fill) {
			t.Errorf("%s changed although the install failed before writing", dev)
		}
	})

	t.Run("NoDiskMatchingTheRuleFailsAtDisk", func(t *testing.T) {
		r := *r
		r.t = t
		noDiskHasSerial(t, "NOPE")
		const mac = "02:e5:00:00:00:04"
		_, o := r.order("web-04.e2e.test", mac, img, map[string]string{"disk.serial": "NOPE"})
		run := runInstaller(t.Context(), t, r.bootArgs(mac), 60*time.Second)
		r.checkFailed(run, o, mac, api.StepDisk, "NOPE")
	})

	t.Run("FailingPostProcedureFailsAtPostWithItsExitAndOutput", func(t *testing.T) {
		r := *r
		r.t = t
		img, _ := r.diskOSImage("disk-post", raw, served, api.CompressionZstd,
			api.Procedure{Name: "fail", When: api.WhenPost, Script: "echo boom; exit 3"})
		dev, _ := loopDevice(t, 32*mib)
		const mac = "02:e5:00:00:00:05"
		_, o := r.order("web-05.e2e.test", mac, img, map[string]string{"disk.path": dev})
		run := runInstaller(t.Context(), t, r.bootArgs(mac), 60*time.Second)
		evs := r.checkFailed(run, o, mac, api.StepPost, `procedure "fail" exited with 3`)
		found := false
		for _, e := range evs {
			if e.Data["step"] == api.StepPost && e.Data["procedure"] == "fail" {
				found = e.Data["exit_code"] == "3" && strings.Contains(e.Data["output_tail"], "boom")
			}
		}
		if !found {
			t.Errorf("no post report of procedure fail with exit_code 3 and boom in its output at the manager: %+v", evs)
		}
	})
}

// flipByte inverts the byte at off of file.
func flipByte(t *testing.T, file string, off int64) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("the staged blob: %v", err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// noDiskHasSerial fails the test if a block device of this machine has
// serial: the rule must match nothing.
func noDiskHasSerial(t *testing.T, serial string) {
	t.Helper()
	files, _ := filepath.Glob("/sys/block/*/device/serial")
	more, _ := filepath.Glob("/sys/block/*/serial")
	for _, f := range append(files, more...) {
		if b, err := os.ReadFile(f); err == nil && strings.TrimSpace(string(b)) == serial {
			t.Fatalf("%s says %q: this machine has a disk the rule would match", f, serial)
		}
	}
}

// throttle is a reverse proxy in front of a boot server that slows image
// file responses to rate bytes per second and counts what it passed on;
// the boot server's base URL points at it, so the installer streams
// through it.
type throttle struct {
	srv    *httptest.Server
	target atomic.Pointer[url.URL]
	rate   int64
	passed atomic.Int64
}

func newThrottle(t *testing.T, rate int64) *throttle {
	p := &throttle{rate: rate}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(p.target.Load()); pr.Out.Host = pr.In.Host },
		ModifyResponse: func(resp *http.Response) error {
			if strings.HasPrefix(resp.Request.URL.Path, "/files/") {
				resp.Body = &slowBody{ReadCloser: resp.Body, p: p}
			}
			return nil
		},
		FlushInterval: -1,
	}
	p.srv = httptest.NewServer(rp)
	t.Cleanup(p.srv.Close)
	return p
}

type slowBody struct {
	io.ReadCloser
	p *throttle
}

func (s *slowBody) Read(b []byte) (int, error) {
	b = b[:min(len(b), 64<<10)]
	n, err := s.ReadCloser.Read(b)
	s.p.passed.Add(int64(n))
	time.Sleep(time.Duration(int64(n) * int64(time.Second) / s.p.rate))
	return n, err
}

// TestInstallerProcessResumesAfterBootServerRestart SIGKILLs osim-bootd
// while the installer streams a 64 MiB image (slowed by a proxy to a few
// seconds), restarts it on the same config and data dir, and checks that
// the installer resumed with a Range request (a 206 from a non-zero
// offset in the boot server's log) and the order ends done with the image
// on the disk.
func TestInstallerProcessResumesAfterBootServerRestart(t *testing.T) {
	needBinaries(t)
	testlab.RequireRoot(t, "the installer writes a loop device")
	t.Parallel()
	p := newThrottle(t, 16*mib)
	r := newInstallRig(t, "resume", func(c *bootdcfg.Config) { c.HTTP.BaseURL = p.srv.URL }, "--log-level", "debug")
	u, err := url.Parse(r.b.http)
	if err != nil {
		t.Fatal(err)
	}
	p.target.Store(u)
	raw, rootFirst := diskImage(t, 64*mib, "resume")
	rand.Read(raw[mib : 2*mib]) // partition 1: incompressible bytes
	img, _ := r.diskOSImage("disk-resume", raw, raw, api.CompressionNone)
	dev, _ := loopDevice(t, 80*mib)
	const mac = "02:e5:00:00:00:06"
	_, o := r.order("web-06.e2e.test", mac, img, map[string]string{"disk.path": dev})
	args := r.bootArgs(mac)
	if !strings.Contains(args, "osim.url="+p.srv.URL) {
		t.Fatalf("the installer would not stream through the proxy: %s", args)
	}

	ctx, cancel := context.WithCancel(t.Context())
	var run installerRun
	ran := make(chan struct{})
	go func() { defer close(ran); run = runInstaller(ctx, t, args, 90*time.Second) }()
	defer func() { cancel(); <-ran }() // also when the test stops early
	waitFor(t, 30*time.Second, "a quarter of the image through the proxy", func() (bool, string) {
		n := p.passed.Load()
		return n >= int64(len(raw))/4, fmt.Sprintf("%d bytes", n)
	})
	r.b.kill()
	at := p.passed.Load()
	t.Logf("osim-bootd SIGKILLed with %d of %d bytes streamed", at, len(raw))
	time.Sleep(500 * time.Millisecond) // the installer finds it gone and retries
	r.b.restart()
	<-ran
	if run.code != 0 {
		t.Fatalf("installer exited %d:\n%s", run.code, run.output)
	}
	r.waitOrder(o.ID, 30*time.Second, api.OrderDone)
	if !strings.Contains(run.output, "resuming") {
		t.Errorf("the installer never said it resumed:\n%s", run.output)
	}
	if got := readDevice(t, dev, rootFirst); !bytes.Equal(got, raw[:rootFirst]) {
		t.Errorf("the first %d bytes of %s differ from the image", rootFirst, dev)
	}
	// Bytes cross the proxy once: the second response started where the
	// first one broke off, not at 0 (one chunk may be read and not sent).
	if n := p.passed.Load(); n > int64(len(raw))+1*mib {
		t.Errorf("%d bytes crossed the proxy for a %d byte image: the transfer started again", n, len(raw))
	}
	resumed := regexp.MustCompile(`path=/files/\S+ route=file .*code=206 .*range="?bytes=([1-9][0-9]*)-`)
	m := resumed.FindStringSubmatch(r.b.log.String())
	if m == nil {
		t.Fatalf("no 206 from a non-zero offset in the restarted boot server's log")
	}
	t.Logf("resumed from byte %s; passed %d bytes through the proxy for a %d byte image", m[1], p.passed.Load(), len(raw))
}
