package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"syscall"
)

// File is what a Resolver hands the engine: readable, seekable, sized.
// If it also has a CacheKey() string method, the shared cache may keep its
// bytes; if it has a Bytes() []byte method, the engine sends from that
// slice without copying.
type File interface {
	io.ReadSeeker
	io.Closer
	Size() int64
}

// Resolver maps (client, requested name) to a file. It is the engine's seam:
// a folder for standalone runs, staged blobs and rendered per-target files
// on a boot server.
type Resolver interface {
	Resolve(ctx context.Context, client netip.AddrPort, name string) (File, error)
}

// Sentinel errors a Resolver returns so the engine answers with the right code.
var (
	ErrFileNotFound = errors.New("file not found")
	ErrAccessDenied = errors.New("access violation")
)

// CleanName turns a requested name into a relative slash path or refuses it.
// Backslashes become slashes (Windows boot files ask for \boot\x64\wdsnbp.com)
// and leading slashes are dropped; "..", NUL bytes and names over 255 bytes
// are refused with ErrAccessDenied.
func CleanName(name string) (string, error) {
	if len(name) > maxNameLen {
		return "", fmt.Errorf("%w: name of %d bytes exceeds %d", ErrAccessDenied, len(name), maxNameLen)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: name contains a NUL byte", ErrAccessDenied)
	}
	n := strings.ReplaceAll(name, `\`, "/")
	n = strings.TrimLeft(n, "/")
	for _, el := range strings.Split(n, "/") {
		if el == ".." {
			return "", fmt.Errorf("%w: %q leaves the root", ErrAccessDenied, name)
		}
	}
	// Collapse "a//b" and "./a" without ever climbing.
	parts := strings.Split(n, "/")
	out := parts[:0]
	for _, el := range parts {
		if el == "" || el == "." {
			continue
		}
		out = append(out, el)
	}
	if len(out) == 0 {
		return "", fmt.Errorf("%w: %q names no file", ErrFileNotFound, name)
	}
	return strings.Join(out, "/"), nil
}

// FolderResolver serves files below a root folder. It opens through os.Root,
// so symlinks that lead outside the root are refused by the kernel-facing
// lookup itself, not by a check that could race with a rename.
type FolderResolver struct {
	root *os.Root
	dir  string
}

// NewFolderResolver opens dir as the root of served files.
func NewFolderResolver(dir string) (*FolderResolver, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("tftp: open root %q: %w", dir, err)
	}
	return &FolderResolver{root: r, dir: dir}, nil
}

// Close releases the root.
func (f *FolderResolver) Close() error { return f.root.Close() }

// Resolve opens name below the root.
func (f *FolderResolver) Resolve(_ context.Context, _ netip.AddrPort, name string) (File, error) {
	clean, err := CleanName(name)
	if err != nil {
		return nil, err
	}
	fh, err := f.root.Open(clean)
	if err != nil {
		return nil, classifyOpenError(clean, err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("stat %q: %w", clean, err)
	}
	if !st.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("%w: %q is not a regular file", ErrAccessDenied, clean)
	}
	return &osFile{File: fh, size: st.Size(), key: cacheKeyOf(f.dir, clean, st)}, nil
}

func classifyOpenError(name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %q", ErrFileNotFound, name)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %q: %v", ErrAccessDenied, name, err)
	default:
		// os.Root reports "path escapes from parent" for symlinks out of the
		// root; every other open failure is also a refusal, not a crash.
		return fmt.Errorf("%w: %q: %v", ErrAccessDenied, name, err)
	}
}

type osFile struct {
	*os.File
	size int64
	key  string
}

func (o *osFile) Size() int64      { return o.size }
func (o *osFile) CacheKey() string { return o.key }

// cacheKeyOf identifies a file's content well enough for a read cache:
// replacing or editing the file changes its inode, size or mtime.
func cacheKeyOf(dir, name string, st fs.FileInfo) string {
	ino := uint64(0)
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = uint64(s.Ino)
	}
	return fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00%d", dir, name, st.Size(), st.ModTime().UnixNano(), ino)
}
