package diskimage

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"osim/ips/gpt"
)

// buildESP makes a FAT file system of size bytes in file, for a partition
// starting at startLBA (its "hidden sectors", which syslinux's boot sector
// reads), copies files onto it and installs syslinux.
func buildESP(ctx context.Context, s Spec, file string, size, startLBA int64, files map[string]string) error {
	if err := truncate(file, size); err != nil {
		return err
	}
	vg := gpt.DerivedGUID(s.Seed + "/esp-volume")
	volID := binary.LittleEndian.Uint32(vg[:4])
	if err := run(ctx, s.Tools.MkfsVfat, "--invariant", "-i", fmt.Sprintf("%08x", volID), "-n", "OSIMESP",
		"-h", strconv.FormatInt(startLBA, 10), file); err != nil {
		return err
	}
	gen := map[string]string{
		"loader/loader.conf":       "timeout 0\ndefault osim.conf\nconsole-mode keep\n",
		"loader/entries/osim.conf": fmt.Sprintf("title osim\nlinux /%s\ninitrd /%s\noptions %s\n", ESPKernel, ESPInitrd, s.Cmdline),
		"syslinux.cfg":             fmt.Sprintf("DEFAULT osim\nPROMPT 0\nTIMEOUT 0\nLABEL osim\n  LINUX /%s\n  INITRD /%s\n  APPEND %s\n", ESPKernel, ESPInitrd, s.Cmdline),
	}
	dir := filepath.Dir(file)
	for p, content := range gen {
		src := filepath.Join(dir, strings.ReplaceAll(p, "/", "_"))
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			return fmt.Errorf("diskimage: %w", err)
		}
		files[p] = src
	}
	// Directories first, parents before children, then the files.
	dirs := map[string]bool{}
	for _, p := range sortedKeys(files) {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var mkdirs []string
	for _, d := range sortedKeys(boolKeys(dirs)) {
		mkdirs = append(mkdirs, "::/"+d)
	}
	if len(mkdirs) > 0 {
		if err := run(ctx, s.Tools.Mmd, append([]string{"-i", file}, mkdirs...)...); err != nil {
			return err
		}
	}
	for _, p := range sortedKeys(files) {
		if err := run(ctx, s.Tools.Mcopy, "-i", file, files[p], "::/"+p); err != nil {
			return err
		}
	}
	// The mtools syslinux installs ldlinux.sys and ldlinux.c32 into the
	// file system in file and its boot sector; no loop device needed.
	return run(ctx, s.Tools.Syslinux, "--install", file)
}

func boolKeys(m map[string]bool) map[string]string {
	o := make(map[string]string, len(m))
	for k := range m {
		o[k] = ""
	}
	return o
}

func truncate(file string, size int64) error {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("diskimage: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("diskimage: sizing %s to %d bytes: %w", file, size, err)
	}
	return nil
}

// toolEnv fixes the clocks mtools and e2fsprogs would read.
func toolEnv() []string {
	e := strconv.Itoa(Epoch)
	return append(os.Environ(), "SOURCE_DATE_EPOCH="+e, "E2FSPROGS_FAKE_TIME="+e, "MTOOLS_SKIP_CHECK=1", "TZ=UTC")
}

// run runs one build tool; its output is in the error when it fails.
func run(ctx context.Context, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = toolEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("diskimage: %s %s: %w\n%s", bin, strings.Join(args, " "), err, out)
	}
	return nil
}
