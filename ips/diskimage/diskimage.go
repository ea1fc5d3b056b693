// Package diskimage assembles a whole-disk image that boots under BIOS and
// UEFI, without loop devices, mounts or root: a GPT written from Go
// (package gpt) with an EFI system partition (FAT, built by mkfs.vfat and
// filled with mtools) and an optional ext4 root (mke2fs -d), each built as
// its own file and spliced in at its offset. BIOS boots syslinux's
// gptmbr.bin from the MBR, which chains to the ESP (legacy-BIOS-bootable
// attribute) where `syslinux --install` put ldlinux.sys; UEFI boots
// systemd-boot from the removable-media path \EFI\BOOT\BOOTX64.EFI. Both
// start the same kernel and initrd with the same command line.
//
// The output is deterministic: GUIDs, volume IDs and hash seeds derive
// from Spec.Seed, every time stamp is Epoch. See the README for what
// still leaks from the build machine.
package diskimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"osim/ips/gpt"
)

// Epoch is every time stamp written into an image (2020-01-01 UTC):
// fixed so the same inputs give the same bytes. FAT cannot hold 1970.
const Epoch = 1577836800

// MiB is the alignment of partitions and the unit of sizes.
const MiB = 1 << 20

// Names of the boot files on the ESP (8.3, so every loader reads them).
const (
	ESPKernel = "vmlinuz"
	ESPInitrd = "initrd.img"
)

// Tools are the files and programs a build uses; zero fields take the
// Debian paths (DefaultTools).
type Tools struct {
	GPTMBR      string // syslinux-common: /usr/lib/SYSLINUX/gptmbr.bin
	SystemdBoot string // systemd-boot-efi: /usr/lib/systemd/boot/efi/systemd-bootx64.efi
	MkfsVfat    string // dosfstools
	Mmd, Mcopy  string // mtools
	Syslinux    string // syslinux (the mtools installer)
	Mke2fs      string // e2fsprogs
	Debugfs     string // e2fsprogs
}

// DefaultTools are Debian's paths.
var DefaultTools = Tools{
	GPTMBR:      "/usr/lib/SYSLINUX/gptmbr.bin",
	SystemdBoot: "/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
	MkfsVfat:    "mkfs.vfat",
	Mmd:         "mmd",
	Mcopy:       "mcopy",
	Syslinux:    "syslinux",
	Mke2fs:      "mke2fs",
	Debugfs:     "debugfs",
}

// Spec says what goes into a disk image.
type Spec struct {
	// Out is the raw image's path; the compressed copy is Out+".zst".
	Out string
	// Kernel and Initrd are copied onto the ESP and booted with Cmdline.
	Kernel, Initrd, Cmdline string
	// ESPFiles are more files for the ESP: path on the ESP → source file.
	ESPFiles map[string]string
	// RootDir, when set, becomes an ext4 root partition labelled
	// RootLabel (default "osimroot"). Owners are copied from the files;
	// times are set to Epoch.
	RootDir   string
	RootLabel string
	// ESPSize and RootSize in bytes (rounded up to MiB); 0 fits the
	// contents with room to spare (the root at least 32 MiB).
	ESPSize, RootSize int64
	// Seed makes the GUIDs and volume IDs: same seed, same IDs. Default
	// is Out's base name.
	Seed string
	// NoCompress skips the zstd copy.
	NoCompress bool
	Tools      Tools
}

// File is one output file.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Result is what Build made.
type Result struct {
	Raw        File            `json:"raw"`
	Compressed *File           `json:"compressed,omitempty"` // zstd
	Partitions []gpt.Partition `json:"-"`
	ESPOffset  int64           `json:"esp_offset"`
	RootOffset int64           `json:"root_offset,omitempty"`
}

// ErrSpec: a Spec missing something it needs.
var ErrSpec = errors.New("diskimage: bad spec")

func (s *Spec) defaults() error {
	if s.Out == "" || s.Kernel == "" || s.Initrd == "" {
		return fmt.Errorf("%w: Out, Kernel and Initrd are required", ErrSpec)
	}
	if s.RootLabel == "" {
		s.RootLabel = "osimroot"
	}
	if len(s.RootLabel) > 16 {
		return fmt.Errorf("%w: root label %q is longer than 16 bytes", ErrSpec, s.RootLabel)
	}
	if s.Seed == "" {
		s.Seed = filepath.Base(s.Out)
	}
	if strings.ContainsAny(s.Cmdline, "\n") {
		return fmt.Errorf("%w: the command line holds a newline", ErrSpec)
	}
	t := &s.Tools
	d := DefaultTools
	for _, p := range []struct {
		f   *string
		def string
	}{
		{&t.GPTMBR, d.GPTMBR}, {&t.SystemdBoot, d.SystemdBoot}, {&t.MkfsVfat, d.MkfsVfat},
		{&t.Mmd, d.Mmd}, {&t.Mcopy, d.Mcopy}, {&t.Syslinux, d.Syslinux}, {&t.Mke2fs, d.Mke2fs}, {&t.Debugfs, d.Debugfs},
	} {
		if *p.f == "" {
			*p.f = p.def
		}
	}
	return nil
}

