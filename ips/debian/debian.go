// Package debian builds a Debian root filesystem with debootstrap from the
// machine's configured Debian archive, with a kernel, cloud-init and an SSH
// server, ready for ips/diskimage to assemble into a bootable disk.
//
// debootstrap is the one step that needs root: it unpacks packages as
// their owners, makes device nodes and runs the maintainer scripts in a
// chroot. Everything after it writes files into the tree from Go, or runs
// a tool in the chroot with nothing mounted (update-initramfs, locale-gen,
// systemctl enable).
package debian

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Options say what to build. Zero values take the defaults documented on
// each field.
type Options struct {
	Out      string   // work and output directory (created); the root goes to Out/root
	Suite    string   // default bookworm
	Mirror   string   // default: the first Debian archive URL of the machine's apt configuration
	Packages []string // extra packages
	Kernel   string   // kernel package; default linux-image-amd64
	Locale   string   // default C.UTF-8
	Timezone string   // default Etc/UTC
	Hostname string   // placeholder hostname baked in (cloud-init sets the real one); default debian

	// Cache keeps debootstrap's downloaded packages as one tarball per
	// suite, archive and package set (debootstrap --make-tarball), so a
	// second build downloads nothing; "" downloads every time.
	Cache string
	// AptDir is where the archive is looked up when Mirror is empty;
	// default /etc/apt.
	AptDir string
	// Log receives progress (component=ips); default slog.Default().
	Log *slog.Logger
}

// Result is what Build made.
type Result struct {
	Root   string // the root filesystem directory
	Kernel string // the kernel (a file under Root/boot)
	Initrd string // its initramfs
	// Cmdline is the kernel command line the disk's boot loader needs
	// (root=LABEL=..., console settings).
	Cmdline string
	// Packages lists name=version of every installed package, for the
	// manifest (reproducibility).
	Packages []string

	// Release is the kernel's release (6.1.0-57-amd64).
	Release string
	// Mirror is the archive the packages came from.
	Mirror string
	// Bytes is the tree's allocated size (du); RootSize a root file
	// system size that holds it with room (for diskimage.Spec.RootSize).
	Bytes, RootSize int64
	// Cached says the packages came from Options.Cache, not the archive.
	Cached bool
}

// RootLabel is the root file system's label the image's fstab and
// command line name: what ips/diskimage labels its root by default.
const RootLabel = "osimroot"

// Cmdline boots the root by label, read-only until systemd remounts it
// per fstab, the last console (ttyS0) being /dev/console, and the NICs
// named eth0... so the network configuration needs no names.
const Cmdline = "root=LABEL=" + RootLabel + " ro console=tty0 console=ttyS0,115200 net.ifnames=0"

// Defaults.
const (
	DefaultSuite    = "bookworm"
	DefaultKernel   = "linux-image-amd64"
	DefaultLocale   = "C.UTF-8"
	DefaultTimezone = "Etc/UTC"
	DefaultHostname = "debian"
	DefaultAptDir   = "/etc/apt"
)

// BasePackages are installed in every image, besides the kernel: an init,
// udev, the initramfs generator, cloud-init (NoCloud seed) with growpart,
// an SSH server, and what they need at run time (D-Bus for hostnamectl,
// iproute2 for cloud-init, locales, tzdata). python3-cffi-backend is
// named because debootstrap's resolver follows no virtual package
// (python3-cryptography, under cloud-init, needs python3-cffi-backend-api-*).
var BasePackages = []string{
	"systemd-sysv", "udev", "dbus", "libpam-systemd", "initramfs-tools", "cloud-init", "cloud-guest-utils",
	"openssh-server", "locales", "tzdata", "iproute2", "netbase", "iputils-ping", "python3-cffi-backend",
}

// ErrOptions: an option is malformed.
var ErrOptions = errors.New("debian: bad options")

// ErrNotBuilt is kept for callers of the placeholder: the builder cannot
// run here (not root, debootstrap missing).
var ErrNotBuilt = errors.New("debian: builder not available")

