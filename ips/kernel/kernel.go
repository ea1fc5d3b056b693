// Package kernel finds a Linux kernel image and tells its release: from
// the bzImage header (boot protocol 2.00+: the version string at
// 0x200 + the offset stored at 0x20E), so a kernel renamed away from
// vmlinuz-RELEASE still finds its modules.
package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNotBzImage: a file without the "HdrS" boot header.
var ErrNotBzImage = errors.New("kernel: not a bzImage")

// Release reads the kernel release ("6.1.0-57-amd64") from a bzImage.
func Release(vmlinuz string) (string, error) {
	f, err := os.Open(vmlinuz)
	if err != nil {
		return "", fmt.Errorf("kernel: %w", err)
	}
	defer f.Close()
	hdr := make([]byte, 0x210)
	if n, err := f.ReadAt(hdr, 0); n < len(hdr) {
		if err == io.EOF {
			return "", fmt.Errorf("%w: %s is %d bytes, shorter than a boot header", ErrNotBzImage, vmlinuz, n)
		}
		return "", fmt.Errorf("kernel: %s: reading the boot header: %w", vmlinuz, err)
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("%w: %s", ErrNotBzImage, vmlinuz)
	}
	off := int64(binary.LittleEndian.Uint16(hdr[0x20E:])) + 0x200
	buf := make([]byte, 256)
	n, _ := f.ReadAt(buf, off)
	s := string(buf[:n])
	if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
		s = s[:i]
	}
	release, _, _ := strings.Cut(s, " ")
	if release == "" || off == 0x200 {
		return "", fmt.Errorf("%w: %s has no version string", ErrNotBzImage, vmlinuz)
	}
	return release, nil
}

// Newest returns bootDir's vmlinuz-* with the highest release (numbers
// compared as numbers: 6.10 after 6.9).
func Newest(bootDir string) (string, error) {
	m, err := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*"))
	if err != nil || len(m) == 0 {
		return "", fmt.Errorf("kernel: no vmlinuz-* in %s (Debian package linux-image-amd64)", bootDir)
	}
	sort.Slice(m, func(i, j int) bool { return versionLess(filepath.Base(m[i]), filepath.Base(m[j])) })
	return m[len(m)-1], nil
}

// ModulesDir is where the modules of release live.
func ModulesDir(release string) string { return filepath.Join("/lib/modules", release) }

// Config is Debian's kernel config for release (/boot/config-RELEASE).
func Config(bootDir, release string) string { return filepath.Join(bootDir, "config-"+release) }

// versionLess compares runs of digits numerically and the rest as text.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		na, ra := splitRun(a)
		nb, rb := splitRun(b)
		if na != nb {
			ia, ea := strconv.Atoi(na)
			ib, eb := strconv.Atoi(nb)
			if ea == nil && eb == nil {
				return ia < ib
			}
			return na < nb
		}
		a, b = ra, rb
	}
	return len(a) < len(b)
}

func splitRun(s string) (string, string) {
	digit := s[0] >= '0' && s[0] <= '9'
	i := 1
	for i < len(s) && (s[i] >= '0' && s[i] <= '9') == digit {
		i++
	}
	return s[:i], s[i:]
}
