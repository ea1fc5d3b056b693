// Package inventory reads what a machine is made of from sysfs and procfs
// (DMI, CPUs, memory, disks, NICs, firmware mode and Secure Boot) and
// flattens it into facts for the boot server. Both roots are parameters so
// tests run on a fake tree as well as on the real /sys.
package inventory

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// SecureBootVar is the EFI global variable holding Secure Boot's state.
const SecureBootVar = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// Options say where to read.
type Options struct {
	SysRoot  string // "/sys" by default
	ProcRoot string // "/proc" by default
	// IncludeLoop lists loop devices as disks (tests write to one).
	IncludeLoop bool
}

// Inventory is what Read found.
type Inventory struct {
	Vendor, Product, Serial, UUID string
	CPUCount                      int
	CPUModel                      string
	MemoryBytes                   int64
	Firmware                      string // "bios" or "uefi"
	SecureBoot                    string // "enabled", "disabled", or "" (bios, or unreadable)
	Disks                         []Disk
	NICs                          []NIC
}

// Disk is one whole block device.
type Disk struct {
	Name       string // vda
	Path       string // /dev/vda
	Size       int64  // bytes
	Model      string
	Serial     string
	Rotational bool
	Removable  bool
}

// NIC is one network interface backed by a device (virtual ones are left out).
type NIC struct {
	Name   string
	MAC    string
	Driver string
	Up     bool // carrier
	Speed  int  // Mb/s, 0 when unknown
}

// skipped are block device name prefixes that are never install targets.
var skipped = []string{"loop", "ram", "zram", "sr", "fd", "dm-", "md", "nbd"}

// Read reads the inventory. Missing files leave fields empty; only an
// unreadable /sys/block is an error.
func Read(o Options) (Inventory, error) {
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	dmi := filepath.Join(o.SysRoot, "class/dmi/id")
	inv := Inventory{
		Vendor:  readString(filepath.Join(dmi, "sys_vendor")),
		Product: readString(filepath.Join(dmi, "product_name")),
		Serial:  readString(filepath.Join(dmi, "product_serial")),
		UUID:    readString(filepath.Join(dmi, "product_uuid")),
	}
	inv.CPUCount, inv.CPUModel = cpus(filepath.Join(o.ProcRoot, "cpuinfo"))
	inv.MemoryBytes = memTotal(filepath.Join(o.ProcRoot, "meminfo"))
	inv.Firmware, inv.SecureBoot = firmware(o.SysRoot)
	var err error
	if inv.Disks, err = Disks(o); err != nil {
		return inv, err
	}
	inv.NICs = nics(o.SysRoot)
	return inv, nil
}

// Disks lists the whole disks under /sys/block, sorted by name.
func Disks(o Options) ([]Disk, error) {
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	dir := filepath.Join(o.SysRoot, "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("inventory: listing disks: %w", err)
	}
	var out []Disk
	for _, e := range ents {
		name := e.Name()
		if skip(name, o.IncludeLoop) {
			continue
		}
		b := filepath.Join(dir, name)
		sectors, _ := strconv.ParseInt(readString(filepath.Join(b, "size")), 10, 64)
		if strings.HasPrefix(name, "loop") && sectors == 0 {
			continue // an unused loop device
		}
		out = append(out, Disk{
			Name:       name,
			Path:       "/dev/" + name,
			Size:       sectors * 512, // sysfs counts 512-byte sectors whatever the device's
			Model:      readString(filepath.Join(b, "device/model")),
			Serial:     serial(b),
			Rotational: readString(filepath.Join(b, "queue/rotational")) == "1",
			Removable:  readString(filepath.Join(b, "removable")) == "1",
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func skip(name string, loop bool) bool {
	for _, p := range skipped {
		if strings.HasPrefix(name, p) {
			return !(p == "loop" && loop)
		}
	}
	return false
}

// serial tries virtio's serial, then the device's (SCSI, SATA, NVMe), then
// SCSI VPD page 0x80 (a 4-byte header, then the serial).
func serial(b string) string {
	for _, f := range []string{"serial", "device/serial"} {
		if s := readString(filepath.Join(b, f)); s != "" {
			return s
		}
	}
	if p, err := os.ReadFile(filepath.Join(b, "device/vpd_pg80")); err == nil && len(p) > 4 {
		return clean(string(p[4:]))
	}
	return ""
}

func cpus(path string) (int, string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, ""
	}
	defer f.Close()
	n, model := 0, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			n++
		case "model name":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		}
	}
	return n, model
}

func memTotal(path string) int64 {
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func firmware(sys string) (mode, secureBoot string) {
	if _, err := os.Stat(filepath.Join(sys, "firmware/efi")); err != nil {
		return "bios", ""
	}
	b, err := os.ReadFile(filepath.Join(sys, "firmware/efi/efivars", SecureBootVar))
	if err != nil || len(b) < 5 { // 4 bytes of attributes, then the value
		return "uefi", ""
	}
	if b[len(b)-1] == 1 {
		return "uefi", "enabled"
	}
	return "uefi", "disabled"
}

func nics(sys string) []NIC {
	dir := filepath.Join(sys, "class/net")
	ents, _ := os.ReadDir(dir)
	var out []NIC
	for _, e := range ents {
		n := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(n, "device")); err != nil {
			continue // lo, veth, bridges: not a machine's NIC
		}
		drv, _ := os.Readlink(filepath.Join(n, "device/driver"))
		speed, _ := strconv.Atoi(readString(filepath.Join(n, "speed")))
		out = append(out, NIC{
			Name:   e.Name(),
			MAC:    readString(filepath.Join(n, "address")),
			Driver: filepath.Base(drv),
			Up:     readString(filepath.Join(n, "carrier")) == "1",
			Speed:  max(speed, 0), // -1 without a link
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return clean(string(b))
}

// clean keeps printable ASCII and trims spaces and NULs.
func clean(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}
