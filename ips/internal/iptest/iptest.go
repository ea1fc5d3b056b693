// Package iptest holds what the IPS tests share: tool and file checks
// that skip outside CI and fail under CI=true naming the Debian package,
// and a QEMU boot that captures the serial console.
package iptest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"osim/internal/testlab"
	"osim/ips/kernel"
)

// Tools checks the programs a disk image build runs.
func Tools(t testing.TB) {
	t.Helper()
	for _, x := range [][2]string{{"mkfs.vfat", "dosfstools"}, {"mcopy", "mtools"}, {"mmd", "mtools"},
		{"syslinux", "syslinux"}, {"mke2fs", "e2fsprogs"}, {"debugfs", "e2fsprogs"}} {
		testlab.RequireTool(t, x[0], x[1])
	}
	File(t, "/usr/lib/SYSLINUX/gptmbr.bin", "syslinux-common")
	File(t, "/usr/lib/systemd/boot/efi/systemd-bootx64.efi", "systemd-boot-efi")
}

// File returns path when it is readable; missing, it fails under CI=true
// and skips elsewhere, naming the Debian package.
func File(t testing.TB, path, pkg string) string {
	t.Helper()
	f, err := os.Open(path)
	if err == nil {
		f.Close()
		return path
	}
	testlab.Unavailable(t, "%s is not readable (%v): apt-get install %s", path, err, pkg)
	return ""
}

// Kernel returns Debian's newest kernel, skipping or failing without one.
func Kernel(t testing.TB) string {
	t.Helper()
	k, err := kernel.Newest("/boot")
	if err != nil {
		k = "/boot/vmlinuz"
	}
	return File(t, k, "linux-image-amd64")
}

// Boot is one QEMU run's outcome.
type Boot struct {
	Console string        // everything the serial console printed
	Line    string        // the first line starting with marker, if any
	Elapsed time.Duration // QEMU start to the marker (or to exit)
}

// BootQEMU boots disk (virtio-blk, read-only snapshot) under TCG with
// firmware bios (empty: SeaBIOS) and waits for a console line starting
// with marker or QEMU's exit, at most limit. It holds
// /tmp/osim-bench.lock (flock) while QEMU runs, as every CPU-heavy run
// on this machine does.
func BootQEMU(t testing.TB, disk, bios, marker string, limit time.Duration) Boot {
	t.Helper()
	qemu := testlab.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	lock, err := os.OpenFile("/tmp/osim-bench.lock", os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatalf("flock /tmp/osim-bench.lock: %v", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	args := []string{"-accel", "tcg", "-m", "512", "-nographic", "-no-reboot", "-nic", "none", "-snapshot",
		"-drive", "file=" + disk + ",if=virtio,format=raw"}
	if bios != "" {
		args = append(args, "-bios", bios)
	}
	cmd := exec.CommandContext(ctx, qemu, args...)
	var console bytes.Buffer
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", qemu, err)
	}
	pw.Close()
	var b Boot
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		console.WriteString(l + "\n")
		if i := strings.Index(l, marker); i >= 0 && b.Line == "" {
			b.Line = strings.TrimSpace(l[i:])
			b.Elapsed = time.Since(start)
		}
	}
	werr := cmd.Wait()
	if b.Line == "" {
		b.Elapsed = time.Since(start)
	}
	b.Console = console.String()
	if ctx.Err() != nil {
		t.Logf("QEMU stopped after %v (limit %v): %v", b.Elapsed, limit, werr)
	}
	return b
}
