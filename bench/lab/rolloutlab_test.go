package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/internal/bmclab"
	"osim/internal/testlab"
	"osim/internal/virtlab"
)

// rolloutGuest is a lab machine a rollout drives: a QEMU guest behind a
// BMC (ipmi_sim, its chassis the guest's QEMU) or a libvirt domain.
type rolloutGuest struct {
	guest
	driver string // ipmi or libvirt
	wave   string // its label wave=
	fail   string // the order's failure the test expects ("": done)
	bmc    *bmclab.Lab
	domain string
	target api.Target
	order  api.Order
}

// TestRolloutReimagesRealMachinesInWaves is issue 16's proof: a rollout
// of four QEMU guests (two BIOS, two UEFI; two behind a real BMC, OpenIPMI's
// ipmi_sim driven by ipmitool, two libvirt domains of a real libvirtd), in
// two waves by label, with a failure budget of one. The manager and
// osim-bootd run as in the install lab; osim itself powers every machine
// on (network boot next) once its order is staged. Wave one holds a guest
// whose disk is too small for the image: its install fails, the budget
// stops the rollout, wave two's machines stay off while wave one's other
// guest installs to the end. The operator resumes (accepting that
// failure): wave two runs, both its guests install, and the rollout is
// done. Every installed guest boots its disk into the installed system,
// which prints its hostname from the MDB; the disks hold the image.
func TestRolloutReimagesRealMachinesInWaves(t *testing.T) {
	if testing.Short() {
		t.Skip("installs four QEMU guests in two waves (several minutes)")
	}
	needLab(t)
	needInstallTools(t)
	bmclab.NeedTools(t, "ipmi_sim", "ipmitool", "virsh", "libvirtd", "virtlogd")
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Minute)
	defer cancel()
	bin := buildLabBinaries(t)
	l := newInstallLab(t, bin)
	keyFile := filepath.Join(l.dir, "credentials.key")
	if out, err := exec.Command(filepath.Join(bin, "osim-manager"), "credentials-key", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("credentials key: %v\n%s", err, out)
	}
	l.managerArgs = []string{"--credentials-key", keyFile}
	virtlab.Start(t, l.ns) // its domains plug into the lab's bridge
	c := l.startManagerAndBootd(ctx)
	_, osImg, rawImage := l.buildAndRegisterImages(ctx, c)
	if err := c.Do(ctx, "POST", "/credentials", nil, api.CredentialRequest{Name: "lab-bmc", Username: bmclab.User, Password: bmclab.Password}, nil); err != nil {
		t.Fatal(err)
	}

	// libvirt's QEMU runs as its own user: its guests' disks live where
	// libvirt keeps images.
	virtDir, err := os.MkdirTemp("/var/lib/libvirt/images", "osim-lab-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(virtDir) })
	if err := os.Chmod(virtDir, 0o755); err != nil { // QEMU's user opens the disks inside
		t.Fatal(err)
	}
	guests := []*rolloutGuest{
		{guest: guest{name: "ipmi-uefi", arch: "efi-x64", mac: "52:54:00:77:02:01", diskSize: 640 << 20}, driver: "ipmi", wave: "1"},
		// The injected failure: a disk smaller than the 66 MiB image.
		{guest: guest{name: "virt-bios", arch: "bios", mac: "52:54:00:77:02:02", diskSize: 32 << 20}, driver: "libvirt", wave: "1", fail: "disk too small"},
		{guest: guest{name: "ipmi-bios", arch: "bios", mac: "52:54:00:77:02:03", diskSize: 512 << 20}, driver: "ipmi", wave: "2"},
		{guest: guest{name: "virt-uefi", arch: "efi-x64", mac: "52:54:00:77:02:04", diskSize: 640 << 20}, driver: "libvirt", wave: "2"},
	}
	for _, g := range guests {
		dir := l.dir
		if g.driver == "libvirt" {
			dir = virtDir
		}
		g.disk, g.serial = filepath.Join(dir, g.name+".disk"), filepath.Join(dir, g.name+".serial")
		if err := os.WriteFile(g.disk, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(g.disk, g.diskSize); err != nil {
			t.Fatal(err)
		}
		spec := &api.PowerSpec{Driver: g.driver}
		switch g.driver {
		case "ipmi":
			tap := "tap-" + g.name
			testlab.RunIP(t, "-n", l.ns.Name, "tuntap", "add", "dev", tap, "mode", "tap")
			testlab.RunIP(t, "-n", l.ns.Name, "link", "set", tap, "master", "br0", "up")
			// SeaBIOS honours the BMC's "bootdev pxe" (-boot once=n) and
			// boots its disk after; OVMF reads only the devices' boot
			// order, so the UEFI guest boots network first, always.
			g.bmc = bmclab.StartWith(t, bmclab.Options{NS: l.ns, Machine: qemuMachine(&g.guest, tap, g.arch != "bios")})
			spec.Address, spec.Credentials = "127.0.0.1:"+strconv.Itoa(g.bmc.Port), "lab-bmc"
		case "libvirt":
			g.domain = fmt.Sprintf("osim-lab-%s-%d", g.name, os.Getpid())
			defineDomain(t, &g.guest, g.domain)
			spec.Domain = g.domain
		}
		g.target, err = c.CreateTarget(ctx, api.TargetSpec{Hostname: guestHostname(&g.guest), MACs: []string{g.mac}, Arch: g.arch, Site: labSite,
			Labels: map[string]string{"lab": "rollout", "wave": g.wave}, Power: spec})
		if err != nil {
			t.Fatal(err)
		}
	}

	const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOsimLabKeyForTheInstallTest osim@lab"
	start := time.Now()
	var ro api.Rollout
	if err := c.Do(ctx, "POST", "/rollouts", nil, api.RolloutRequest{
		Orders: api.OrderRequest{Selector: "lab=rollout", Image: osImg.ID, All: true, Params: map[string]string{"ssh_authorized_keys": sshKey}},
		Policy: api.RolloutPolicy{WaveBy: "wave", FailureBudget: 1}}, &ro); err != nil {
		t.Fatalf("rollout: %v", err)
	}
	if len(ro.Waves) != 2 || ro.Waves[0].Label != "wave=1" {
		t.Fatalf("waves %+v", ro.Waves)
	}
	get := func() api.Rollout {
		t.Helper()
		var r api.Rollout
		if err := c.Do(ctx, "GET", "/rollouts/"+ro.ID, nil, nil, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Wave one: the small disk fails, the budget stops the rollout.
	ro = waitRollout(t, get, 10*time.Minute, "stopped by the budget", func(r api.Rollout) bool { return r.State == api.RolloutStopped })
	t.Logf("%v: rollout stopped: %s", time.Since(start).Round(time.Second), ro.Reason)
	if ro.Current != 0 || ro.Waves[1].Batch != "" || !strings.Contains(ro.Reason, "failure budget spent: 1 failed") {
		t.Fatalf("stopped at %+v", ro)
	}
	// Wave one's other guest installs to the end; wave two stays off.
	l.waitInstalled(ctx, t, guests[0], start)
	for _, g := range guests[2:] {
		if on := g.poweredOn(t); on {
			t.Fatalf("%s (wave 2) was powered on while the rollout was stopped", g.name)
		}
	}

	// The operator accepts the failure and resumes: wave two runs.
	if err := c.Do(ctx, "POST", "/rollouts/"+ro.ID+"/resume", nil, nil, &ro); err != nil {
		t.Fatalf("resume: %v", err)
	}
	for _, g := range guests[2:] {
		l.waitInstalled(ctx, t, g, start)
	}
	ro = waitRollout(t, get, 2*time.Minute, "done", func(r api.Rollout) bool { return r.State == api.RolloutDone })
	t.Logf("%v: rollout done", time.Since(start).Round(time.Second))
	if w := ro.Waves; w[0].Done != 1 || w[0].Failed != 1 || w[1].Done != 2 || w[1].Failed != 0 || ro.Forgiven != 1 {
		t.Errorf("waves %+v, forgiven %d; want 1 done + 1 failed, then 2 done", w, ro.Forgiven)
	}

	for _, g := range guests {
		orders, err := c.ListOrders(ctx, "", g.target.ID, "", "", 10)
		if err != nil || len(orders.Orders) != 1 {
			t.Fatalf("%s: orders %v %+v", g.name, err, orders)
		}
		o := orders.Orders[0]
		var path []api.OrderState
		for _, h := range o.History {
			path = append(path, h.To)
		}
		want := []api.OrderState{api.OrderPending, api.OrderStaged, api.OrderBooting, api.OrderInstalling, api.OrderDone}
		if g.fail != "" {
			want[len(want)-1] = api.OrderFailed
			if !strings.Contains(o.Message, g.fail) {
				t.Errorf("%s: failed with %q, want %q", g.name, o.Message, g.fail)
			}
		}
		if !slices.Equal(path, want) {
			t.Errorf("%s: order states %v, want %v", g.name, path, want)
		}
		// osim started it: one cycle with network boot next, run by the
		// site's boot server.
		var prs []api.PowerRequest
		if err := c.Do(ctx, "GET", "/targets/"+g.target.ID+"/power", nil, nil, &prs); err != nil {
			t.Fatal(err)
		}
		if len(prs) != 1 || prs[0].Action != "cycle" || !prs[0].NetworkBoot || prs[0].State != api.PowerDone || prs[0].BootServer == "" {
			t.Errorf("%s: power requests %+v, want one cycle with network boot, done by the boot server", g.name, prs)
		}
		if g.fail != "" {
			continue
		}
		want2 := "hostname=" + guestHostname(&g.guest)
		if !strings.Contains(g.marker, want2) || !strings.Contains(g.marker, "AAAAC3NzaC1lZDI1NTE5AAAAIOsimLabKeyForTheInstallTest") {
			t.Errorf("%s: marker %q lacks %q or the order's SSH key", g.name, g.marker, want2)
		}
		// The installer's progress reached the manager: its install.status
		// events as the API lists them (polling the order's progress
		// instead raced the install's last seconds on a loaded machine).
		if p := installingProgress(ctx, t, c, o.ID); p == 0 {
			t.Errorf("%s: no installing progress in the order's events", g.name)
		}
		tg, err := c.GetTarget(ctx, g.target.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkInventory(t, &g.guest, tg.Facts)
		checkDiskHoldsImage(t, &g.guest, rawImage)
	}
	// The BIOS guest behind the BMC booted the network once, then its disk.
	if boots := guests[2].bmc.Boots(); len(boots) == 0 || boots[0] != "once=n" {
		t.Errorf("ipmi-bios: boots %v, want the first with once=n (the BMC's bootdev pxe)", boots)
	}
}

// installingProgress is the highest progress the order's install.status
// events of the installing phase carry.
func installingProgress(ctx context.Context, t *testing.T, c *api.Client, order string) int {
	t.Helper()
	evs, err := c.ListEvents(ctx, 0, api.EventFilter{Order: order, Type: api.EventInstallStatus, Limit: 1000})
	if err != nil {
		t.Fatalf("events of %s: %v", order, err)
	}
	best := 0
	for _, e := range evs.Events {
		if e.Phase == "installing" {
			best = max(best, e.Progress)
		}
	}
	return best
}

// needInstallTools: the image builders the install labs need.
func needInstallTools(t *testing.T) {
	t.Helper()
	for _, tool := range [][2]string{{"mkfs.vfat", "dosfstools"}, {"mcopy", "mtools"}, {"syslinux", "syslinux"}, {"mke2fs", "e2fsprogs"}} {
		testlab.RequireTool(t, tool[0], tool[1])
	}
	for _, f := range []string{"/usr/lib/SYSLINUX/gptmbr.bin", "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"} {
		if _, err := os.Stat(f); err != nil {
			testlab.Unavailable(t, "lab needs %s (apt-get install syslinux-common systemd-boot-efi)", f)
		}
	}
}

// waitRollout polls the rollout until ok, failing t after d.
func waitRollout(t *testing.T, get func() api.Rollout, d time.Duration, what string, ok func(api.Rollout) bool) api.Rollout {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r := get()
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout not %s within %v: %s %s, wave %d %+v", what, d, r.State, r.Reason, r.Current+1, r.Waves)
		}
		time.Sleep(time.Second)
	}
}

// waitInstalled waits for g's installed system to print its marker (it
// then powers off) and records it.
func (l *installLab) waitInstalled(ctx context.Context, t *testing.T, g *rolloutGuest, start time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		b, _ := os.ReadFile(g.serial)
		text := ansiColour.ReplaceAllString(string(b), "")
		if i := strings.Index(text, "OSIM-INSTALLED"); i >= 0 {
			line, _, _ := strings.Cut(text[i:], "\n")
			g.marker = strings.TrimSpace(line)
			t.Logf("%v: %s installed: %s", time.Since(start).Round(time.Second), g.name, g.marker)
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s: no OSIM-INSTALLED within 10 minutes; serial tail:\n%s\nosim-bootd log tail:\n%s", g.name,
				tail(strings.ReplaceAll(text, "\r", ""), 3000), l.logTail("osim-bootd", 2000))
		}
		time.Sleep(time.Second)
	}
}

