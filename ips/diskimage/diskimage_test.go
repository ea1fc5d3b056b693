package diskimage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"osim/ips/gpt"
	"osim/ips/internal/iptest"
)

// inputs writes a fake kernel, initrd, extra ESP file and root tree,
// their times set to when.
func inputs(t *testing.T, when time.Time) Spec {
	t.Helper()
	d := t.TempDir()
	files := map[string][]byte{
		"vmlinuz":             bytes.Repeat([]byte("K"), 300000),
		"initrd":              bytes.Repeat([]byte("I"), 200000),
		"extra":               []byte("hello"),
		"root/etc/os-release": []byte("ID=osim-test\n"),
		"root/var/lib/cloud/seed/nocloud/meta-data": []byte("local-hostname: h1\n"),
		// names a Debian tree holds: systemd's escapes, spaces; their
		// times must be clamped too (TestSameSpecGivesTheSameImage)
		`root/usr/lib/systemd/system/system-a\x2db.slice`: []byte("[Unit]\n"),
		"root/usr/share/doc/with space":                   []byte("x"),
	}
	for p, b := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(d, p)), 0o755)
		if err := os.WriteFile(filepath.Join(d, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("os-release", filepath.Join(d, "root/etc/link"))
	filepath.Walk(d, func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, when, when) })
	return Spec{
		Out: filepath.Join(d, "disk.img"), Kernel: filepath.Join(d, "vmlinuz"), Initrd: filepath.Join(d, "initrd"),
		Cmdline: "console=ttyS0 panic=-1", ESPFiles: map[string]string{"osim/extra.txt": filepath.Join(d, "extra")},
		RootDir: filepath.Join(d, "root"), Seed: "t",
	}
}

func TestSameSpecGivesTheSameImage(t *testing.T) {
	iptest.Tools(t)
	a, err := Build(context.Background(), inputs(t, time.Unix(1.6e9, 0)))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // FAT time stamps have a 2 s grain
	b, err := Build(context.Background(), inputs(t, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if a.Raw.SHA256 != b.Raw.SHA256 || a.Raw.Size != b.Raw.Size {
		t.Errorf("raw images differ: %+v and %+v", a.Raw, b.Raw)
	}
	if a.Compressed.SHA256 != b.Compressed.SHA256 {
		t.Errorf("zstd copies differ: %+v and %+v", a.Compressed, b.Compressed)
	}
}

func TestLayoutHoldsBothLoadersTheBootFilesAndTheRoot(t *testing.T) {
	iptest.Tools(t)
	spec := inputs(t, time.Now())
	res, err := Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(res.Raw.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb, err := gpt.Read(f, res.Raw.Size)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Partitions) != 2 || tb.Partitions[0].Type != gpt.TypeESP || tb.Partitions[0].Attributes&gpt.AttrLegacyBIOSBoot == 0 ||
		tb.Partitions[1].Type != gpt.TypeLinuxRootX64 || int64(tb.Partitions[1].FirstLBA)*gpt.SectorSize != res.RootOffset {
		t.Fatalf("partitions %+v", tb.Partitions)
	}
	mbr, _ := os.ReadFile(DefaultTools.GPTMBR)
	head := make([]byte, gpt.BootCodeSize)
	f.ReadAt(head, 0)
	if !bytes.Equal(head[:min(len(mbr), gpt.BootCodeSize)], mbr[:min(len(mbr), gpt.BootCodeSize)]) {
		t.Error("the MBR does not start with gptmbr.bin")
	}
	esp := res.Raw.Path + "@@" + itoa(res.ESPOffset)
	for p, want := range map[string]string{
		"/loader/entries/osim.conf": "options console=ttyS0 panic=-1",
		"/loader/loader.conf":       "timeout 0",
		"/syslinux.cfg":             "APPEND console=ttyS0 panic=-1",
		"/osim/extra.txt":           "hello",
	} {
		out, err := exec.Command("mtype", "-i", esp, "::"+p).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("ESP %s: %v %q, want it to hold %q", p, err, out, want)
		}
	}
	out, err := exec.Command("mdir", "-a", "-b", "-i", esp, "::/").CombinedOutput()
	if err != nil {
		t.Fatalf("mdir: %v\n%s", err, out)
	}
	for _, want := range []string{"ldlinux.sys", "ldlinux.c32", ESPKernel, ESPInitrd} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ESP root lacks %s:\n%s", want, out)
		}
	}
	if out, err := exec.Command("mdir", "-b", "-i", esp, "::/EFI/BOOT/").CombinedOutput(); err != nil || !strings.Contains(string(out), "BOOTX64.EFI") {
		t.Errorf("no \\EFI\\BOOT\\BOOTX64.EFI: %v\n%s", err, out)
	}
	// The root, cut out of the disk, is an ext4 labelled osimroot with the tree.
	root := filepath.Join(t.TempDir(), "root.img")
	part := make([]byte, (tb.Partitions[1].LastLBA-tb.Partitions[1].FirstLBA+1)*gpt.SectorSize)
	f.ReadAt(part, res.RootOffset)
	os.WriteFile(root, part, 0o644)
	if out, err := exec.Command("debugfs", "-R", "cat /var/lib/cloud/seed/nocloud/meta-data", root).Output(); err != nil || string(out) != "local-hostname: h1\n" {
		t.Errorf("root meta-data: %v %q", err, out)
	}
	if out, _ := exec.Command("dumpe2fs", "-h", root).CombinedOutput(); !strings.Contains(string(out), "osimroot") {
		t.Errorf("root label:\n%s", out)
	}
	if out, err := exec.Command("e2fsck", "-fn", root).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn found problems: %v\n%s", err, out)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestBadSpecsAreRefusedBeforeAnyWork(t *testing.T) {
	spec := inputs(t, time.Now())
	for name, mod := range map[string]func(*Spec){
		"no kernel":        func(s *Spec) { s.Kernel = "" },
		"missing initrd":   func(s *Spec) { s.Initrd = "/nonexistent/initrd" },
		"ESP too small":    func(s *Spec) { s.ESPSize = 100000 },
		"newline cmdline":  func(s *Spec) { s.Cmdline = "a\nb" },
		"long label":       func(s *Spec) { s.RootLabel = strings.Repeat("x", 17) },
		"overwrites entry": func(s *Spec) { s.ESPFiles = map[string]string{"/loader/loader.conf": spec.Kernel} },
	} {
		s := spec
		s.Out = filepath.Join(t.TempDir(), "x.img")
		mod(&s)
		if _, err := Build(context.Background(), s); err == nil {
			t.Errorf("%s: accepted", name)
		} else if _, statErr := os.Stat(s.Out); statErr == nil {
			t.Errorf("%s: refused (%v) but wrote %s", name, err, s.Out)
		} else if name == "no kernel" && !errors.Is(err, ErrSpec) {
			t.Errorf("%s: %v is not ErrSpec", name, err)
		}
	}
}
