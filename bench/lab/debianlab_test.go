package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/internal/testlab"
	"osim/ips/debian"
	"osim/ips/diskimage"
)

// debianMarks time a Debian reimage on the serial console: the
// installer runs, it reboots, the installed system's systemd starts
// ("Welcome to Debian GNU/Linux 12 (bookworm)!"), the serial getty
// prompts. multi-user.target is asked over SSH instead: systemd prints no
// status on the console while a getty runs there (serial-getty@ttyS0 is
// the console), and multi-user comes after cloud-init's last stage, later
// than the prompt.
var debianMarks = []string{"osim-installer: mode install", "osim-installer: rebooting", "Debian GNU/Linux 12 (bookworm)", "login:"}

// ipsCache is where debootstrap's tarballs are kept between runs
// (OSIM_IPS_CACHE overrides).
func ipsCache() string {
	if c := os.Getenv("OSIM_IPS_CACHE"); c != "" {
		return c
	}
	return "/var/tmp/osim-ips-cache"
}

// TestDebianImageReimagesAndBootsToSSH is issue 14's proof (`make
// lab-reimage`): a Debian 12 image built here with ips/debian
// (debootstrap from the machine's configured archive) and
// ips/diskimage, registered through the manager, installed by the osim
// installer on a BIOS and a UEFI guest in one mass order whose
// ssh_authorized_keys is a key pair made here; each installed system
// boots systemd to multi-user, takes the MDB's hostname from the NoCloud
// seed and lets the key log in as root over SSH from the lab's
// namespace, where `hostname` prints the MDB's name.
func TestDebianImageReimagesAndBootsToSSH(t *testing.T) {
	if os.Getenv("OSIM_LAB_FULL") != "1" {
		t.Skip("builds a Debian image (debootstrap from the archive) and reimages two QEMU guests (~15 min): set OSIM_LAB_FULL=1 (make lab-reimage)")
	}
	needLab(t)
	for _, tool := range [][2]string{{"mkfs.vfat", "dosfstools"}, {"mcopy", "mtools"}, {"syslinux", "syslinux"}, {"mke2fs", "e2fsprogs"},
		{"debootstrap", "debootstrap"}, {"ssh", "openssh-client"}, {"ssh-keygen", "openssh-client"}} {
		testlab.RequireTool(t, tool[0], tool[1])
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Minute)
	defer cancel()
	bin := buildLabBinaries(t)
	l := newInstallLab(t, bin)
	c := l.startManagerAndBootd(ctx)
	l.buildAndRegisterBootImage(ctx, c)
	img := l.buildAndRegisterDebian(ctx, c)

	key := filepath.Join(l.dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "osim-lab", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	guests := []*guest{
		{name: "bios", arch: "bios", mac: "52:54:00:77:02:01", address: "10.77.0.61", diskSize: 4 << 30, mem: 1536, marks: debianMarks},
		{name: "uefi", arch: "efi-x64", mac: "52:54:00:77:02:02", address: "10.77.0.62", diskSize: 4 << 30, mem: 1536, marks: debianMarks},
	}
	_, ids := orderGuests(ctx, t, c, guests, img, map[string]string{"ssh_authorized_keys": strings.TrimSpace(string(pub))})

	var wg sync.WaitGroup
	results := make([]sshResult, len(guests))
	for i, g := range guests {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = l.reimageToSSH(ctx, g, key, 25*time.Minute) }()
	}
	wg.Wait()
	for i, g := range guests {
		r := results[i]
		if r.err != nil {
			serial, _ := os.ReadFile(g.serial)
			t.Errorf("%s: %v\nserial tail:\n%s\nosim-bootd log tail:\n%s", g.name, r.err,
				tail(strings.ReplaceAll(string(serial), "\r", ""), 3000), l.logTail("osim-bootd", 1500))
			continue
		}
		t.Logf("%s: power-on to SSH %v; installer up %v, rebooting %v, systemd up %v, login prompt %v, multi-user.target active %v (%s); ssh hostname: %q",
			g.name, r.ssh.Round(time.Second), g.milestones[0].Round(time.Second), g.milestones[1].Round(time.Second),
			g.milestones[2].Round(time.Second), g.milestones[3].Round(time.Second), r.multiUser.Round(time.Second), r.state, r.hostname)
		if r.hostname != guestHostname(g) {
			t.Errorf("%s: ssh hostname printed %q, want the MDB's %q", g.name, r.hostname, guestHostname(g))
		}
		if r.multiUser == 0 {
			t.Errorf("%s: multi-user.target not active within 5 minutes of SSH (systemctl: %s)", g.name, r.state)
		}
		for i, m := range g.milestones {
			if m == 0 {
				t.Errorf("%s: the serial console never showed %q", g.name, g.marks[i])
			}
		}
	}
	for _, id := range ids {
		o, err := c.GetOrder(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if o.State != api.OrderDone {
			t.Errorf("order %s is %s (%s), want done", id, o.State, o.Message)
		}
	}
}

// buildAndRegisterDebian builds the Debian image (ips/debian, then
// ips/diskimage) and registers it as a disk-format OS image.
func (l *installLab) buildAndRegisterDebian(ctx context.Context, c *api.Client) api.Image {
	t := l.t
	t.Helper()
	start := time.Now()
	res, err := debian.Build(ctx, debian.Options{Out: filepath.Join(l.dir, "debian"), Cache: ipsCache()})
	if err != nil {
		t.Fatalf("debian build: %v", err)
	}
	built := time.Since(start)
	start = time.Now()
	d, err := diskimage.Build(ctx, diskimage.Spec{Out: filepath.Join(l.dir, "debian-12.img"), Kernel: res.Kernel, Initrd: res.Initrd,
		Cmdline: res.Cmdline, RootDir: res.Root, RootSize: res.RootSize})
	if err != nil {
		t.Fatalf("debian disk image: %v", err)
	}
	t.Logf("debian 12 image: debootstrap and configure %v (packages cached: %v), %d packages, root tree %d MiB, kernel %s; "+
		"disk assembled and compressed in %v: raw %d MiB (root partition %d MiB), zstd %d MiB",
		built.Round(time.Second), res.Cached, len(res.Packages), res.Bytes>>20, res.Release, time.Since(start).Round(time.Second),
		d.Raw.Size>>20, res.RootSize>>20, d.Compressed.Size>>20)
	if err := os.RemoveAll(res.Root); err != nil { // 1 GB the lab needs no more
		t.Logf("removing the root tree: %v", err)
	}
	return l.registerDiskImage(ctx, c, "debian-12", d)
}

type sshResult struct {
	ssh       time.Duration // power-on to the first successful ssh
	hostname  string
	multiUser time.Duration // power-on to multi-user.target active (0: not within 5 min)
	state     string        // systemctl is-system-running then
	err       error
}

// reimageToSSH powers g on and, once the installer has rebooted into the
// installed system, tries `ssh root@<g.address> hostname` with key every
// few seconds from the lab's namespace until it answers or the timeout;
// then it stops the guest.
func (l *installLab) reimageToSSH(ctx context.Context, g *guest, key string, timeout time.Duration) sshResult {
	gctx, stop := context.WithCancel(ctx)
	defer stop()
	start := time.Now()
	exited := make(chan error, 1)
	go func() {
		out, err := l.boot(gctx, g, timeout)
		if err != nil && gctx.Err() == nil {
			err = fmt.Errorf("qemu: %v %s", err, bytes.TrimSpace(out))
		} else {
			err = nil
		}
		exited <- err
	}()
	var r sshResult
	var last string
	for {
		select {
		case err := <-exited:
			if g.err != nil {
				err = g.err
			}
			return sshResult{err: fmt.Errorf("the guest stopped before SSH answered (last ssh: %s): %v", last, err)}
		case <-time.After(5 * time.Second):
		}
		serial, _ := os.ReadFile(filepath.Join(l.dir, g.name+".serial"))
		if !bytes.Contains(serial, []byte("osim-installer: rebooting")) {
			continue
		}
		out, err := l.ssh(g, key, "hostname")
		if err == nil {
			r.ssh = time.Since(start)
			r.hostname = strings.TrimSpace(string(out))
			// multi-user comes after cloud-init's last stage, which may
			// still run when SSH already answers
			for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Second) {
				out, _ := l.ssh(g, key, "systemctl is-active multi-user.target; systemctl is-system-running; systemctl --failed --no-legend")
				if r.state = strings.Join(strings.Fields(string(out)), " "); strings.HasPrefix(r.state, "active ") {
					r.multiUser = time.Since(start)
					break
				}
			}
			stop()
			if err := <-exited; err != nil {
				r.err = err
			}
			return r
		}
		last = fmt.Sprintf("%v: %s", err, bytes.TrimSpace(out))
		if time.Since(start) > timeout {
			stop()
			<-exited
			return sshResult{err: fmt.Errorf("no SSH login within %v (last: %s)", timeout, last)}
		}
	}
}

// ssh runs command as root on g over SSH with key, from the lab's
// namespace (no host key check: the guest made its keys at first boot).
func (l *installLab) ssh(g *guest, key, command string) ([]byte, error) {
	return l.ns.Command("timeout", "25", "ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "root@"+g.address, command).CombinedOutput()
}