// Build assembles the image described by spec.
func Build(ctx context.Context, spec Spec) (Result, error) {
	var res Result
	if err := spec.defaults(); err != nil {
		return res, err
	}
	files, err := spec.espFiles()
	if err != nil {
		return res, err
	}
	work, err := os.MkdirTemp(filepath.Dir(spec.Out), ".diskimage-")
	if err != nil {
		return res, fmt.Errorf("diskimage: work directory: %w", err)
	}
	defer os.RemoveAll(work)

	espSize, err := fitESP(spec.ESPSize, files)
	if err != nil {
		return res, err
	}
	const espStart = MiB
	esp := filepath.Join(work, "esp.img")
	if err := buildESP(ctx, spec, esp, espSize, espStart/gpt.SectorSize, files); err != nil {
		return res, err
	}
	parts := []part{{file: esp, offset: espStart, size: espSize, gpt: gpt.Partition{
		Type: gpt.TypeESP, GUID: gpt.DerivedGUID(spec.Seed + "/esp"), Name: "ESP", Attributes: gpt.AttrLegacyBIOSBoot}}}
	res.ESPOffset = espStart
	if spec.RootDir != "" {
		rootSize, err := fitRoot(spec.RootSize, spec.RootDir)
		if err != nil {
			return res, err
		}
		root := filepath.Join(work, "root.img")
		if err := buildRoot(ctx, spec, root, rootSize); err != nil {
			return res, err
		}
		res.RootOffset = espStart + espSize
		parts = append(parts, part{file: root, offset: res.RootOffset, size: rootSize, gpt: gpt.Partition{
			Type: gpt.TypeLinuxRootX64, GUID: gpt.DerivedGUID(spec.Seed + "/root"), Name: "root"}})
	}
	if res.Partitions, err = assemble(spec, parts); err != nil {
		return res, err
	}
	if res.Raw, err = describe(spec.Out); err != nil {
		return res, err
	}
	if !spec.NoCompress {
		c, err := compressZstd(spec.Out, spec.Out+".zst")
		if err != nil {
			return res, err
		}
		res.Compressed = &c
	}
	return res, nil
}

// espFiles is every file of the ESP but ldlinux.*: ESP path → source.
// Generated files (loader entries, syslinux.cfg) are written into the
// work directory by buildESP; here they are marked with an empty source.
func (s Spec) espFiles() (map[string]string, error) {
	f := map[string]string{
		ESPKernel:                  s.Kernel,
		ESPInitrd:                  s.Initrd,
		"EFI/BOOT/BOOTX64.EFI":     s.Tools.SystemdBoot,
		"loader/loader.conf":       "",
		"loader/entries/osim.conf": "",
		"syslinux.cfg":             "",
	}
	for p, src := range s.ESPFiles {
		c := strings.Trim(filepath.ToSlash(filepath.Clean("/"+p)), "/")
		if c == "" || src == "" {
			return nil, fmt.Errorf("%w: ESP file %q from %q", ErrSpec, p, src)
		}
		if _, ok := f[c]; ok {
			return nil, fmt.Errorf("%w: ESP file %q is one the image makes itself", ErrSpec, p)
		}
		f[c] = src
	}
	for p, src := range f {
		if src == "" {
			continue
		}
		if fi, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("diskimage: ESP file %s: %w", p, err)
		} else if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("diskimage: ESP file %s: %s is not a regular file", p, src)
		}
	}
	return f, nil
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for p := range m {
		k = append(k, p)
	}
	sort.Strings(k)
	return k
}

func roundMiB(n int64) int64 { return (n + MiB - 1) / MiB * MiB }

// fitESP: the files plus a quarter and 8 MiB for FAT overhead and
// syslinux, at least 32 MiB.
func fitESP(want int64, files map[string]string) (int64, error) {
	var sum int64
	for _, src := range files {
		if src == "" {
			continue
		}
		fi, err := os.Stat(src)
		if err != nil {
			return 0, fmt.Errorf("diskimage: %w", err)
		}
		sum += fi.Size()
	}
	need := roundMiB(sum + sum/4 + 8*MiB)
	switch {
	case want == 0:
		return max(need, 32*MiB), nil
	case roundMiB(want) < roundMiB(sum+MiB):
		return 0, fmt.Errorf("%w: ESP of %d bytes cannot hold %d bytes of files", ErrSpec, want, sum)
	}
	return roundMiB(want), nil
}

// fitRoot: the tree's bytes (in 4 KiB blocks) doubled, at least 32 MiB.
func fitRoot(want int64, dir string) (int64, error) {
	var sum int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum += (fi.Size() + 4095) / 4096 * 4096
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("diskimage: root %s: %w", dir, err)
	}
	if want == 0 {
		return max(roundMiB(2*sum+8*MiB), 32*MiB), nil
	}
	return roundMiB(want), nil
}

// describe hashes a file.
func describe(path string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, fmt.Errorf("diskimage: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, fmt.Errorf("diskimage: hashing %s: %w", path, err)
	}
	return File{Path: path, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
