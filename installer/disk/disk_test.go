package disk

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"osim/controlplane/api"
	"osim/installer/inventory"
)

const G = 1 << 30

func TestChooseFollowsTheRuleOrRefuses(t *testing.T) {
	dev := t.TempDir()
	os.MkdirAll(filepath.Join(dev, "disk/by-id"), 0o755)
	for _, n := range []string{"sda", "vda", "vdb", "vdc", "vdd"} {
		os.WriteFile(filepath.Join(dev, n), nil, 0o644)
	}
	os.Symlink("../../vdb", filepath.Join(dev, "disk/by-id/virtio-B"))
	os.Symlink("../../../etc", filepath.Join(dev, "disk/by-id/escape"))

	disks := []inventory.Disk{
		{Name: "sda", Path: "/dev/sda", Size: 8 * G, Serial: "S-A", Removable: true},
		{Name: "vda", Path: "/dev/vda", Size: 20 * G, Serial: "S-A"},
		{Name: "vdb", Path: "/dev/vdb", Size: 10 * G, Serial: "S-B"},
		{Name: "vdc", Path: "/dev/vdc", Size: 40 * G, Serial: "S-C"},
		{Name: "vdd", Path: "/dev/vdd", Size: 40 * G, Serial: "S-D"},
	}
	for _, tc := range []struct {
		name string
		rule api.DiskRule
		need int64
		want string
		err  error
	}{
		{"default is the smallest fitting non-removable", api.DiskRule{}, 1 * G, "/dev/vdb", nil},
		{"default skips disks too small", api.DiskRule{}, 15 * G, "/dev/vda", nil},
		{"default refuses a tie", api.DiskRule{}, 30 * G, "", ErrAmbiguous},
		{"default with nothing big enough is too small", api.DiskRule{}, 50 * G, "", ErrTooSmall},
		{"by serial", api.DiskRule{Serial: "S-C"}, 1 * G, "/dev/vdc", nil},
		{"by serial shared by two is refused", api.DiskRule{Serial: "S-A"}, 1 * G, "", ErrAmbiguous},
		{"by unknown serial is refused", api.DiskRule{Serial: "nope"}, 1 * G, "", ErrNoDisk},
		{"by path", api.DiskRule{Path: "/dev/vdd"}, 1 * G, "/dev/vdd", nil},
		{"by path may pick a removable disk", api.DiskRule{Path: "/dev/sda"}, 1 * G, "/dev/sda", nil},
		{"by symlink under /dev/disk", api.DiskRule{Path: "/dev/disk/by-id/virtio-B"}, 1 * G, "/dev/vdb", nil},
		{"a symlink out of /dev is refused", api.DiskRule{Path: "/dev/disk/by-id/escape"}, 1 * G, "", ErrNoDisk},
		{"a missing path is refused", api.DiskRule{Path: "/dev/disk/by-id/gone"}, 1 * G, "", ErrNoDisk},
		{"by path too small", api.DiskRule{Path: "/dev/vdb"}, 11 * G, "", ErrTooSmall},
		{"by size range", api.DiskRule{MinSize: 15 * G, MaxSize: 30 * G}, 1 * G, "/dev/vda", nil},
		{"size range with a tie is refused", api.DiskRule{MinSize: 30 * G}, 1 * G, "", ErrAmbiguous},
		{"size range matching none is refused", api.DiskRule{MinSize: 100 * G}, 1 * G, "", ErrNoDisk},
		{"no disks at all", api.DiskRule{}, 1, "", ErrNoDisk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := disks
			if tc.name == "no disks at all" {
				ds = nil
			}
			d, err := Choose(ds, tc.rule, tc.need, dev)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v (%s), want %v", err, d.Path, tc.err)
				}
				t.Log(err)
				return
			}
			if err != nil || d.Path != tc.want {
				t.Fatalf("got %q, %v; want %s", d.Path, err, tc.want)
			}
		})
	}
}
