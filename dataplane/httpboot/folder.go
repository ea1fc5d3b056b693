package httpboot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"syscall"
	"time"
)

// FolderFiles serves the files below a directory. It opens through os.Root,
// so a symlink that leads outside the directory is refused by the lookup
// itself, not by a check that could race with a rename.
//
// ETags: a file whose base name is 64 hex digits is taken to be named by its
// sha256 (the MDB's content-addressed blobs) and is never read to hash it;
// any other file is hashed once per (inode, size, mtime) and remembered.
type FolderFiles struct {
	root *os.Root

	mu     sync.Mutex
	hashes map[hashKey]string
}

type hashKey struct {
	name  string
	ino   uint64
	size  int64
	mtime int64
}

// NewFolderFiles opens dir as the root of served files.
func NewFolderFiles(dir string) (*FolderFiles, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("httpboot: open root %q: %w", dir, err)
	}
	return &FolderFiles{root: r, hashes: make(map[hashKey]string)}, nil
}

// Close releases the root.
func (f *FolderFiles) Close() error { return f.root.Close() }

// Open opens name (a clean relative slash path) below the root.
func (f *FolderFiles) Open(_ context.Context, name string) (File, error) {
	fh, err := f.root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		// os.Root reports "path escapes from parent" for symlinks out of
		// the root; that and permission errors are refusals.
		return nil, fmt.Errorf("%w: %q: %v", ErrForbidden, name, err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("httpboot: stat %q: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("%w: %q is not a regular file", ErrForbidden, name)
	}
	tag, err := f.etag(name, fh, st)
	if err != nil {
		fh.Close()
		return nil, err
	}
	return &osFile{File: fh, size: st.Size(), mod: st.ModTime(), etag: tag}, nil
}

func (f *FolderFiles) etag(name string, fh *os.File, st fs.FileInfo) (string, error) {
	if base := path.Base(name); isSHA256Hex(base) {
		return `"` + base + `"`, nil
	}
	k := hashKey{name: name, size: st.Size(), mtime: st.ModTime().UnixNano()}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		k.ino = uint64(s.Ino)
	}
	f.mu.Lock()
	tag, ok := f.hashes[k]
	f.mu.Unlock()
	if ok {
		return tag, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", fmt.Errorf("httpboot: hash %q: %w", name, err)
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("httpboot: rewind %q: %w", name, err)
	}
	tag = `"` + hex.EncodeToString(h.Sum(nil)) + `"`
	f.mu.Lock()
	f.hashes[k] = tag
	f.mu.Unlock()
	return tag, nil
}

// isSHA256Hex reports whether s is 64 hex digits (either case, as
// hex.DecodeString takes them), without decoding it: it runs per request.
func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

type osFile struct {
	*os.File
	size int64
	mod  time.Time
	etag string
}

func (o *osFile) Size() int64        { return o.size }
func (o *osFile) ModTime() time.Time { return o.mod }
func (o *osFile) ETag() string       { return o.etag }