// poweredOn reports whether g's machine runs (or ever ran, for a BMC's).
func (g *rolloutGuest) poweredOn(t *testing.T) bool {
	t.Helper()
	if g.bmc != nil {
		return g.bmc.GuestPID() > 0 || len(g.bmc.Boots()) > 0
	}
	return strings.TrimSpace(virtlab.Virsh(t, "domstate", g.domain)) != "shut off"
}

// defineDomain defines a shut-off libvirt domain for g on the lab's
// bridge, booting its disk (the power driver makes it network first).
func defineDomain(t *testing.T, g *guest, name string) {
	t.Helper()
	fw, nic := "", "<model type='e1000'/><rom file='/usr/lib/ipxe/qemu/pxe-e1000.rom'/>"
	if g.arch != "bios" {
		fw = "<loader readonly='yes' type='rom'>/usr/share/ovmf/OVMF.fd</loader>"
		nic = "<model type='virtio'/><rom enabled='no'/>"
	}
	xml := fmt.Sprintf(`<domain type='qemu'><name>%s</name><memory unit='MiB'>768</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type>%s<boot dev='hd'/></os>
<features><acpi/><apic/></features>
<sysinfo type='fwcfg'><entry name='opt/org.tianocore/IPv6PXESupport'>no</entry><entry name='opt/org.tianocore/IPv6Support'>no</entry></sysinfo>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<disk type='file' device='disk'><driver name='qemu' type='raw' cache='unsafe'/><source file='%s'/><target dev='vda' bus='virtio'/><serial>OSIMLAB-%s</serial></disk>
<interface type='bridge'><source bridge='br0'/><mac address='%s'/>%s</interface>
<serial type='file'><source path='%s'/><target port='0'/></serial>
<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
</devices></domain>`, name, fw, g.disk, strings.ToUpper(g.name), g.mac, nic, g.serial)
	f := filepath.Join(t.TempDir(), name+".xml")
	if err := os.WriteFile(f, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	virtlab.Virsh(t, "define", f)
	t.Cleanup(func() {
		exec.Command("virsh", "-c", virtlab.URI, "destroy", name).Run()
		exec.Command("virsh", "-c", virtlab.URI, "undefine", name).Run()
	})
}
