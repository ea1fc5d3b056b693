package lab

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/internal/testlab"
	"osim/internal/virtlab"
)

// The Vagrant lab (issue 16): the top-level Vagrantfile's box-less PXE
// targets, made by vagrant-libvirt, reimaged by osim.

// needVagrant skips (fails under CI=true) without vagrant and its libvirt
// provider (Debian's vagrant and vagrant-libvirt).
func needVagrant(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("vagrant"); err != nil {
		testlab.Unavailable(t, "the Vagrant lab needs vagrant (apt-get install vagrant vagrant-libvirt)")
	}
	cmd := exec.Command("vagrant", "plugin", "list")
	cmd.Env = vagrantEnv(t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "vagrant-libvirt") {
		testlab.Unavailable(t, "the Vagrant lab needs vagrant's libvirt provider (apt-get install vagrant-libvirt): vagrant plugin list: %v\n%s", err, out)
	}
}

// vagrantEnv is the environment vagrant runs with: its state (VAGRANT_HOME,
// the machines' .vagrant) under dir, so nothing of the user's is touched
// and nothing lands in the checkout; no update check (no network).
func vagrantEnv(dir string, extra ...string) []string {
	env := append(os.Environ(),
		"VAGRANT_HOME="+filepath.Join(dir, "vagrant-home"),
		"VAGRANT_DOTFILE_PATH="+filepath.Join(dir, "vagrant-machines"),
		"VAGRANT_DEFAULT_PROVIDER=libvirt",
		"VAGRANT_CHECKPOINT_DISABLE=1")
	return append(env, extra...) // later entries win
}

// vagrant runs `vagrant args...` on the repository's Vagrantfile.
func vagrant(ctx context.Context, env []string, args ...string) ([]byte, error) {
	repo, _ := filepath.Abs("../..")
	cmd := exec.CommandContext(ctx, "vagrant", args...)
	cmd.Dir = repo
	cmd.Env = env
	return cmd.CombinedOutput()
}

// TestVagrantfileValidates runs `vagrant validate` on the top-level
// Vagrantfile with the settings it reads from the environment, and checks
// that a wrong setting is refused by name.
func TestVagrantfileValidates(t *testing.T) {
	needVagrant(t)
	for _, c := range []struct {
		name string
		env  []string
		fail string // "" when it must validate
	}{
		{name: "defaults"},
		{name: "one-bios-target", env: []string{"OSIM_LAB_N=1", "OSIM_LAB_FIRMWARE=bios", "OSIM_LAB_MEMORY=768"}},
		{name: "three-uefi-targets", env: []string{"OSIM_LAB_N=3", "OSIM_LAB_FIRMWARE=uefi", "OSIM_LAB_MEMORY=1024", "OSIM_LAB_NET=10.99.1"}},
		{name: "unknown-firmware", env: []string{"OSIM_LAB_FIRMWARE=efi"}, fail: "OSIM_LAB_FIRMWARE=efi: want bios or uefi"},
		{name: "no-targets", env: []string{"OSIM_LAB_N=0"}, fail: "OSIM_LAB_N=0: want 1..250"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := vagrant(t.Context(), vagrantEnv(t.TempDir(), c.env...), "validate")
			switch {
			case c.fail == "" && err != nil:
				t.Fatalf("vagrant validate: %v\n%s", err, out)
			case c.fail != "" && err == nil:
				t.Fatalf("vagrant validate passed with %v\n%s", c.env, out)
			case c.fail != "" && !strings.Contains(string(out), c.fail):
				t.Fatalf("vagrant validate with %v: the error does not say %q:\n%s", c.env, c.fail, out)
			}
		})
	}
}

