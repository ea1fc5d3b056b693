// Package initsys does what the installer must do as PID 1 of its
// initramfs before anything else: mount the kernel file systems, load
// the modules packed with it, and give it a console to print on.
package initsys

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ModulesList is the file the boot image builder writes: module paths
// relative to /lib/modules/<release>/, in load order.
const ModulesList = "/etc/osim/modules"

var mounts = []struct{ src, dir, fstype string }{
	{"proc", "/proc", "proc"},
	{"sysfs", "/sys", "sysfs"},
	{"devtmpfs", "/dev", "devtmpfs"},
	{"tmpfs", "/tmp", "tmpfs"},
	{"tmpfs", "/run", "tmpfs"},
	{"efivarfs", "/sys/firmware/efi/efivars", "efivarfs"}, // Secure Boot state; absent on BIOS
}

// Mount mounts proc, sysfs, devtmpfs, /tmp, /run and, on UEFI, efivarfs.
// An already mounted one is fine; efivarfs failing is not an error.
func Mount() error {
	for _, m := range mounts {
		if m.fstype == "efivarfs" {
			if _, err := os.Stat(m.dir); err != nil {
				continue
			}
		}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return fmt.Errorf("initsys: %w", err)
		}
		err := unix.Mount(m.src, m.dir, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC*b(m.fstype != "devtmpfs" && m.fstype != "tmpfs"), "")
		if err != nil && !errors.Is(err, unix.EBUSY) && m.fstype != "efivarfs" {
			return fmt.Errorf("initsys: mounting %s on %s: %w", m.fstype, m.dir, err)
		}
	}
	return nil
}

func b(v bool) uintptr {
	if v {
		return 1
	}
	return 0
}

// Release is the running kernel's release (uname -r).
func Release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// LoadModules loads each module the list names (relative to modDir) with
// finit_module. One already loaded (EEXIST) counts as loaded; a module
// that fails is reported to warn and the rest are still tried: a missing
// driver for hardware the machine lacks must not stop the install.
func LoadModules(list, modDir string, warn func(module string, err error)) (int, error) {
	f, err := os.Open(list)
	if err != nil {
		return 0, fmt.Errorf("initsys: module list: %w", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rel := strings.TrimSpace(sc.Text())
		if rel == "" || strings.HasPrefix(rel, "#") {
			continue
		}
		if err := load(filepath.Join(modDir, rel)); err != nil {
			warn(rel, err)
			continue
		}
		n++
	}
	return n, sc.Err()
}

func load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

// Console opens /dev/console for the progress lines; stderr when it cannot.
func Console() io.Writer {
	f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return os.Stderr
	}
	return f
}
