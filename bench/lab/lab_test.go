// Package lab holds the QEMU lab: real PXE firmware against osim-bootd.
package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"osim/internal/testlab"
)

// needLab skips (fails under CI=true) when the lab cannot run here.
func needLab(t *testing.T) {
	t.Helper()
	testlab.RequireRoot(t, "the QEMU lab: network namespaces, tap devices")
	for _, f := range []string{"/usr/bin/qemu-system-x86_64", "/usr/share/ovmf/OVMF.fd", "/usr/lib/ipxe/qemu/pxe-e1000.rom",
		"/usr/lib/ipxe/snponly.efi", "/bin/busybox", "/usr/sbin/dnsmasq", "/usr/sbin/ethtool", "/usr/bin/cpio"} {
		if _, err := os.Stat(f); err != nil {
			testlab.Unavailable(t, "lab needs %s (apt-get install qemu-system-x86 ipxe-qemu ipxe ovmf linux-image-amd64 busybox-static cpio dnsmasq-base ethtool)", f)
		}
	}
	if k, _ := filepath.Glob("/boot/vmlinuz-*"); len(k) == 0 {
		testlab.Unavailable(t, "lab needs a kernel in /boot (apt-get install linux-image-amd64)")
	}
}

// TestRealFirmwareBootsThroughProxyDHCP boots a legacy BIOS guest (iPXE's
// PXE ROM) and a UEFI guest (OVMF's own PXE client, then snponly.efi) under
// QEMU TCG, next to a site DHCP server that gives addresses only; each must
// reach the busybox init of Debian's kernel served by osim-bootd serve.
func TestRealFirmwareBootsThroughProxyDHCP(t *testing.T) { runLab(t, "proxy") }

// TestRealFirmwareBootsThroughFullDHCP is the same with osim-bootd as the
// only DHCP server on the segment, leases in Badger.
func TestRealFirmwareBootsThroughFullDHCP(t *testing.T) { runLab(t, "full") }

func runLab(t *testing.T, mode string) {
	if testing.Short() {
		t.Skip("boots two QEMU guests (about a minute)")
	}
	needLab(t)
	repo, _ := filepath.Abs("../..")
	bin := filepath.Join(t.TempDir(), "bin")
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/osim-bootd")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repo, "bench/lab/boot-guests.sh"), out)
	cmd.Env = append(os.Environ(), "OSIM_BOOTD="+filepath.Join(bin, "osim-bootd"), "BOOT_SECS=300", "MODE="+mode)
	res, err := cmd.CombinedOutput()
	t.Logf("lab output:\n%s", res)
	if err != nil {
		if b, rerr := os.ReadFile(filepath.Join(out, "osim-bootd.log")); rerr == nil {
			t.Logf("osim-bootd log tail:\n%s", tail(string(b), 3000))
		}
		t.Fatalf("lab (%s mode): %v", mode, err)
	}
	for _, g := range []string{"PASS bios", "PASS uefi"} {
		if !strings.Contains(string(res), g) {
			t.Errorf("no %q in the lab output", g)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
