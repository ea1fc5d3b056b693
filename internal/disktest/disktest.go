// Package disktest mounts small filesystems for tests that fill a disk:
// a tmpfs, or ext4 in a file on a loop device. Tests only; it needs root
// (mount, losetup) and fails under CI=true without it, skips otherwise.
package disktest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"osim/internal/testlab"
)

// Kinds are the filesystems Mount makes.
var Kinds = []string{"tmpfs", "ext4"}

// Mount mounts a filesystem of kind ("tmpfs" or "ext4") and size bytes
// on a new directory and unmounts it (and frees its loop device) when
// the test ends.
func Mount(t *testing.T, kind string, size int64) string {
	t.Helper()
	testlab.RequireRoot(t, "mounting a "+kind)
	base := t.TempDir()
	dir := filepath.Join(base, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	switch kind {
	case "tmpfs":
		run(t, "mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "osim-test", dir)
	case "ext4":
		img := filepath.Join(base, "fs.img")
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, size); err != nil {
			t.Fatal(err)
		}
		// -m 0: no blocks kept for root, so what statfs calls available is
		// what the filesystem holds; -E nodiscard: fast on a sparse file.
		run(t, "mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard", img)
		run(t, "mount", "-o", "loop", img, dir)
	default:
		t.Fatalf("disktest: unknown kind %q", kind)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// Fill allocates a file in dir so that about leave bytes stay available,
// and returns its path (remove it to free the space).
func Fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	f, err := os.CreateTemp(dir, "filler-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// ext4 needs blocks of its own for the extents: take what it gives,
	// in halving steps, down to a block.
	var off int64
	for chunk := avail - leave; chunk >= 4096; {
		err := unix.Fallocate(int(f.Fd()), 0, off, chunk)
		switch {
		case err == nil:
			off += chunk
			if off >= avail-leave {
				chunk = 0
			}
		case errors.Is(err, unix.ENOSPC):
			chunk /= 2
		default:
			t.Fatalf("fallocate %d bytes at %d in %s: %v", chunk, off, dir, err)
		}
	}
	return f.Name()
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
