package build

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"

	"osim/controlplane/api"
	"osim/ips/bootimage"
	"osim/ips/debian"
	"osim/ips/diskimage"
	"osim/ips/gpt"
	"osim/ips/kernel"
	"osim/ips/recipe"
)

// debian builds a root with debootstrap (ips/debian), then the disk.
func (b *builder) debian(ctx context.Context) error {
	d := b.r.Debian
	step := b.o.Progress.Step("debootstrap", 0)
	res, err := b.o.Debian(ctx, debian.Options{
		Out: filepath.Join(b.work, "debian"), Suite: d.Suite, Mirror: d.Mirror, Packages: d.Packages,
		Kernel: d.Kernel, Locale: d.Locale, Timezone: d.Timezone,
	})
	step.Done(err)
	if err != nil {
		return err
	}
	b.m.Packages = res.Packages
	return b.assemble(ctx, res.Root, res.Kernel, res.Initrd, res.Cmdline)
}

// rootfs takes the user's folder, or unpacks the tarball, then the disk.
func (b *builder) rootfs(ctx context.Context) error {
	rf := b.r.Rootfs
	root := b.r.Resolve(rf.Dir)
	key, src := "rootfs.dir", rf.Dir
	if rf.Tarball != "" {
		key, src = "rootfs.tarball", rf.Tarball
	}
	if err := b.input(key, src); err != nil {
		return err
	}
	if rf.Tarball != "" {
		root = filepath.Join(b.work, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			return fmt.Errorf("build: %w", err)
		}
		step := b.o.Progress.Step("extract "+filepath.Base(rf.Tarball), 0)
		skipped, err := extract(b.r.Resolve(rf.Tarball), recipe.TarCompression(rf.Tarball), root)
		step.Done(err)
		if err != nil {
			return err
		}
		if skipped > 0 {
			b.o.Log.Warn("tarball entries skipped (device nodes need root; other types are not supported)", "tarball", rf.Tarball, "skipped", skipped)
		}
	}
	k, i, err := bootFiles(root, rf.Kernel, rf.Initrd)
	if err != nil {
		return err
	}
	return b.assemble(ctx, root, k, i, rf.Cmdline)
}

// bootFiles finds the kernel and initrd in root: the ones named (paths
// inside the root, symlinks followed inside it), else the newest
// /boot/vmlinuz-* and the /boot/initrd.img-* of the same version.
func bootFiles(root, k, i string) (string, string, error) {
	if k == "" {
		n, err := kernel.Newest(filepath.Join(root, "boot"))
		if err != nil {
			return "", "", fmt.Errorf("%w: no /boot/vmlinuz-* (name rootfs.kernel)", errNoBoot)
		}
		k = "/boot/" + filepath.Base(n)
	}
	if i == "" {
		i = "/boot/initrd.img" + strings.TrimPrefix(filepath.Base(k), "vmlinuz")
	}
	kp, err := inRoot(root, k)
	if err != nil {
		return "", "", fmt.Errorf("%w: kernel %s: %v", errNoBoot, k, err)
	}
	ip, err := inRoot(root, i)
	if err != nil {
		return "", "", fmt.Errorf("%w: initrd %s: %v (name rootfs.initrd)", errNoBoot, i, err)
	}
	return kp, ip, nil
}

// inRoot resolves p inside root, following symlinks as the installed
// system would (an absolute target starts at root), never leaving root.
func inRoot(root, p string) (string, error) {
	for range 16 {
		rel := filepath.Clean("/" + p)
		full := filepath.Join(root, rel)
		fi, err := os.Lstat(full)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			if !fi.Mode().IsRegular() {
				return "", fmt.Errorf("not a regular file")
			}
			return full, nil
		}
		t, err := os.Readlink(full)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(rel), t)
		}
		p = t
	}
	return "", fmt.Errorf("too many symlinks")
}

// assemble makes the GPT disk (ips/diskimage) and its zstd copy.
func (b *builder) assemble(ctx context.Context, root, kern, initrd, cmdline string) error {
	esp, rootSize := recipe.DiskLayout{}.Sizes()
	if l := b.r.Image.Disk; l != nil {
		esp, rootSize = l.Sizes()
	}
	if rel, err := kernel.Release(kern); err == nil {
		b.m.KernelRelease = rel
	}
	raw := filepath.Join(b.work, "disk.img")
	step := b.o.Progress.Step("assemble disk", 0)
	res, err := diskimage.Build(ctx, diskimage.Spec{
		Out: raw, Kernel: kern, Initrd: initrd, Cmdline: cmdline, RootDir: root,
		ESPSize: esp, RootSize: rootSize, Seed: b.r.Name + "/" + b.r.Version, NoCompress: true,
	})
	step.Done(err)
	if err != nil {
		return err
	}
	b.m.Format, b.m.PartitionTable = api.FormatDisk, "gpt"
	return b.compress(raw, res.Raw.Size)
}

