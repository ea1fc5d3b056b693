package inventory

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// fakeTree writes files (path relative to root → content) and symlinks
// (content starting with "->").
func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(c, "->"); ok {
			err = os.Symlink(target, full)
		} else {
			err = os.WriteFile(full, []byte(c), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFactsOfAFakeMachineAreExact(t *testing.T) {
	sb := string([]byte{7, 0, 0, 0, 1})
	root := fakeTree(t, map[string]string{
		"sys/class/dmi/id/sys_vendor":               "QEMU\n",
		"sys/class/dmi/id/product_name":             "Standard PC (Q35 + ICH9, 2009)\n",
		"sys/class/dmi/id/product_serial":           "SN123\n",
		"sys/class/dmi/id/product_uuid":             "0b5e5c3c-1111-2222-3333-444455556666\n",
		"proc/cpuinfo":                              "processor\t: 0\nmodel name\t: Fake CPU @ 2GHz\n\nprocessor\t: 1\nmodel name\t: Fake CPU @ 2GHz\n",
		"proc/meminfo":                              "MemTotal:        2048000 kB\nMemFree: 1 kB\n",
		"sys/firmware/efi/efivars/" + SecureBootVar: sb,
		"sys/block/vda/size":                        "2097152\n",
		"sys/block/vda/serial":                      "VIRTIO-1\n",
		"sys/block/vda/queue/rotational":            "1\n",
		"sys/block/vda/removable":                   "0\n",
		"sys/block/sda/size":                        "4194304\n",
		"sys/block/sda/device/model":                "QEMU HARDDISK   \n",
		"sys/block/sda/device/vpd_pg80":             "\x00\x80\x00\x08SATA-007",
		"sys/block/sda/queue/rotational":            "0\n",
		"sys/block/sda/removable":                   "1\n",
		"sys/block/loop0/size":                      "100\n",
		"sys/block/sr0/size":                        "100\n",
		"sys/block/dm-0/size":                       "100\n",
		"sys/class/net/lo/address":                  "00:00:00:00:00:00\n",
		"sys/class/net/eth0/address":                "52:54:00:12:34:56\n",
		"sys/class/net/eth0/carrier":                "1\n",
		"sys/class/net/eth0/speed":                  "1000\n",
		"sys/devices/pci0/virtio0/driver":           "->../../../bus/virtio/drivers/virtio_net",
		"sys/class/net/eth0/device":                 "->../../../devices/pci0/virtio0",
	})
	inv, err := Read(Options{SysRoot: filepath.Join(root, "sys"), ProcRoot: filepath.Join(root, "proc")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"dmi.vendor":          "QEMU",
		"dmi.product":         "Standard PC (Q35 + ICH9, 2009)",
		"dmi.serial":          "SN123",
		"dmi.uuid":            "0b5e5c3c-1111-2222-3333-444455556666",
		"cpu.count":           "2",
		"cpu.model":           "Fake CPU @ 2GHz",
		"memory.bytes":        strconv.Itoa(2048000 * 1024),
		"firmware":            "uefi",
		"secure_boot":         "enabled",
		"disk.count":          "2",
		"disk.vda.size":       strconv.Itoa(2097152 * 512),
		"disk.vda.serial":     "VIRTIO-1",
		"disk.vda.rotational": "true",
		"disk.vda.removable":  "false",
		"disk.sda.size":       strconv.Itoa(4194304 * 512),
		"disk.sda.model":      "QEMU HARDDISK",
		"disk.sda.serial":     "SATA-007",
		"disk.sda.rotational": "false",
		"disk.sda.removable":  "true",
		"nic.eth0.mac":        "52:54:00:12:34:56",
		"nic.eth0.driver":     "virtio_net",
		"nic.eth0.link":       "up",
		"nic.eth0.speed":      "1000",
	}
	if got := inv.Facts(); !reflect.DeepEqual(got, want) {
		t.Errorf("facts:\n got %v\nwant %v", got, want)
	}
}

func TestBIOSMachineHasNoSecureBootFact(t *testing.T) {
	root := fakeTree(t, map[string]string{"sys/block/.keep": ""})
	inv, err := Read(Options{SysRoot: filepath.Join(root, "sys"), ProcRoot: filepath.Join(root, "proc")})
	if err != nil {
		t.Fatal(err)
	}
	f := inv.Facts()
	if f["firmware"] != "bios" || f["secure_boot"] != "" {
		t.Errorf("firmware=%q secure_boot=%q, want bios and none", f["firmware"], f["secure_boot"])
	}
}

func TestFactsStayWithinTheBootServersLimits(t *testing.T) {
	inv := Inventory{CPUModel: strings.Repeat("x", 1000)}
	for i := range 300 {
		inv.Disks = append(inv.Disks, Disk{Name: "sd" + strconv.Itoa(i), Size: 1})
	}
	inv.Disks = append(inv.Disks, Disk{Name: "bad/name", Size: 1})
	f := inv.Facts()
	if len(f) > MaxFacts {
		t.Errorf("%d facts, limit %d", len(f), MaxFacts)
	}
	for k, v := range f {
		if !keyRE.MatchString(k) || len(v) > MaxValueBytes {
			t.Errorf("fact %q=%q breaks the limits", k, v)
		}
	}
}

func TestInventoryOfThisMachineIsSane(t *testing.T) {
	inv, err := Read(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if inv.CPUCount < 1 || inv.CPUModel == "" && inv.CPUCount == 0 {
		t.Errorf("cpu count %d", inv.CPUCount)
	}
	if inv.MemoryBytes < 64<<20 {
		t.Errorf("memory %d bytes", inv.MemoryBytes)
	}
	if inv.Firmware != "bios" && inv.Firmware != "uefi" {
		t.Errorf("firmware %q", inv.Firmware)
	}
	for _, d := range inv.Disks {
		if d.Size < 0 || !strings.HasPrefix(d.Path, "/dev/") || skip(d.Name, false) {
			t.Errorf("disk %+v", d)
		}
	}
	for _, n := range inv.NICs {
		if len(n.MAC) != 17 {
			t.Errorf("nic %+v: MAC", n)
		}
	}
	for k, v := range inv.Facts() {
		if !keyRE.MatchString(k) || len(v) > MaxValueBytes {
			t.Errorf("fact %q=%q breaks the limits", k, v)
		}
	}
	t.Logf("this machine: %d CPUs, %d MiB, %s, %d disks, %d NICs", inv.CPUCount, inv.MemoryBytes>>20, inv.Firmware, len(inv.Disks), len(inv.NICs))
}
