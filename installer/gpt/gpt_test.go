package gpt

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"osim/internal/testlab"
)

const mib = 1 << 20

func newImage(t *testing.T, size int64, parts []Partition) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := Create(f, 512, size, [16]byte{1, 2, 3}, parts); err != nil {
		t.Fatal(err)
	}
	return f
}

var twoParts = []Partition{
	{Type: TypeEFISystem, GUID: "11111111-2222-3333-4444-555555555555", First: 2048, Last: 4095, Name: "esp"},
	{Type: TypeLinuxData, GUID: "66666666-7777-8888-9999-aaaaaaaaaaaa", First: 4096, Last: 16383, Name: "root"},
}

func TestCreatedTableReadsBack(t *testing.T) {
	f := newImage(t, 8*mib, twoParts)
	tb, err := Read(f, 512)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Partitions) != 2 {
		t.Fatalf("%d partitions", len(tb.Partitions))
	}
	for i, p := range tb.Partitions {
		want := twoParts[i]
		want.Index = i + 1
		if p != want {
			t.Errorf("partition %d: %+v, want %+v", i+1, p, want)
		}
	}
	if _, err := ReadBackup(f, 512, tb.BackupLBA()); err != nil {
		t.Errorf("backup: %v", err)
	}
}

func TestGrowMovesTheBackupAndExtendsTheLastPartition(t *testing.T) {
	f := newImage(t, 8*mib, twoParts)
	const disk = 24 * mib
	f.Truncate(disk) // the image written on a larger disk
	last, err := Grow(f, 512, disk)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := Read(f, 512)
	if err != nil {
		t.Fatalf("primary after grow: %v", err)
	}
	if tb.BackupLBA() != disk/512-1 {
		t.Errorf("backup at LBA %d, want the disk's last %d", tb.BackupLBA(), disk/512-1)
	}
	bk, err := ReadBackup(f, 512, tb.BackupLBA())
	if err != nil {
		t.Fatalf("backup after grow: %v", err)
	}
	p2 := tb.Partitions[1]
	if p2.Last != tb.LastUsable() || last.Last != p2.Last || p2.First != 4096 {
		t.Errorf("last partition %+v, last usable %d", p2, tb.LastUsable())
	}
	if bk.Partitions[1] != p2 || tb.Partitions[0] != (Partition{Index: 1, Type: TypeEFISystem, GUID: twoParts[0].GUID, First: 2048, Last: 4095, Name: "esp"}) {
		t.Errorf("backup %+v differs from primary %+v", bk.Partitions, tb.Partitions)
	}

	sfdisk := testlab.RequireTool(t, "sfdisk", "fdisk")
	out, err := exec.Command(sfdisk, "--json", f.Name()).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var js struct {
		PartitionTable struct {
			LastLBA    int64 `json:"lastlba"`
			Partitions []struct {
				Start, Size int64
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &js); err != nil {
		t.Fatal(err)
	}
	ps := js.PartitionTable.Partitions
	if js.PartitionTable.LastLBA != tb.LastUsable() || len(ps) != 2 || ps[1].Start+ps[1].Size-1 != tb.LastUsable() {
		t.Errorf("sfdisk sees %s", out)
	}
	if out, err := exec.Command(sfdisk, "--verify", f.Name()).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Errorf("sfdisk --verify: %v: %s", err, out)
	}
}

func TestGrowRefusesADiskSmallerThanTheImage(t *testing.T) {
	f := newImage(t, 8*mib, twoParts)
	if _, err := Grow(f, 512, 4*mib); err == nil {
		t.Error("grew onto a disk smaller than the image")
	}
}

func TestFindRootPrefersTheRootTypeThenTheLastExt4(t *testing.T) {
	f := newImage(t, 8*mib, twoParts)
	tb, _ := Read(f, 512)
	if _, err := FindRoot(f, tb); err == nil {
		t.Error("found a root without ext4 or root type")
	}
	f.WriteAt(ext4Magic, 4096*512+1024+56)
	tb, _ = Read(f, 512)
	if p, err := FindRoot(f, tb); err != nil || p.Index != 2 {
		t.Errorf("ext4: got %+v, %v; want partition 2", p, err)
	}
	typed := []Partition{twoParts[0], twoParts[1]}
	typed[0].Type = TypeLinuxRootX86_64
	f = newImage(t, 8*mib, typed)
	f.WriteAt(ext4Magic, 4096*512+1024+56)
	tb, _ = Read(f, 512)
	if p, err := FindRoot(f, tb); err != nil || p.Index != 1 {
		t.Errorf("typed: got %+v, %v; want partition 1", p, err)
	}
}
