// Package testimage builds the small test OS of issue 13: a GPT disk
// that boots under BIOS and UEFI (package diskimage) holding Debian's
// kernel and a busybox initramfs, whose /init loads the disk modules,
// mounts the ext4 root labelled osimroot read-only, reads the cloud-init
// NoCloud seed the osim installer wrote there and prints one line on the
// console, then powers off:
//
//	OSIM-INSTALLED hostname=<local-hostname> ssh_key=<first key>
//	OSIM-INSTALLED hostname=? seed=missing
package testimage

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"osim/ips/diskimage"
	"osim/ips/initramfs"
	"osim/ips/kernel"
	"osim/ips/kmod"
)

//go:embed init.sh
var initScript []byte

// Marker starts the line the test OS prints once booted.
const Marker = "OSIM-INSTALLED"

// Cmdline boots it with the console on the first serial port.
const Cmdline = "console=tty0 console=ttyS0,115200 panic=-1"

// Modules reach a virtio, SATA or NVMe disk and its ext4 (crc32c through
// ext4's soft dependency).
var Modules = []string{"virtio_pci", "virtio_blk", "virtio_scsi", "ahci", "sd_mod", "nvme", "ext4"}

// applets are the busybox links the init script and a shell need.
var applets = []string{"sh", "mount", "umount", "insmod", "findfs", "sleep", "sed", "awk", "head", "tr", "uname", "poweroff", "cat", "ls"}

// Options say where the pieces come from; zero fields take Debian's.
type Options struct {
	Out        string // output directory (created)
	Kernel     string // default: the newest /boot/vmlinuz-*
	ModulesDir string // default: /lib/modules/<the kernel's release>
	Busybox    string // a static busybox; default /bin/busybox
	// Seed, when set, is written into the root as a NoCloud seed (the
	// osim installer does this on a target; tests do it before assembly).
	Seed *Seed
	// Compression of the initramfs: initramfs.Gzip (default) or Zstd.
	Compression string
}

// Seed is first-boot data as the installer writes it.
type Seed struct {
	Hostname string
	SSHKeys  []string
}

// Result is the built disk and where its pieces came from.
type Result struct {
	Disk    diskimage.Result `json:"disk"`
	Release string           `json:"kernel_release"`
	Modules []string         `json:"modules"` // module files in load order
}

// Build makes Out/initrd.img, Out/root/ and the disk Out/osim-test.img
// (with .zst).
func Build(ctx context.Context, o Options) (Result, error) {
	var res Result
	if o.Out == "" {
		return res, fmt.Errorf("testimage: no output directory")
	}
	if err := o.defaults(); err != nil {
		return res, err
	}
	rel, err := kernel.Release(o.Kernel)
	if err != nil {
		return res, err
	}
	res.Release = rel
	if o.ModulesDir == "" {
		o.ModulesDir = kernel.ModulesDir(rel)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return res, fmt.Errorf("testimage: %w", err)
	}
	initrd := filepath.Join(o.Out, "initrd.img")
	if res.Modules, err = writeInitrd(initrd, o, rel); err != nil {
		return res, err
	}
	root := filepath.Join(o.Out, "root")
	if err := writeRoot(root, o); err != nil {
		return res, err
	}
	res.Disk, err = diskimage.Build(ctx, diskimage.Spec{
		Out: filepath.Join(o.Out, "osim-test.img"), Kernel: o.Kernel, Initrd: initrd, Cmdline: Cmdline,
		RootDir: root, RootSize: 32 * diskimage.MiB, Seed: "osim-test",
	})
	return res, err
}

func (o *Options) defaults() error {
	if o.Kernel == "" {
		k, err := kernel.Newest("/boot")
		if err != nil {
			return err
		}
		o.Kernel = k
	}
	if o.Busybox == "" {
		o.Busybox = "/bin/busybox"
	}
	if o.Compression == "" {
		o.Compression = initramfs.Gzip
	}
	return nil
}

// writeInitrd builds the busybox initramfs and returns its modules.
func writeInitrd(file string, o Options, release string) ([]string, error) {
	tree, err := kmod.Open(o.ModulesDir)
	if err != nil {
		return nil, err
	}
	sel := tree.Resolve(Modules)
	a := initramfs.New()
	errs := []error{
		a.File("init", initScript, 0o755),
		a.CopyFile("bin/busybox", o.Busybox, 0o755),
		a.CharDev("dev/console", 0o600, 5, 1),
		a.File("etc/osim/modules", []byte(strings.Join(sel.Files, "\n")+"\n"), 0o644),
	}
	for _, d := range []string{"proc", "sys", "dev", "mnt", "tmp"} {
		errs = append(errs, a.Dir(d, 0o755))
	}
	for _, ap := range applets {
		errs = append(errs, a.Symlink("bin/"+ap, "busybox"))
	}
	for _, m := range sel.Files {
		errs = append(errs, a.CopyFile(filepath.Join("lib/modules", release, m), filepath.Join(o.ModulesDir, m), 0o644))
	}
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("testimage: %w", err)
		}
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("testimage: %w", err)
	}
	defer f.Close()
	if err := initramfs.Write(f, a, o.Compression); err != nil {
		return nil, err
	}
	return sel.Files, f.Close()
}

// writeRoot lays out the root partition's tree: busybox, os-release and
// the NoCloud seed directory (with the seed, when given).
func writeRoot(root string, o Options) error {
	if err := os.RemoveAll(root); err != nil {
		return fmt.Errorf("testimage: %w", err)
	}
	seed := filepath.Join(root, "var/lib/cloud/seed/nocloud")
	for _, d := range []string{"bin", "etc", "dev", "proc", "sys", "tmp", "mnt", seed} {
		if !filepath.IsAbs(d) {
			d = filepath.Join(root, d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("testimage: %w", err)
		}
	}
	bb, err := os.ReadFile(o.Busybox)
	if err != nil {
		return fmt.Errorf("testimage: busybox: %w", err)
	}
	files := map[string][]byte{
		"bin/busybox":    bb,
		"etc/os-release": []byte("NAME=\"osim test OS\"\nID=osim-test\nPRETTY_NAME=\"osim test OS (busybox)\"\n"),
		"etc/hostname":   []byte("localhost\n"),
	}
	if o.Seed != nil {
		files["var/lib/cloud/seed/nocloud/meta-data"] = []byte(o.Seed.MetaData())
		files["var/lib/cloud/seed/nocloud/user-data"] = []byte(o.Seed.UserData())
	}
	for p, b := range files {
		mode := os.FileMode(0o644)
		if p == "bin/busybox" {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(root, p), b, mode); err != nil {
			return fmt.Errorf("testimage: %w", err)
		}
	}
	if err := os.Symlink("busybox", filepath.Join(root, "bin/sh")); err != nil {
		return fmt.Errorf("testimage: %w", err)
	}
	return nil
}

// MetaData is the seed's meta-data (YAML).
func (s Seed) MetaData() string {
	return fmt.Sprintf("instance-id: %s\nlocal-hostname: %s\n", s.Hostname, s.Hostname)
}

// UserData is the seed's user-data (#cloud-config).
func (s Seed) UserData() string {
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	if len(s.SSHKeys) > 0 {
		b.WriteString("ssh_authorized_keys:\n")
		for _, k := range s.SSHKeys {
			fmt.Fprintf(&b, "  - %s\n", k)
		}
	}
	return b.String()
}
