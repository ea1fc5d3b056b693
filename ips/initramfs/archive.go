// Package initramfs writes a Linux initramfs: a newc cpio archive (u-root's
// pkg/cpio writer), gzip or zstd compressed, deterministic: entries sorted
// by path, parents added, every mtime fixed, owner 0:0, inode numbers in
// path order. The same inputs give the same bytes.
package initramfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// MTime is the modification time of every entry (seconds since the epoch):
// fixed, so an archive does not change with the build's clock.
const MTime = 0

// ErrBadPath: an entry name that is empty, absolute after cleaning or
// leaves the archive root.
var ErrBadPath = errors.New("initramfs: bad path")

// Archive is the set of entries of an initramfs, keyed by clean path
// without a leading slash.
type Archive struct {
	entries map[string]entry
}

type entry struct {
	mode         uint64 // type and permission bits
	data         []byte // regular file contents or symlink target
	src          string // regular file read at write time (when data is nil)
	size         int64
	major, minor uint64 // character devices
}

// New returns an empty archive.
func New() *Archive { return &Archive{entries: map[string]entry{}} }

func clean(name string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" || c == "" || strings.Contains(name, "\x00") {
		return "", fmt.Errorf("%w: %q", ErrBadPath, name)
	}
	return c, nil
}

// add records e at name, and the parent directories (0755) it needs.
// A second entry for a path replaces the first, unless one is a directory
// and the other is not.
func (a *Archive) add(name string, e entry) error {
	c, err := clean(name)
	if err != nil {
		return err
	}
	if old, ok := a.entries[c]; ok && (old.mode&cpio.S_IFMT == cpio.S_IFDIR) != (e.mode&cpio.S_IFMT == cpio.S_IFDIR) {
		return fmt.Errorf("initramfs: %s: a directory and a file at the same path", c)
	}
	for d := path.Dir(c); d != "."; d = path.Dir(d) {
		if old, ok := a.entries[d]; ok {
			if old.mode&cpio.S_IFMT != cpio.S_IFDIR {
				return fmt.Errorf("initramfs: %s: parent %s is not a directory", c, d)
			}
			continue
		}
		a.entries[d] = entry{mode: cpio.S_IFDIR | 0o755}
	}
	a.entries[c] = e
	return nil
}

// Dir adds an (empty) directory.
func (a *Archive) Dir(name string, perm os.FileMode) error {
	return a.add(name, entry{mode: cpio.S_IFDIR | uint64(perm.Perm())})
}

// File adds a regular file holding data.
func (a *Archive) File(name string, data []byte, perm os.FileMode) error {
	return a.add(name, entry{mode: cpio.S_IFREG | uint64(perm.Perm()), data: data, size: int64(len(data))})
}

// CopyFile adds the regular file src as name; its contents are read when
// the archive is written, its size now (a file that changes between fails).
func (a *Archive) CopyFile(name, src string, perm os.FileMode) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("initramfs: %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("initramfs: %s: source %s is not a regular file", name, src)
	}
	return a.add(name, entry{mode: cpio.S_IFREG | uint64(perm.Perm()), src: src, size: fi.Size()})
}

// Symlink adds a symbolic link name → target.
func (a *Archive) Symlink(name, target string) error {
	if target == "" {
		return fmt.Errorf("initramfs: symlink %s: empty target", name)
	}
	return a.add(name, entry{mode: cpio.S_IFLNK | 0o777, data: []byte(target), size: int64(len(target))})
}

// CharDev adds a character device node (e.g. dev/console 5:1): the kernel
// opens /dev/console for init before devtmpfs is mounted.
func (a *Archive) CharDev(name string, perm os.FileMode, major, minor uint64) error {
	return a.add(name, entry{mode: cpio.S_IFCHR | uint64(perm.Perm()), major: major, minor: minor})
}

// Names lists the entries' paths in archive order.
func (a *Archive) Names() []string {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	// A parent is a prefix of its children, so it sorts before them.
	sort.Strings(names)
	return names
}

// WriteTo writes the uncompressed newc archive with its trailer.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	rw := cpio.Newc.Writer(cw)
	for i, name := range a.Names() {
		rec, closeFn, err := a.record(name, uint64(i+1))
		if err != nil {
			return cw.n, err
		}
		err = rw.WriteRecord(rec)
		if closeFn != nil {
			closeFn()
		}
		if err != nil {
			return cw.n, fmt.Errorf("initramfs: writing %s: %w", name, err)
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return cw.n, fmt.Errorf("initramfs: writing the trailer: %w", err)
	}
	return cw.n, nil
}

func (a *Archive) record(name string, ino uint64) (cpio.Record, func(), error) {
	e := a.entries[name]
	info := cpio.Info{Ino: ino, Mode: e.mode, NLink: 1, MTime: MTime, Name: name, Rmajor: e.major, Rminor: e.minor}
	if e.mode&cpio.S_IFMT == cpio.S_IFDIR {
		info.NLink = 2
	}
	switch {
	case e.data != nil:
		return cpio.StaticRecord(e.data, info), nil, nil
	case e.src != "":
		f, err := os.Open(e.src)
		if err != nil {
			return cpio.Record{}, nil, fmt.Errorf("initramfs: %s: %w", name, err)
		}
		fi, err := f.Stat()
		if err == nil && fi.Size() != e.size {
			err = fmt.Errorf("initramfs: %s: %s changed size from %d to %d bytes since it was added", name, e.src, e.size, fi.Size())
		}
		if err != nil {
			f.Close()
			return cpio.Record{}, nil, err
		}
		info.FileSize = uint64(e.size)
		// WriteRecord closes what it read (io.Closer); closing twice is harmless.
		return cpio.Record{ReaderAt: f, Info: info}, func() { f.Close() }, nil
	default:
		if e.mode&cpio.S_IFMT == cpio.S_IFREG {
			return cpio.StaticRecord([]byte{}, info), nil, nil
		}
		return cpio.Record{Info: info}, nil, nil
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
