package debian

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"osim/internal/testlab"
	"osim/ips/diskimage"
)

// testCache is where the build tests keep debootstrap's tarballs
// (OSIM_IPS_CACHE overrides): shared by this package's test and the lab.
func testCache() string {
	if c := os.Getenv("OSIM_IPS_CACHE"); c != "" {
		return c
	}
	return "/var/tmp/osim-ips-cache"
}

// requireBuild skips unless the full lab is asked for (OSIM_LAB_FULL=1:
// the first build downloads ~150 MB from the archive) or a cached
// tarball makes the build local; it needs root and debootstrap.
func requireBuild(t *testing.T, o Options) {
	t.Helper()
	if testing.Short() {
		t.Skip("debootstraps a Debian system (minutes)")
	}
	full := os.Getenv("OSIM_LAB_FULL") == "1"
	if !full {
		d, err := o.withDefaults()
		if err != nil {
			t.Skipf("no cached debootstrap and OSIM_LAB_FULL unset (%v): skipped", err)
		}
		if _, err := os.Stat(d.cacheFile()); err != nil {
			t.Skipf("no cached debootstrap tarball (%s) and OSIM_LAB_FULL unset: skipped (OSIM_LAB_FULL=1 downloads ~150 MB once)", d.cacheFile())
		}
	}
	testlab.RequireRoot(t, "debootstrap")
	testlab.RequireTool(t, "debootstrap", "debootstrap")
}

// TestBuildMakesABootableDebianRootThatClonesCleanly debootstraps
// bookworm (from the cache when there is one) and checks what the
// builder promises: a kernel and an initramfs able to mount the root on
// virtio, SATA and NVMe, the fstab and command line by label, cloud-init
// on the NoCloud seed only, no host keys, no machine id, no root
// password, apt pointing at the build's archive, nothing left mounted;
// then assembles it with diskimage and checks that setuid bits and
// device nodes survive mke2fs -d.
func TestBuildMakesABootableDebianRootThatClonesCleanly(t *testing.T) {
	o := Options{Out: t.TempDir(), Cache: testCache(), Timezone: "Europe/Berlin", Hostname: "built.example.test"}
	requireBuild(t, o)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := Build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built in %v (cached: %v): %d packages, %d MiB, kernel %s, root size %d MiB",
		time.Since(start).Round(time.Second), res.Cached, len(res.Packages), res.Bytes>>20, res.Release, res.RootSize>>20)
	root := res.Root
	if m, _ := mountsUnder(root); len(m) > 0 {
		t.Errorf("mounts left under the root: %v", m)
	}
	for _, f := range []string{res.Kernel, res.Initrd} {
		if !strings.HasPrefix(f, filepath.Join(root, "boot")+"/") {
			t.Errorf("%s is not under the root's /boot", f)
		}
	}
	if !strings.Contains(res.Cmdline, "root=LABEL="+RootLabel) {
		t.Errorf("command line %q does not name the root by label", res.Cmdline)
	}
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Error(err)
		}
		return string(b)
	}
	if !strings.Contains(read("etc/fstab"), "LABEL="+RootLabel+" / ext4") {
		t.Errorf("fstab does not mount the root by label:\n%s", read("etc/fstab"))
	}
	if m, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*")); len(m) > 0 {
		t.Errorf("host keys baked in: %v", m)
	}
	if s := read("etc/machine-id"); s != "" {
		t.Errorf("machine-id is %q, want empty", s)
	}
	for _, line := range strings.Split(read("etc/shadow"), "\n") {
		if f := strings.Split(line, ":"); f[0] == "root" && len(f) > 1 && f[1] != "*" && f[1] != "!" && f[1] != "!*" {
			t.Errorf("root has a password: %q", f[1])
		}
	}
	if got := read("etc/hostname"); got != "built.example.test\n" {
		t.Errorf("hostname %q", got)
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/localtime")); err != nil || l != "/usr/share/zoneinfo/Europe/Berlin" {
		t.Errorf("localtime → %q (%v)", l, err)
	}
	if cfg := read("etc/cloud/cloud.cfg.d/90_osim.cfg"); !strings.Contains(cfg, "datasource_list: [ NoCloud, None ]") {
		t.Errorf("cloud-init not limited to NoCloud:\n%s", cfg)
	}
	if src := read("etc/apt/sources.list"); !strings.Contains(src, "deb "+res.Mirror+" bookworm main") {
		t.Errorf("apt sources do not name the build's archive %s:\n%s", res.Mirror, src)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service")); err != nil {
		t.Errorf("systemd-networkd not enabled: %v", err)
	}
	pk := strings.Join(res.Packages, "\n")
	for _, p := range []string{"cloud-init=", "openssh-server=", "systemd-sysv=", "linux-image-" + res.Release + "="} {
		if !strings.Contains(pk, "\n"+p) && !strings.HasPrefix(pk, p) {
			t.Errorf("packages lack %s", p)
		}
	}
	if ls, err := exec.Command("lsinitramfs", res.Initrd).Output(); err == nil {
		for _, m := range []string{"virtio_blk.ko", "ahci.ko", "nvme.ko", "ext4.ko"} {
			if !bytes.Contains(ls, []byte("/"+m)) {
				t.Errorf("initramfs lacks %s", m)
			}
		}
	} else {
		t.Logf("lsinitramfs (initramfs-tools-core) not usable here: %v", err)
	}
	checkAssembled(t, ctx, res)
}

// checkAssembled puts the root into a disk image and reads inodes back
// with debugfs: a setuid binary keeps its mode and owner, /dev/null stays
// a character device.
func checkAssembled(t *testing.T, ctx context.Context, res Result) {
	for _, tool := range []string{"mkfs.vfat", "mcopy", "syslinux", "mke2fs", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("%s missing: disk assembly not checked", tool)
			return
		}
	}
	out := filepath.Join(t.TempDir(), "debian.img")
	start := time.Now()
	img, err := diskimage.Build(ctx, diskimage.Spec{Out: out, Kernel: res.Kernel, Initrd: res.Initrd, Cmdline: res.Cmdline,
		RootDir: res.Root, RootSize: res.RootSize, NoCompress: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("assembled in %v: %d MiB raw", time.Since(start).Round(time.Second), img.Raw.Size>>20)
	dev := fmt.Sprintf("%s?offset=%d", out, img.RootOffset)
	for path, want := range map[string]string{"/usr/bin/passwd": "Mode:  04755", "/dev/null": "Type: character special"} {
		st, err := exec.Command("debugfs", "-R", "stat "+path, dev).CombinedOutput()
		if err != nil || !bytes.Contains(st, []byte(want)) {
			t.Errorf("%s in the image: want %q: %v\n%s", path, want, err, st)
		}
	}
}
