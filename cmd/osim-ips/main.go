// Command osim-ips is the Image Prepare System: it builds images from
// recipes (build), the osim installer's boot image (boot-image) and the
// small test OS disk (test-image), and registers them at the manager.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"osim/controlplane/api"
	"osim/internal/buildinfo"
	"osim/internal/manpage"
	"osim/ips/bootimage"
	"osim/ips/build"
	"osim/ips/initramfs"
	"osim/ips/recipe"
	"osim/ips/testimage"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

const usage = `osim-ips: the osim Image Prepare System

usage:
  osim-ips build RECIPE.yaml [--out DIR] [--register --manager URL --token T [--insecure]]
  osim-ips boot-image --out DIR [--installer PATH] [--kernel VMLINUZ] [--modules-dir DIR]
                      [--busybox PATH] [--modules LIST] [--compression gzip|zstd] [--nbps]
                      [--register --manager URL --token T --name N --version V [--insecure]]
  osim-ips test-image --out DIR [--kernel VMLINUZ] [--modules-dir DIR] [--busybox PATH]
                      [--hostname H --ssh-key KEY]
  osim-ips version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "ips")
	var err error
	switch args[0] {
	case "build":
		err = buildRecipe(ctx, log, args[1:], stdout, stderr)
	case "boot-image":
		err = bootImage(ctx, log, args[1:], stdout, stderr)
	case "test-image":
		err = testImage(ctx, log, args[1:], stdout, stderr)
	case "man":
		stdout.Write(manpage.Render(manpage.Page{Name: "osim-ips", Summary: "the osim Image Prepare System: builds and registers images",
			Version: buildinfo.Get().Short(), Sections: []manpage.Section{{Title: "usage", Text: usage}}}))
	case "version", "--version", "-version":
		// The build; the tool version the manifests record is version.
		fmt.Fprintf(stdout, "osim-ips %s (manifests record tool version %q)\n", buildinfo.Get(), version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "osim-ips: unknown command %q\n%s", args[0], usage)
		return 2
	}
	switch {
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "osim-ips: %v\n", err)
		return 1
	}
	return 0
}

var errUsage = errors.New("usage")

func usageErr(fs *flag.FlagSet, format string, a ...any) error {
	fmt.Fprintf(fs.Output(), "osim-ips %s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return errUsage
}

func bootImage(ctx context.Context, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("boot-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bootimage.Options
	var modules, manager, token, name, ver string
	var register, nbps, insecure bool
	fs.StringVar(&o.Out, "out", "", "output directory (required)")
	fs.StringVar(&o.Installer, "installer", defaultInstaller(), "the static osim-installer binary, /init of the image")
	fs.StringVar(&o.Kernel, "kernel", "", "kernel image (default: the newest /boot/vmlinuz-*)")
	fs.StringVar(&o.ModulesDir, "modules-dir", "", "modules tree (default: /lib/modules/<the kernel's release>)")
	fs.StringVar(&o.Busybox, "busybox", "/bin/busybox", "static busybox for /bin/sh (Debian busybox-static)")
	fs.StringVar(&modules, "modules", strings.Join(bootimage.DefaultModules, ","), "kernel modules to pack (comma-separated; dependencies follow)")
	fs.StringVar(&o.Compression, "compression", initramfs.Gzip, "initramfs compression: "+strings.Join(initramfs.Compressions, " or ")+" (checked against the kernel's config)")
	fs.StringVar(&o.Cmdline, "cmdline", bootimage.DefaultCmdline, "kernel command line template (the boot server appends osim.*)")
	fs.BoolVar(&nbps, "nbps", false, "add iPXE's undionly.kpxe (bios) and snponly.efi (efi-x64) from /usr/lib/ipxe")
	fs.BoolVar(&register, "register", false, "upload the files and register the boot image at the manager")
	fs.StringVar(&manager, "manager", os.Getenv("OSIM_SERVER"), "manager URL (env OSIM_SERVER)")
	fs.StringVar(&token, "token", os.Getenv("OSIM_TOKEN"), "API token (env OSIM_TOKEN)")
	fs.StringVar(&name, "name", "osim-installer", "image name when registering")
	fs.StringVar(&ver, "version", "", "image version when registering (required with --register)")
	fs.BoolVar(&insecure, "insecure", false, "skip TLS verification of the manager")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Out == "" || fs.NArg() > 0 {
		return usageErr(fs, "--out is required and takes no arguments")
	}
	if register && (manager == "" || ver == "") {
		return usageErr(fs, "--register needs --manager and --version")
	}
	o.Modules = splitList(modules)
	o.ToolVersion = version
	if nbps {
		o.NBPs = bootimage.NBPs
	}
	m, err := bootimage.Build(ctx, o)
	if err != nil {
		return err
	}
	log.Info("boot image built", "dir", o.Out, "kernel_release", m.KernelRelease, "modules", len(m.Modules), "missing", strings.Join(m.ModulesMissing, ","))
	if register {
		img, err := bootimage.Register(ctx, api.NewClient(manager, token, insecure), o.Out, name, ver)
		if err != nil {
			return err
		}
		log.Info("boot image registered", "image", img.ID, "name", img.Name, "version", img.Version)
	}
	return printJSON(stdout, m)
}

// buildRecipe runs one recipe; the recipe's path may come before or
// after the flags. Stdout: the output folder, then the image id.
func buildRecipe(ctx context.Context, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var out, manager, token string
	var register, insecure bool
	fs.StringVar(&out, "out", ".", "where the output folder <name>-<version>-<digest> goes")
	fs.BoolVar(&register, "register", false, "upload the files and register the image at the manager")
	fs.StringVar(&manager, "manager", os.Getenv("OSIM_SERVER"), "manager URL (env OSIM_SERVER)")
	fs.StringVar(&token, "token", os.Getenv("OSIM_TOKEN"), "API token (env OSIM_TOKEN)")
	fs.BoolVar(&insecure, "insecure", false, "skip TLS verification of the manager")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageErr(fs, "the recipe file is required")
	}
	path := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr(fs, "one recipe at a time (extra %q)", fs.Arg(0))
	}
	if register && manager == "" {
		return usageErr(fs, "--register needs --manager (or OSIM_SERVER)")
	}
	r, err := recipe.Load(path)
	if err != nil {
		return err
	}
	prog := build.NewProgress(stderr, false)
	if f, ok := stderr.(*os.File); ok {
		prog = build.NewProgress(stderr, build.IsTerminal(f))
	}
	res, err := build.Build(ctx, r, build.Options{Out: out, Log: log, Progress: prog})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.Dir)
	if !register {
		return nil
	}
	img, err := build.Register(ctx, api.NewClient(manager, token, insecure), res.Dir, prog)
	if err != nil {
		return err
	}
	log.Info("image registered", "image", img.ID, "name", img.Name, "version", img.Version, "kind", img.Kind, "format", img.Format)
	fmt.Fprintln(stdout, img.ID)
	return nil
}

func testImage(ctx context.Context, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("test-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o testimage.Options
	var host, key string
	fs.StringVar(&o.Out, "out", "", "output directory (required)")
	fs.StringVar(&o.Kernel, "kernel", "", "kernel image (default: the newest /boot/vmlinuz-*)")
	fs.StringVar(&o.ModulesDir, "modules-dir", "", "modules tree (default: /lib/modules/<the kernel's release>)")
	fs.StringVar(&o.Busybox, "busybox", "/bin/busybox", "static busybox (Debian busybox-static)")
	fs.StringVar(&host, "hostname", "", "write a NoCloud seed with this hostname (what the installer does on a target)")
	fs.StringVar(&key, "ssh-key", "", "the seed's SSH key (with --hostname)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Out == "" || fs.NArg() > 0 {
		return usageErr(fs, "--out is required and takes no arguments")
	}
	if host != "" {
		o.Seed = &testimage.Seed{Hostname: host}
		if key != "" {
			o.Seed.SSHKeys = []string{key}
		}
	}
	res, err := testimage.Build(ctx, o)
	if err != nil {
		return err
	}
	log.Info("test image built", "file", res.Disk.Raw.Path, "raw_size", res.Disk.Raw.Size, "kernel_release", res.Release)
	return printJSON(stdout, res)
}

// packagedInstaller is where the osim-ips Debian package puts the
// installer: it is an initramfs's /init, not a command for $PATH.
const packagedInstaller = "/usr/lib/osim/osim-installer"

// defaultInstaller is osim-installer next to this binary (a build tree's
// bin/), else the packaged one.
func defaultInstaller() string {
	exe, err := os.Executable()
	if err != nil {
		return "osim-installer"
	}
	next := filepath.Join(filepath.Dir(exe), "osim-installer")
	if _, err := os.Stat(next); err != nil {
		if _, err := os.Stat(packagedInstaller); err == nil {
			return packagedInstaller
		}
	}
	return next
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

func printJSON(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(v)
}
