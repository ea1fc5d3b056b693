package initramfs

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"

	"osim/internal/testlab"
)

// sample builds the same archive from the same inputs; the source file's
// mtime is moved between calls so a leak of it would show.
func sample(t *testing.T, src string, mtime time.Time) *Archive {
	t.Helper()
	if err := os.Chtimes(src, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	a := New()
	for _, err := range []error{
		a.CopyFile("/init", src, 0o755),
		a.File("etc/osim/modules", []byte("kernel/b.ko\nkernel/a.ko\n"), 0o644),
		a.Symlink("bin/sh", "busybox"),
		a.CharDev("dev/console", 0o600, 5, 1),
		a.Dir("proc", 0o755),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func TestSameInputsGiveTheSameBytes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(src, bytes.Repeat([]byte("osim"), 5000), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range Compressions {
		var one, two bytes.Buffer
		if err := Write(&one, sample(t, src, time.Unix(1e9, 0)), c); err != nil {
			t.Fatal(err)
		}
		if err := Write(&two, sample(t, src, time.Now()), c); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(one.Bytes(), two.Bytes()) {
			t.Errorf("%s: two builds from the same inputs differ (%d and %d bytes)", c, one.Len(), two.Len())
		}
	}
}

// records reads an uncompressed archive back with u-root's reader.
func records(t *testing.T, raw []byte) []cpio.Record {
	t.Helper()
	rr := cpio.Newc.Reader(bytes.NewReader(raw))
	var out []cpio.Record
	for {
		r, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Name == cpio.Trailer {
			break
		}
		out = append(out, r)
	}
	return out
}

func TestEntriesAreRootOwnedUndatedAndParentsComeFirst(t *testing.T) {
	src := filepath.Join(t.TempDir(), "init")
	os.WriteFile(src, []byte("#!/bin/sh\n"), 0o755)
	var buf bytes.Buffer
	if _, err := sample(t, src, time.Now()).WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range records(t, buf.Bytes()) {
		if r.UID != 0 || r.GID != 0 || r.MTime != MTime {
			t.Errorf("%s: uid %d gid %d mtime %d, want 0 0 %d", r.Name, r.UID, r.GID, r.MTime, MTime)
		}
		if d := filepath.Dir(r.Name); d != "." && !seen[d] {
			t.Errorf("%s comes before its parent %s", r.Name, d)
		}
		seen[r.Name] = true
	}
	for _, want := range []string{"init", "etc", "etc/osim", "etc/osim/modules", "bin/sh", "dev/console", "proc"} {
		if !seen[want] {
			t.Errorf("%s missing from the archive", want)
		}
	}
}

// TestGNUCpioListsAndExtractsIt: the archive is what the kernel and GNU
// cpio read, contents and link targets intact.
func TestGNUCpioListsAndExtractsIt(t *testing.T) {
	cp := testlab.RequireTool(t, "cpio", "cpio")
	dir := t.TempDir()
	src := filepath.Join(dir, "init")
	os.WriteFile(src, []byte("#!/bin/sh\necho hi\n"), 0o755)
	var gz bytes.Buffer
	if err := Write(&gz, sample(t, src, time.Now()), Gzip); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&gz)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	out := filepath.Join(dir, "x")
	os.Mkdir(out, 0o755)
	cmd := exec.Command(cp, "-id", "--no-absolute-filenames", "--nonmatching", "dev/console")
	cmd.Dir, cmd.Stdin = out, bytes.NewReader(raw)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, b)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "init")); string(b) != "#!/bin/sh\necho hi\n" {
		t.Errorf("init extracted as %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(out, "bin/sh")); l != "busybox" {
		t.Errorf("bin/sh links to %q, want busybox", l)
	}
	list := exec.Command(cp, "-t")
	list.Stdin = bytes.NewReader(raw)
	b, err := list.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(b)); len(got) != len(records(t, raw)) {
		t.Errorf("cpio -t lists %d entries, the archive holds %d", len(got), len(records(t, raw)))
	}
}

func TestZstdArchiveDecompresses(t *testing.T) {
	var z bytes.Buffer
	a := New()
	a.File("init", []byte("x"), 0o755)
	if err := Write(&z, a, Zstd); err != nil {
		t.Fatal(err)
	}
	d, _ := zstd.NewReader(&z)
	raw, err := io.ReadAll(d)
	if err != nil {
		t.Fatal(err)
	}
	if r := records(t, raw); len(r) != 1 || r[0].Name != "init" {
		t.Errorf("records %v", r)
	}
}

func TestBadInputsAreRefused(t *testing.T) {
	a := New()
	if err := a.File("", nil, 0o644); !errors.Is(err, ErrBadPath) {
		t.Errorf("empty name: %v", err)
	}
	if err := a.File("/", nil, 0o644); !errors.Is(err, ErrBadPath) {
		t.Errorf("root as a file: %v", err)
	}
	a.File("etc/x", nil, 0o644)
	if err := a.File("etc/x/y", nil, 0o644); err == nil {
		t.Error("a file below a file was accepted")
	}
	if err := a.Dir("etc/x", 0o755); err == nil {
		t.Error("a directory over a file was accepted")
	}
	if err := a.CopyFile("init", "/nonexistent/osim", 0o755); err == nil || !strings.Contains(err.Error(), "/nonexistent/osim") {
		t.Errorf("missing source: %v", err)
	}
	if err := Write(io.Discard, a, "lz4"); err == nil || !strings.Contains(err.Error(), "lz4") {
		t.Errorf("unknown compression: %v", err)
	}
	// ../ stays inside the archive root.
	a.File("../../etc/passwd", []byte("x"), 0o644)
	for _, n := range a.Names() {
		if strings.HasPrefix(n, "..") || strings.HasPrefix(n, "/") {
			t.Errorf("entry %q leaves the root", n)
		}
	}
}

func TestASourceThatChangesSizeFailsTheWrite(t *testing.T) {
	src := filepath.Join(t.TempDir(), "f")
	os.WriteFile(src, []byte("short"), 0o644)
	a := New()
	a.CopyFile("f", src, 0o644)
	os.WriteFile(src, []byte("much longer now"), 0o644)
	if _, err := a.WriteTo(io.Discard); err == nil || !strings.Contains(err.Error(), "changed size") {
		t.Errorf("write after the source grew: %v", err)
	}
}

func TestKernelConfigSaysWhatItUnpacks(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfg, []byte("CONFIG_RD_GZIP=y\n# CONFIG_RD_ZSTD is not set\n"), 0o644)
	if ok, err := KernelSupports(cfg, Gzip); !ok || err != nil {
		t.Errorf("gzip: %v %v", ok, err)
	}
	if ok, err := KernelSupports(cfg, Zstd); ok || err != nil {
		t.Errorf("zstd: %v %v", ok, err)
	}
}
