package build

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// ErrUnsafeTar: an entry would land outside the root or through a link.
var ErrUnsafeTar = errors.New("build: unsafe tarball entry")

// extract unpacks the tarball (compression "", gzip or zstd) into root.
// Entries are kept inside root: ".." and absolute names are refused, and
// nothing is written through a symlink the tarball made. Owners are kept
// when running as root (mke2fs copies them into the image); device nodes
// need root and are skipped otherwise (counted in skipped).
func extract(tarball, compression, root string) (skipped int, err error) {
	f, err := os.Open(tarball)
	if err != nil {
		return 0, fmt.Errorf("build: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	switch compression {
	case "gzip":
		zr, err := gzip.NewReader(f)
		if err != nil {
			return 0, fmt.Errorf("build: %s: %w", tarball, err)
		}
		defer zr.Close()
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(f)
		if err != nil {
			return 0, fmt.Errorf("build: %s: %w", tarball, err)
		}
		defer zr.Close()
		r = zr
	}
	asRoot := os.Geteuid() == 0
	tr := tar.NewReader(r)
	type dirMode struct {
		path string
		mode os.FileMode
	}
	var dirs []dirMode
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return skipped, fmt.Errorf("build: %s: %w", tarball, err)
		}
		rel, err := entryPath(h.Name)
		if err != nil {
			return skipped, fmt.Errorf("%w: %s: %q", ErrUnsafeTar, tarball, h.Name)
		}
		if rel == "." {
			continue
		}
		dst := filepath.Join(root, rel)
		if err := noLinkBetween(root, rel); err != nil {
			return skipped, fmt.Errorf("%w: %s: %q: %v", ErrUnsafeTar, tarball, h.Name, err)
		}
		mode := fs.FileMode(h.Mode).Perm() | modeBits(h.Mode)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return skipped, fmt.Errorf("build: %w", err)
			}
			dirs = append(dirs, dirMode{dst, mode})
		case tar.TypeReg:
			if err := writeEntry(dst, tr, mode); err != nil {
				return skipped, err
			}
		case tar.TypeSymlink:
			os.Remove(dst)
			if err := os.Symlink(h.Linkname, dst); err != nil {
				return skipped, fmt.Errorf("build: %w", err)
			}
		case tar.TypeLink:
			target, err := entryPath(h.Linkname)
			if err != nil || noLinkBetween(root, target) != nil {
				return skipped, fmt.Errorf("%w: %s: hard link %q to %q", ErrUnsafeTar, tarball, h.Name, h.Linkname)
			}
			os.Remove(dst)
			if err := os.Link(filepath.Join(root, target), dst); err != nil {
				return skipped, fmt.Errorf("build: %w", err)
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			if !asRoot && h.Typeflag != tar.TypeFifo {
				skipped++
				continue
			}
			if err := mknod(dst, h); err != nil {
				return skipped, fmt.Errorf("build: %s: %w", h.Name, err)
			}
		default:
			skipped++
			continue
		}
		if asRoot {
			if err := os.Lchown(dst, h.Uid, h.Gid); err != nil {
				return skipped, fmt.Errorf("build: %w", err)
			}
		}
		if h.Typeflag != tar.TypeSymlink && h.Typeflag != tar.TypeDir {
			if err := os.Chmod(dst, mode); err != nil {
				return skipped, fmt.Errorf("build: %w", err)
			}
		}
	}
	// Directory modes last: a read-only directory would refuse its files.
	for _, d := range dirs {
		if err := os.Chmod(d.path, d.mode); err != nil {
			return skipped, fmt.Errorf("build: %w", err)
		}
	}
	return skipped, nil
}

// entryPath cleans a tar name into a path relative to the root.
func entryPath(name string) (string, error) {
	c := path.Clean("/" + name)
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("leaves the root")
		}
	}
	return filepath.FromSlash(strings.TrimPrefix(c, "/")), nil
}

// noLinkBetween refuses a path whose parent folders hold a symlink: a
// tarball could otherwise write through a link it made to outside root.
func noLinkBetween(root, rel string) error {
	dir := root
	parts := strings.Split(filepath.Dir(rel), string(filepath.Separator))
	for _, p := range parts {
		if p == "." || p == "" {
			continue
		}
		dir = filepath.Join(dir, p)
		fi, err := os.Lstat(dir)
		if errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symlink", dir)
		}
	}
	return nil
}

func writeEntry(dst string, r io.Reader, mode os.FileMode) error {
	os.Remove(dst) // an earlier entry of the same name, or a link
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode.Perm()|0o200)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("build: writing %s: %w", dst, err)
	}
	return f.Close()
}

// modeBits: setuid, setgid and sticky from a tar mode.
func modeBits(m int64) os.FileMode {
	var b os.FileMode
	if m&04000 != 0 {
		b |= os.ModeSetuid
	}
	if m&02000 != 0 {
		b |= os.ModeSetgid
	}
	if m&01000 != 0 {
		b |= os.ModeSticky
	}
	return b
}

func mknod(dst string, h *tar.Header) error {
	mode := uint32(h.Mode & 07777)
	switch h.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	os.Remove(dst)
	return unix.Mknod(dst, mode, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))))
}

// owner is a file's uid and gid.
func owner(fi os.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}