// TestVagrantLabReimagesAVMThroughARollout brings up one target of the
// Vagrantfile with `vagrant up` (vagrant-libvirt, QEMU/TCG, a libvirtd the
// test starts in its namespace): no box, an empty disk, on the isolated
// libvirt network vagrant makes. The test switches it off, registers it
// with the power spec {driver: libvirt, domain: <vagrant's domain>} and
// starts a rollout: osim-bootd's agent sets the domain's boot order to
// network first and powers it on through virsh; the VM PXE boots from
// osim-bootd (full DHCP on the libvirt network's bridge), the osim
// installer writes the test OS image onto its disk and reboots it, and
// the installed system prints its marker on the serial console (a file,
// through libvirt) and powers off.
func TestVagrantLabReimagesAVMThroughARollout(t *testing.T) {
	if testing.Short() {
		t.Skip("brings up a VM with vagrant and reimages it under TCG (several minutes)")
	}
	needLab(t)
	needInstallTools(t)
	needVagrant(t)
	firmware, arch := "bios", "bios"
	if os.Getenv("OSIM_LAB_FIRMWARE") == "uefi" {
		firmware, arch = "uefi", "efi-x64"
	}
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	bin := buildLabBinaries(t)
	l := newInstallLab(t, bin)
	// Vagrant's libvirt network takes the place and the address
	// (10.77.0.1/24) of the install lab's bridge, so the install lab's
	// manager and osim-bootd serve it unchanged.
	testlab.RunIP(t, "-n", l.ns.Name, "link", "del", "br0")
	virtlab.Start(t, l.ns)

	// Names of the test's own, never a user's lab's.
	const (
		name   = "osim-vtest"
		domain = name + "-target1"
		mac    = "52:54:00:4f:53:01" // the Vagrantfile's target1
	)
	// QEMU runs as libvirt-qemu: it must reach its disk under the
	// test's directories, which t.TempDir makes 0700.
	for _, d := range []string{filepath.Dir(l.dir), l.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pool, serials := filepath.Join(l.dir, "pool"), filepath.Join(l.dir, "serial")
	for _, d := range []string{pool, serials} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removeLibvirtLeftovers(domain, name) // of a run that was killed
	virtlab.Virsh(t, "pool-create-as", name, "dir", "--target", pool)
	env := vagrantEnv(l.dir, "OSIM_LAB_N=1", "OSIM_LAB_MEMORY=768", "OSIM_LAB_FIRMWARE="+firmware, "OSIM_LAB_DISK=1G",
		"OSIM_LAB_NET=10.77.0", "OSIM_LAB_NETWORK="+name, "OSIM_LAB_POOL="+name, "OSIM_LAB_PREFIX="+name+"-",
		"OSIM_LAB_SERIAL_DIR="+serials)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if out, err := vagrant(ctx, env, "destroy", "-f"); err != nil {
			t.Errorf("vagrant destroy: %v\n%s", err, out)
		}
		removeLibvirtLeftovers(domain, name)
	})

	upStart := time.Now()
	upCtx, upCancel := context.WithTimeout(ctx, 3*time.Minute)
	out, err := vagrant(upCtx, env, "up")
	upCancel()
	if err != nil {
		t.Fatalf("vagrant up: %v\n%s", err, out)
	}
	up := time.Since(upStart)
	// vagrant starts the VM; with nothing on its disk it has nothing to
	// boot yet. Off, so that it is osim that powers it on.
	virtlab.Virsh(t, "destroy", domain)
	if st := strings.TrimSpace(virtlab.Virsh(t, "domstate", domain)); st != "shut off" {
		t.Fatalf("%s is %q after virsh destroy", domain, st)
	}

	c := l.startManagerAndBootd(ctx)
	_, osImg, raw := l.buildAndRegisterImages(ctx, c)
	g := &guest{name: "target1", arch: arch, mac: mac, diskSize: 1 << 30,
		disk: filepath.Join(pool, domain+"-vda.raw"), serial: filepath.Join(serials, "target1.log")}
	tg, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: guestHostname(g), MACs: []string{mac}, Arch: arch, Site: labSite,
		Labels: map[string]string{"lab": "vagrant"}, Power: &api.PowerSpec{Driver: "libvirt", Domain: domain}})
	if err != nil {
		t.Fatal(err)
	}
	const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOsimVagrantLabKeyForTheTest osim@vagrant"
	var ro api.Rollout
	req := api.RolloutRequest{Orders: api.OrderRequest{Selector: "lab=vagrant", Image: osImg.ID, All: true,
		Params: map[string]string{"ssh_authorized_keys": sshKey}}, Policy: api.RolloutPolicy{WaveSize: 1}}
	if err := c.Do(ctx, "POST", "/rollouts", nil, req, &ro); err != nil {
		t.Fatalf("rollout: %v", err)
	}
	rolloutStart := time.Now()

	g.marks = guestMilestones[:]
	g.milestones = make([]time.Duration, len(g.marks))
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() { watchSerial(g, rolloutStart, stop, func() {}); close(watched) }()
	// The installed system powers off after its marker: wait for the
	// rollout to end and the domain to be off again.
	deadline := time.Now().Add(8 * time.Minute)
	for {
		if err := c.Do(ctx, "GET", "/rollouts/"+url.PathEscape(ro.ID), nil, nil, &ro); err != nil {
			t.Fatal(err)
		}
		st, _ := exec.Command("virsh", "-c", virtlab.URI, "domstate", domain).Output()
		if ro.State != api.RolloutRunning && strings.TrimSpace(string(st)) == "shut off" {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	g.elapsed = time.Since(rolloutStart)
	close(stop)
	<-watched
	serial, _ := os.ReadFile(g.serial)
	for _, line := range strings.Split(string(serial), "\n") {
		if i := strings.Index(line, "OSIM-INSTALLED"); i >= 0 {
			g.marker = strings.TrimSpace(line[i:])
		}
	}
	if ro.State != api.RolloutDone || g.marker == "" {
		t.Fatalf("rollout %s is %s (%s) after %v, marker %q; serial tail:\n%s\nosim-bootd log tail:\n%s",
			ro.ID, ro.State, ro.Reason, g.elapsed.Round(time.Second), g.marker,
			tail(strings.ReplaceAll(string(serial), "\r", ""), 3000), l.logTail("osim-bootd", 3000))
	}
	t.Logf("%s (%s): vagrant up %v; from the rollout's start (osim powers it on): the installer at %v, its reboot at %v, the installed system's marker at %v; from vagrant up (with the manager, boot server and images in between) to the marker %v: %s",
		domain, firmware, up.Round(100*time.Millisecond), g.milestones[0].Round(time.Second), g.milestones[1].Round(time.Second),
		g.milestones[2].Round(time.Second), (rolloutStart.Sub(upStart) + g.milestones[2]).Round(time.Second), g.marker)
	if want := "hostname=" + guestHostname(g); !strings.Contains(g.marker, want) || !strings.Contains(g.marker, "AAAAC3NzaC1lZDI1NTE5AAAAIOsimVagrantLabKeyForTheTest") {
		t.Errorf("marker %q lacks %q or the order's SSH key", g.marker, want)
	}

	// osim powered it: the rollout's power request ran on the boot
	// server, with the boot order set network first (os-level).
	var prs []api.PowerRequest
	if err := c.Do(ctx, "GET", "/targets/"+url.PathEscape(tg.ID)+"/power", nil, nil, &prs); err != nil {
		t.Fatal(err)
	}
	if len(prs) != 1 || prs[0].Action != "cycle" || !prs[0].NetworkBoot || prs[0].State != api.PowerDone || prs[0].BootServer == "" {
		t.Errorf("power requests of %s: %+v, want one cycle with network boot, done by the boot server", domain, prs)
	}
	xml := virtlab.Virsh(t, "dumpxml", "--inactive", domain)
	if i, j := strings.Index(xml, "<boot dev='network'/>"), strings.Index(xml, "<boot dev='hd'/>"); i < 0 || j < i {
		t.Errorf("%s does not boot network first:\n%s", domain, xml)
	}
	orders, err := c.ListOrders(ctx, "", tg.ID, "", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(orders.Orders) != 1 {
		t.Fatalf("orders of %s: %+v", domain, orders.Orders)
	}
	var path []api.OrderState
	for _, h := range orders.Orders[0].History {
		path = append(path, h.To)
	}
	if want := []api.OrderState{api.OrderPending, api.OrderStaged, api.OrderBooting, api.OrderInstalling, api.OrderDone}; fmt.Sprint(path) != fmt.Sprint(want) {
		t.Errorf("order %s: states %v, want %v", orders.Orders[0].ID, path, want)
	}
	tg, err = c.GetTarget(ctx, tg.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkInventory(t, g, tg.Facts)
	checkDiskHoldsImage(t, g, raw)
}

// removeLibvirtLeftovers removes the test's domain and network if
// libvirt still has them (libvirt keeps definitions in /etc/libvirt).
func removeLibvirtLeftovers(domain, network string) {
	for _, args := range [][]string{{"destroy", domain}, {"undefine", domain}, {"net-destroy", network}, {"net-undefine", network}} {
		exec.Command("virsh", append([]string{"-c", virtlab.URI}, args...)...).Run()
	}
}