// disk converts (qcow2), checks and compresses an existing image.
func (b *builder) disk(ctx context.Context) error {
	d := b.r.Disk
	if err := b.input("disk.path", d.Path); err != nil {
		return err
	}
	raw := b.r.Resolve(d.Path)
	if d.Format == recipe.FormatQcow2 {
		raw = filepath.Join(b.work, "disk.img")
		step := b.o.Progress.Step("qemu-img convert", 0)
		err := qemuConvert(ctx, b.r.Resolve(d.Path), raw)
		step.Done(err)
		if err != nil {
			return err
		}
	}
	size, table, err := checkDisk(raw)
	if err != nil {
		return fmt.Errorf("build: disk.path %s: %w", d.Path, err)
	}
	if table == "none" {
		b.o.Log.Warn("the disk image has neither a GPT nor an MBR: a firmware may not boot it", "disk", d.Path)
	}
	b.m.Format, b.m.PartitionTable = api.FormatDisk, table
	return b.compress(raw, size)
}

// qemuConvert writes src (qcow2) as a raw image (Debian qemu-utils).
func qemuConvert(ctx context.Context, src, dst string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "qcow2", "-O", "raw", src, dst)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build: qemu-img convert %s (Debian package qemu-utils): %w: %s", src, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// checkDisk: a whole number of sectors, at least one, and which
// partition table it holds: gpt (checked: headers, entries, CRCs), mbr
// (the 0x55AA signature), or none.
func checkDisk(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	size := fi.Size()
	if size == 0 || size%gpt.SectorSize != 0 {
		return size, "", fmt.Errorf("%d bytes is not a whole number of %d-byte sectors", size, gpt.SectorSize)
	}
	if _, err := gpt.Read(f, size); err == nil {
		return size, "gpt", nil
	}
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return size, "", err
	}
	if mbr[510] == 0x55 && mbr[511] == 0xAA {
		return size, "mbr", nil
	}
	return size, "none", nil
}

// compress writes the disk's zstd copy into the folder: single-threaded
// at the default level, as ips/diskimage does, so the bytes repeat.
func (b *builder) compress(raw string, size int64) error {
	name := b.r.Name + ".img.zst"
	dst := filepath.Join(b.stage, name)
	in, err := os.Open(raw)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	defer out.Close()
	z, err := zstd.NewWriter(out, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return fmt.Errorf("build: zstd: %w", err)
	}
	step := b.o.Progress.Step("compress", size)
	var w io.Writer = z
	if step != nil {
		w = io.MultiWriter(z, step)
	}
	_, err = io.Copy(w, in)
	if cerr := z.Close(); err == nil {
		err = cerr
	}
	step.Done(err)
	if err != nil {
		return fmt.Errorf("build: compressing %s: %w", raw, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	sha, n, err := hashFile(dst)
	if err != nil {
		return err
	}
	b.m.Files = append(b.m.Files, api.ImageFile{Name: name, Role: api.RoleDisk, SHA256: sha, Size: n, Compression: api.CompressionZstd, RawSize: size})
	return nil
}

// boot builds the osim installer's boot image (ips/bootimage).
func (b *builder) boot(ctx context.Context) error {
	bt := b.r.Boot
	o := bootimage.Options{
		Out: filepath.Join(b.work, "boot"), Kernel: b.r.Resolve(bt.Kernel), Installer: b.r.Resolve(bt.Installer),
		Busybox: b.r.Resolve(bt.Busybox), Modules: bt.Modules, Compression: bt.Compression,
		Cmdline: b.r.Image.Cmdline, ToolVersion: b.m.ToolVersion,
	}
	if bt.NBPs {
		o.NBPs = bootimage.NBPs
	}
	for _, in := range []struct{ key, path string }{{"boot.installer", bt.Installer}, {"boot.kernel", bt.Kernel}, {"boot.busybox", bt.Busybox}} {
		if in.path == "" {
			continue
		}
		if err := b.input(in.key, in.path); err != nil {
			return err
		}
	}
	step := b.o.Progress.Step("boot image", 0)
	bm, err := bootimage.Build(ctx, o)
	step.Done(err)
	if err != nil {
		return err
	}
	b.m.Kind, b.m.Format, b.m.Cmdline, b.m.KernelRelease = api.KindBoot, "", bm.Cmdline, bm.KernelRelease
	for _, f := range bm.Files {
		if err := os.Rename(filepath.Join(o.Out, f.Name), filepath.Join(b.stage, f.Name)); err != nil {
			return fmt.Errorf("build: %w", err)
		}
		b.m.Files = append(b.m.Files, f)
	}
	if len(bm.ModulesMissing) > 0 {
		b.o.Log.Info("modules the kernel lacks (skipped)", "modules", strings.Join(bm.ModulesMissing, ","))
	}
	return nil
}
