package gpt

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"osim/internal/testlab"
)

func sampleTable() Table {
	return Table{
		DiskGUID: DerivedGUID("disk"),
		Sectors:  64 << 20 / SectorSize,
		BootCode: []byte("bootcode"),
		Partitions: []Partition{
			{Type: TypeESP, GUID: DerivedGUID("esp"), FirstLBA: 2048, LastLBA: 2048*16 - 1, Attributes: AttrLegacyBIOSBoot, Name: "ESP"},
			{Type: TypeLinuxRootX64, GUID: DerivedGUID("root"), FirstLBA: 2048 * 16, LastLBA: 2048*31 - 1, Name: "root"},
		},
	}
}

func writeDisk(t *testing.T, tb Table) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(tb.Sectors) * SectorSize); err != nil {
		t.Fatal(err)
	}
	if err := tb.Write(f); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTableReadsBackWithValidCRCs(t *testing.T) {
	want := sampleTable()
	p := writeDisk(t, want)
	f, _ := os.Open(p)
	defer f.Close()
	got, err := Read(f, int64(want.Sectors)*SectorSize)
	if err != nil {
		t.Fatal(err)
	}
	if got.DiskGUID != want.DiskGUID || len(got.Partitions) != 2 || string(got.BootCode[:8]) != "bootcode" {
		t.Fatalf("read back %+v", got)
	}
	for i := range want.Partitions {
		if got.Partitions[i] != want.Partitions[i] {
			t.Errorf("partition %d: read %+v, wrote %+v", i+1, got.Partitions[i], want.Partitions[i])
		}
	}
}

// TestAFlippedByteIsCaughtInEachCopy: every CRC is checked.
func TestAFlippedByteIsCaughtInEachCopy(t *testing.T) {
	tb := sampleTable()
	last := int64(tb.Sectors - 1)
	for name, off := range map[string]int64{
		"primary header":  SectorSize + 40,
		"primary entries": 2*SectorSize + 60,
		"backup entries":  (last-EntrySectors)*SectorSize + 60,
		"backup header":   last*SectorSize + 40,
	} {
		p := writeDisk(t, tb)
		f, _ := os.OpenFile(p, os.O_RDWR, 0)
		b := []byte{0}
		f.ReadAt(b, off)
		b[0] ^= 0xff
		f.WriteAt(b, off)
		if _, err := Read(f, int64(tb.Sectors)*SectorSize); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s corrupted: Read says %v", name, err)
		}
		f.Close()
	}
}

func TestBadTablesAreRefused(t *testing.T) {
	for name, mod := range map[string]func(*Table){
		"overlap":        func(t *Table) { t.Partitions[1].FirstLBA = t.Partitions[0].LastLBA },
		"before usable":  func(t *Table) { t.Partitions[0].FirstLBA = 10 },
		"past the end":   func(t *Table) { t.Partitions[1].LastLBA = t.Sectors - 2 },
		"no type":        func(t *Table) { t.Partitions[0].Type = GUID{} },
		"long name":      func(t *Table) { t.Partitions[0].Name = strings.Repeat("x", 37) },
		"long boot code": func(t *Table) { t.BootCode = make([]byte, 441) },
		"tiny disk":      func(t *Table) { t.Sectors = 60; t.Partitions = nil },
	} {
		tb := sampleTable()
		mod(&tb)
		if err := tb.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestGUIDTextRoundTripsAndUsesMixedEndian(t *testing.T) {
	s := "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
	g := MustParseGUID(s)
	if g.String() != s || g[0] != 0x28 || g[8] != 0xba {
		t.Errorf("%s parsed as % x, printed %s", s, g[:], g)
	}
	if _, err := ParseGUID("c12a7328f81f11d2ba4b00a0c93ec93b"); err == nil {
		t.Error("a GUID without dashes was accepted")
	}
	if DerivedGUID("a") != DerivedGUID("a") || DerivedGUID("a") == DerivedGUID("b") {
		t.Error("derived GUIDs are not a function of their seed")
	}
}

// TestUtilLinuxAgrees: sfdisk and fdisk read the table as written:
// partitions, types, attributes, no complaints about the backup.
func TestUtilLinuxAgrees(t *testing.T) {
	sfdisk := testlab.RequireTool(t, "sfdisk", "fdisk")
	fdisk := testlab.RequireTool(t, "fdisk", "fdisk")
	tb := sampleTable()
	p := writeDisk(t, tb)
	out, err := exec.Command(sfdisk, "--json", p).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var j struct {
		PartitionTable struct {
			Label, ID  string
			FirstLBA   uint64 `json:"firstlba"`
			LastLBA    uint64 `json:"lastlba"`
			Partitions []struct {
				Start, Size uint64
				Type, UUID  string
				Name, Attrs string
			}
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pt := j.PartitionTable
	if pt.Label != "gpt" || !strings.EqualFold(pt.ID, tb.DiskGUID.String()) || pt.FirstLBA != FirstUsableLBA || pt.LastLBA != tb.LastUsableLBA() {
		t.Errorf("sfdisk sees %+v", pt)
	}
	if len(pt.Partitions) != len(tb.Partitions) {
		t.Fatalf("sfdisk sees %d partitions, want %d", len(pt.Partitions), len(tb.Partitions))
	}
	for i, w := range tb.Partitions {
		g := pt.Partitions[i]
		if g.Start != w.FirstLBA || g.Size != w.LastLBA-w.FirstLBA+1 || !strings.EqualFold(g.Type, w.Type.String()) ||
			!strings.EqualFold(g.UUID, w.GUID.String()) || g.Name != w.Name {
			t.Errorf("partition %d: sfdisk %+v, wrote %+v", i+1, g, w)
		}
		if bios := strings.Contains(g.Attrs, "LegacyBIOSBootable"); bios != (w.Attributes&AttrLegacyBIOSBoot != 0) {
			t.Errorf("partition %d: sfdisk attrs %q, wrote %#x", i+1, g.Attrs, w.Attributes)
		}
	}
	l, err := exec.Command(fdisk, "-l", p).CombinedOutput()
	if err != nil {
		t.Fatalf("fdisk -l: %v\n%s", err, l)
	}
	for _, want := range []string{"Disklabel type: gpt", "EFI System", "Linux root (x86-64)"} {
		if !strings.Contains(string(l), want) {
			t.Errorf("fdisk -l lacks %q:\n%s", want, l)
		}
	}
	for _, bad := range []string{"corrupt", "invalid", "mismatch"} {
		if strings.Contains(strings.ToLower(string(l)), bad) {
			t.Errorf("fdisk -l complains (%q):\n%s", bad, l)
		}
	}
}
