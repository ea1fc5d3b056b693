package kmod

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"osim/internal/testlab"
)

func tree(t *testing.T, files map[string]string) *Tree {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// before reports whether every dependency a of b comes earlier in files.
func assertBefore(t *testing.T, files []string, a, b string) {
	t.Helper()
	i, j := slices.Index(files, a), slices.Index(files, b)
	if i < 0 || j < 0 || i > j {
		t.Errorf("%s (at %d) must load before %s (at %d): %v", a, i, b, j, files)
	}
}

func TestDependenciesLoadBeforeTheirUsersOnce(t *testing.T) {
	tr := tree(t, map[string]string{
		"modules.dep":     "k/blk.ko: k/ring.ko k/virtio.ko\nk/pci.ko: k/virtio.ko k/ring.ko\nk/ring.ko: k/virtio.ko\nk/virtio.ko:\nk/ext4.ko: k/jbd2.ko\nk/jbd2.ko:\nk/crc-gen.ko:\nk/crc-intel.ko:\n",
		"modules.softdep": "softdep ext4 pre: crypto-crc\n",
		"modules.alias":   "alias crypto-crc crc_intel\nalias crypto-crc crc_gen\nalias pci:v*d* blk\n",
		"modules.builtin": "k/sd_mod.ko\n",
	})
	s := tr.Resolve([]string{"pci", "blk", "ext4", "sd-mod", "nope"})
	assertBefore(t, s.Files, "k/virtio.ko", "k/ring.ko")
	assertBefore(t, s.Files, "k/ring.ko", "k/pci.ko")
	assertBefore(t, s.Files, "k/pci.ko", "k/blk.ko") // the order asked for
	assertBefore(t, s.Files, "k/jbd2.ko", "k/ext4.ko")
	assertBefore(t, s.Files, "k/crc-intel.ko", "k/ext4.ko")
	assertBefore(t, s.Files, "k/crc-gen.ko", "k/ext4.ko")
	if len(s.Files) != 8 {
		t.Errorf("files %v: want each of the 8 modules once", s.Files)
	}
	if !slices.Equal(s.Missing, []string{"nope"}) || !slices.Equal(s.Builtin, []string{"sd_mod"}) {
		t.Errorf("missing %v builtin %v", s.Missing, s.Builtin)
	}
}

func TestNoModulesDepIsAnErrorNamingTheFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open without modules.dep: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "modules.dep"), []byte("garbage line\n"), 0o644)
	if _, err := Open(dir); err == nil {
		t.Error("a line without a colon was accepted")
	}
}

// TestDebianExt4BringsItsChecksumModules runs on the installed kernel:
// ext4 needs crc32c through a soft dependency nobody lists in modules.dep.
func TestDebianExt4BringsItsChecksumModules(t *testing.T) {
	ms, _ := filepath.Glob("/lib/modules/*/modules.dep")
	if len(ms) == 0 {
		testlab.Unavailable(t, "no /lib/modules/*/modules.dep: apt-get install linux-image-amd64")
	}
	tr, err := Open(filepath.Dir(ms[len(ms)-1]))
	if err != nil {
		t.Fatal(err)
	}
	s := tr.Resolve([]string{"ext4", "virtio_blk"})
	names := make([]string, len(s.Files))
	for i, f := range s.Files {
		names[i] = Name(f)
		if _, err := os.Stat(filepath.Join(tr.Dir, f)); err != nil {
			t.Errorf("resolved file %s: %v", f, err)
		}
	}
	if !slices.Contains(names, "crc32c_generic") || !slices.Contains(names, "jbd2") {
		t.Errorf("ext4's closure %v lacks crc32c_generic or jbd2", names)
	}
	assertBefore(t, names, "jbd2", "ext4")
	assertBefore(t, names, "crc32c_generic", "ext4")
}
