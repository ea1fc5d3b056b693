// Package bootimage builds the osim installer's boot image: Debian's
// kernel and an initramfs whose /init is the (static) osim installer,
// with a static busybox for procedures (/bin/sh), the kernel modules a
// target needs (dependencies first, listed in /etc/osim/modules) and the
// directories the installer mounts on; optionally iPXE's network boot
// programs. It writes the files and a manifest.json into one directory.
package bootimage

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"osim/controlplane/api"
	"osim/ips/initramfs"
	"osim/ips/kernel"
	"osim/ips/kmod"
)

// DefaultModules are the NIC, disk and file system drivers the installer
// may need on a target; the ones the kernel lacks are skipped. ext4 pulls
// crc32c in through its soft dependency. virtio_rng seeds the kernel's
// random pool on virtual machines without RDRAND: DHCP's transaction id
// comes from getrandom, which blocks until the pool is seeded.
var DefaultModules = []string{"virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi", "e1000", "e1000e", "igb", "ixgbe",
	"ahci", "nvme", "sd_mod", "ext4", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "virtio_rng"}

// DefaultCmdline is the image's kernel command line template; the boot
// server appends the osim.* keys. The serial console comes last: the last
// console= is /dev/console, where the installer (PID 1) prints its steps.
const DefaultCmdline = "console=tty0 console=ttyS0,115200 panic=-1"

// ModulesList is where the initramfs lists its module files (relative to
// /lib/modules/RELEASE/) in load order, one a line.
const ModulesList = "etc/osim/modules"

// File names in the output directory.
const (
	KernelName   = "vmlinuz"
	InitrdBase   = "osim-installer.initrd" // + .gz or .zst
	ManifestName = "manifest.json"
)

// NBPs are iPXE builds from Debian's ipxe package, by firmware arch.
var NBPs = []NBP{{Arch: "bios", Path: "/usr/lib/ipxe/undionly.kpxe"}, {Arch: "efi-x64", Path: "/usr/lib/ipxe/snponly.efi"}}

// NBP is a network boot program for one firmware.
type NBP struct{ Arch, Path string }

// Options say what goes in. Zero fields take the defaults.
type Options struct {
	Out         string // output directory (created)
	Kernel      string // default: the newest /boot/vmlinuz-*
	ModulesDir  string // default: /lib/modules/<the kernel's release>
	Installer   string // the static osim-installer binary (required)
	Busybox     string // a static busybox; default /bin/busybox
	Modules     []string
	Compression string // initramfs.Gzip (default) or initramfs.Zstd
	// KernelConfig is checked for the compression (default
	// /boot/config-RELEASE; missing: not checked).
	KernelConfig string
	Cmdline      string
	NBPs         []NBP // copied in as files of role nbp
	ToolVersion  string
}

// Manifest records what a build made and from what.
type Manifest struct {
	Tool           string          `json:"tool"`
	ToolVersion    string          `json:"tool_version"`
	Kind           string          `json:"kind"`
	Cmdline        string          `json:"cmdline"`
	KernelRelease  string          `json:"kernel_release"`
	Compression    string          `json:"compression"`
	Modules        []string        `json:"modules"` // files in load order
	ModulesMissing []string        `json:"modules_missing,omitempty"`
	ModulesBuiltin []string        `json:"modules_builtin,omitempty"`
	Installer      Input           `json:"installer"`
	Busybox        Input           `json:"busybox"`
	Files          []api.ImageFile `json:"files"`
}

// Input is one input file by content.
type Input struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// ErrNotStatic: the installer or busybox would need a dynamic loader the
// initramfs does not have.
var ErrNotStatic = errors.New("bootimage: not a static executable")