var (
	reSuite    = regexp.MustCompile(`^[a-z][a-z0-9.-]{0,31}$`)
	rePackage  = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`) // Debian policy §5.6.1
	reLocale   = regexp.MustCompile(`^[A-Za-z]+(_[A-Z]+)?(\.[A-Za-z0-9-]+)?(@[a-z]+)?$`)
	reTimezone = regexp.MustCompile(`^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$`)
	reLabel    = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
)

// withDefaults checks o and fills its defaults, naming the option of
// every mistake. The mirror is looked up here.
func (o Options) withDefaults() (Options, error) {
	bad := func(f string, a ...any) (Options, error) {
		return o, fmt.Errorf("%w: "+f, append([]any{ErrOptions}, a...)...)
	}
	if o.Out == "" {
		return bad("Out (the work directory) is required")
	}
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&o.Suite, DefaultSuite)
	def(&o.Kernel, DefaultKernel)
	def(&o.Locale, DefaultLocale)
	def(&o.Timezone, DefaultTimezone)
	def(&o.Hostname, DefaultHostname)
	def(&o.AptDir, DefaultAptDir)
	if o.Log == nil {
		o.Log = slog.Default()
	}
	o.Log = o.Log.With("component", "ips", "builder", "debian")
	if !reSuite.MatchString(o.Suite) {
		return bad("suite %q is not a suite name (bookworm, trixie, stable)", o.Suite)
	}
	if !rePackage.MatchString(o.Kernel) {
		return bad("kernel %q is not a Debian package name", o.Kernel)
	}
	for _, p := range o.Packages {
		if !rePackage.MatchString(p) {
			return bad("package %q is not a Debian package name", p)
		}
	}
	if !reLocale.MatchString(o.Locale) {
		return bad("locale %q is not a locale name (C.UTF-8, en_US.UTF-8)", o.Locale)
	}
	if !reTimezone.MatchString(o.Timezone) || slices.Contains(strings.Split(o.Timezone, "/"), "..") {
		return bad("timezone %q is not a zoneinfo name (Etc/UTC, Europe/Berlin)", o.Timezone)
	}
	for _, l := range strings.Split(o.Hostname, ".") {
		if !reLabel.MatchString(l) {
			return bad("hostname %q is not a host name (RFC 1123)", o.Hostname)
		}
	}
	if o.Mirror == "" {
		m, err := FindMirror(o.AptDir, o.Suite)
		if err != nil {
			return o, err
		}
		o.Mirror = m
	}
	if !usableURI(o.Mirror) {
		return bad("mirror %q is not an http, https or file URL", o.Mirror)
	}
	if u, _ := url.Parse(o.Mirror); u.User != nil {
		return bad("mirror %q holds credentials (use apt's auth.conf)", u.Redacted())
	}
	return o, nil
}

// include is the package set debootstrap installs, sorted and unique.
func (o Options) include() []string {
	p := slices.Concat([]string{o.Kernel}, BasePackages, o.Packages)
	slices.Sort(p)
	return slices.Compact(p)
}

// Build debootstraps o.Suite into o.Out/root and makes it a bootable
// system: see the package comment and the README for what it sets.
// It needs root (debootstrap). An interrupted build (ctx) leaves nothing
// mounted; its partial root stays in o.Out for a look.
func Build(ctx context.Context, o Options) (Result, error) {
	var res Result
	o, err := o.withDefaults()
	if err != nil {
		return res, err
	}
	if os.Geteuid() != 0 {
		return res, fmt.Errorf("%w: debootstrap needs root (it unpacks packages as their owners and runs their scripts in a chroot)", ErrNotBuilt)
	}
	for _, tool := range []string{"debootstrap", "chroot", "dpkg-query"} {
		if _, err := lookPath(tool); err != nil {
			return res, fmt.Errorf("%w: %s not found (Debian package debootstrap): %v", ErrNotBuilt, tool, err)
		}
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return res, fmt.Errorf("debian: %w", err)
	}
	root := filepath.Join(o.Out, "root")
	res.Root, res.Mirror, res.Cmdline = root, o.Mirror, Cmdline
	defer func() {
		if err := unmountUnder(root); err != nil {
			o.Log.Error("unmount after the build", "root", root, "err", err)
		}
	}()
	if err := freshDir(root); err != nil {
		return res, err
	}
	if res.Cached, err = bootstrap(ctx, o, root); err != nil {
		return res, err
	}
	if _, err := packages(ctx, root); err != nil {
		return res, err
	}
	if err := configure(ctx, o, root); err != nil {
		return res, err
	}
	if err := bootFiles(&res); err != nil {
		return res, err
	}
	if res.Packages, err = packages(ctx, root); err != nil {
		return res, err
	}
	if res.Bytes, err = du(root); err != nil {
		return res, err
	}
	res.RootSize = RootSize(res.Bytes)
	o.Log.Info("debian root built", "root", root, "suite", o.Suite, "kernel", res.Release,
		"packages", len(res.Packages), "bytes", res.Bytes, "root_size", res.RootSize, "cached", res.Cached)
	return res, nil
}

// RootSize is a root file system size for a tree of used bytes: a
// quarter more for ext4's inode tables and journal and the first boot's
// writes, plus 256 MiB, rounded up to 64 MiB. cloud-init grows it to the
// disk at first boot (growpart, resize2fs).
func RootSize(used int64) int64 {
	const unit = 64 << 20
	n := used + used/4 + 256<<20
	return (n + unit - 1) / unit * unit
}
