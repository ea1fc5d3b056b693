package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bzImage fakes the boot header of a kernel whose version string says v.
func bzImage(t *testing.T, v string) string {
	b := make([]byte, 0x400)
	copy(b[0x202:], "HdrS")
	b[0x20E] = 0x00 // string at 0x200+0x100
	b[0x20F] = 0x01
	copy(b[0x300:], v+"\x00")
	p := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(p, b, 0o644)
	return p
}

func TestReleaseComesFromTheBootHeader(t *testing.T) {
	p := bzImage(t, "6.1.0-57-amd64 (debian-kernel@lists.example) #1 SMP")
	if r, err := Release(p); err != nil || r != "6.1.0-57-amd64" {
		t.Errorf("Release = %q, %v", r, err)
	}
	notKernel := filepath.Join(t.TempDir(), "x")
	os.WriteFile(notKernel, make([]byte, 0x400), 0o644)
	if _, err := Release(notKernel); !errors.Is(err, ErrNotBzImage) {
		t.Errorf("a file without HdrS: %v", err)
	}
}

func TestDebianKernelReleaseMatchesItsFileName(t *testing.T) {
	k, err := Newest("/boot")
	if err != nil {
		t.Skip(err)
	}
	r, err := Release(k)
	if os.IsPermission(errors.Unwrap(err)) {
		t.Skip(err)
	}
	if err != nil || !strings.HasSuffix(k, "vmlinuz-"+r) {
		t.Errorf("%s: release %q, %v", k, r, err)
	}
}

func TestNewestComparesNumbersAsNumbers(t *testing.T) {
	d := t.TempDir()
	for _, v := range []string{"6.9.0-1-amd64", "6.10.0-1-amd64", "6.1.0-57-amd64"} {
		os.WriteFile(filepath.Join(d, "vmlinuz-"+v), nil, 0o644)
	}
	if k, err := Newest(d); err != nil || filepath.Base(k) != "vmlinuz-6.10.0-1-amd64" {
		t.Errorf("Newest = %s, %v", k, err)
	}
	if _, err := Newest(t.TempDir()); err == nil || !strings.Contains(err.Error(), "linux-image-amd64") {
		t.Errorf("no kernel: %v", err)
	}
}