// Build writes the boot image into o.Out and returns its manifest (also
// written as manifest.json).
func Build(ctx context.Context, o Options) (Manifest, error) {
	m := Manifest{Tool: "osim-ips", ToolVersion: o.ToolVersion, Kind: api.KindBoot}
	rel, err := o.defaults()
	if err != nil {
		return m, err
	}
	m.KernelRelease, m.Cmdline, m.Compression = rel, o.Cmdline, o.Compression
	for _, x := range []struct {
		in   *Input
		path string
	}{{&m.Installer, o.Installer}, {&m.Busybox, o.Busybox}} {
		if err := requireStatic(x.path); err != nil {
			return m, err
		}
		if *x.in, err = hashFile(x.path); err != nil {
			return m, err
		}
	}
	tree, err := kmod.Open(o.ModulesDir)
	if err != nil {
		return m, err
	}
	sel := tree.Resolve(o.Modules)
	m.Modules, m.ModulesMissing, m.ModulesBuiltin = sel.Files, sel.Missing, sel.Builtin
	a, err := archive(o, rel, sel.Files)
	if err != nil {
		return m, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return m, fmt.Errorf("bootimage: %w", err)
	}
	initrd := InitrdBase + initramfs.Ext(o.Compression)
	if err := writeInitrd(filepath.Join(o.Out, initrd), a, o.Compression); err != nil {
		return m, err
	}
	if err := copyFile(o.Kernel, filepath.Join(o.Out, KernelName)); err != nil {
		return m, err
	}
	files := []api.ImageFile{{Name: KernelName, Role: api.RoleKernel}, {Name: initrd, Role: api.RoleInitrd}}
	for _, n := range o.NBPs {
		name := filepath.Base(n.Path)
		if err := copyFile(n.Path, filepath.Join(o.Out, name)); err != nil {
			return m, fmt.Errorf("%w (Debian package ipxe)", err)
		}
		files = append(files, api.ImageFile{Name: name, Role: api.RoleNBP, Arch: n.Arch})
	}
	for _, f := range files {
		in, err := hashFile(filepath.Join(o.Out, f.Name))
		if err != nil {
			return m, err
		}
		f.SHA256, f.Size = in.SHA256, in.Size
		m.Files = append(m.Files, f)
	}
	return m, writeManifest(filepath.Join(o.Out, ManifestName), m)
}

func (o *Options) defaults() (string, error) {
	if o.Out == "" || o.Installer == "" {
		return "", fmt.Errorf("bootimage: the output directory and the installer are required")
	}
	if o.Kernel == "" {
		k, err := kernel.Newest("/boot")
		if err != nil {
			return "", err
		}
		o.Kernel = k
	}
	rel, err := kernel.Release(o.Kernel)
	if err != nil {
		return "", err
	}
	if o.ModulesDir == "" {
		o.ModulesDir = kernel.ModulesDir(rel)
	}
	if o.Busybox == "" {
		o.Busybox = "/bin/busybox"
	}
	if o.Modules == nil {
		o.Modules = DefaultModules
	}
	if o.Compression == "" {
		o.Compression = initramfs.Gzip
	}
	if o.Cmdline == "" {
		o.Cmdline = DefaultCmdline
	}
	if o.KernelConfig == "" {
		o.KernelConfig = kernel.Config(filepath.Dir(o.Kernel), rel)
	}
	if _, err := os.Stat(o.KernelConfig); err == nil {
		ok, err := initramfs.KernelSupports(o.KernelConfig, o.Compression)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("bootimage: kernel %s cannot unpack a %s initramfs (%s has no CONFIG_RD_%s=y)", rel, o.Compression, o.KernelConfig, strings.ToUpper(o.Compression))
		}
	}
	return rel, nil
}

// archive lays out the initramfs.
func archive(o Options, release string, modules []string) (*initramfs.Archive, error) {
	a := initramfs.New()
	errs := []error{
		a.CopyFile("init", o.Installer, 0o755),
		a.CopyFile("bin/busybox", o.Busybox, 0o755),
		a.Symlink("bin/sh", "busybox"),
		a.CharDev("dev/console", 0o600, 5, 1),
		a.File(ModulesList, []byte(strings.Join(modules, "\n")+"\n"), 0o644),
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "mnt"} {
		errs = append(errs, a.Dir(d, 0o755))
	}
	for _, f := range modules {
		errs = append(errs, a.CopyFile(filepath.Join("lib/modules", release, f), filepath.Join(o.ModulesDir, f), 0o644))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("bootimage: %w", err)
	}
	return a, nil
}

func writeInitrd(path string, a *initramfs.Archive, compression string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bootimage: %w", err)
	}
	defer f.Close()
	if err := initramfs.Write(f, a, compression); err != nil {
		return err
	}
	return f.Close()
}

// requireStatic refuses an ELF executable with an interpreter: in the
// initramfs there is no ld.so to run it.
func requireStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("bootimage: %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: %s needs a dynamic loader (build it with CGO_ENABLED=0; busybox: Debian package busybox-static)", ErrNotStatic, path)
		}
	}
	return nil
}

func hashFile(path string) (Input, error) {
	f, err := os.Open(path)
	if err != nil {
		return Input{}, fmt.Errorf("bootimage: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Input{}, fmt.Errorf("bootimage: hashing %s: %w", path, err)
	}
	return Input{Path: path, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("bootimage: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("bootimage: %w", err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("bootimage: copying %s to %s: %w", src, dst, err)
	}
	return out.Close()
}

func writeManifest(path string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("bootimage: manifest: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bootimage: %w", err)
	}
	return nil
}

// ReadManifest reads dir's manifest.json.
func ReadManifest(dir string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return m, fmt.Errorf("bootimage: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("bootimage: %s: %w", filepath.Join(dir, ManifestName), err)
	}
	return m, nil
}
