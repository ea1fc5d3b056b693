package mdb

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
)

func (d *DB) blobPath(sha string) string {
	return filepath.Join(d.blobDir, "sha256", sha[:2], sha)
}

func (d *DB) partialPath(sha string) string {
	return filepath.Join(d.blobDir, "partial", sha)
}

func (d *DB) blobLock(sha string) func() {
	d.blobMu.Lock()
	m, ok := d.blobLocks[sha]
	if !ok {
		m = &sync.Mutex{}
		d.blobLocks[sha] = m
	}
	d.blobMu.Unlock()
	m.Lock()
	return m.Unlock
}

// completeSize returns the size of a complete blob, or -1.
func (d *DB) completeSize(sha string) (int64, error) {
	fi, err := os.Stat(d.blobPath(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return -1, fmt.Errorf("mdb: blob %s: %w", sha, err)
	}
	return fi.Size(), nil
}

func (d *DB) uploadSize(sha string) (int64, bool, error) {
	var size int64
	var ok bool
	err := d.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k(pUpload, sha))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			if len(b) == 8 {
				size, ok = int64(binary.BigEndian.Uint64(b)), true
			}
			return nil
		})
	})
	return size, ok, err
}

func (d *DB) setUpload(sha string, size int64) error {
	return d.db.Update(func(txn *badger.Txn) error {
		if size < 0 {
			return txn.Delete(k(pUpload, sha))
		}
		return txn.Set(k(pUpload, sha), u64(uint64(size)))
	})
}

func (d *DB) blobStatus(sha string) (api.BlobStatus, bool, error) {
	st := api.BlobStatus{SHA256: sha}
	n, err := d.completeSize(sha)
	if err != nil {
		return st, false, err
	}
	if n >= 0 {
		st.Size, st.Received, st.Complete = n, n, true
		return st, true, nil
	}
	size, ok, err := d.uploadSize(sha)
	if err != nil || !ok {
		return st, false, err
	}
	st.Size = size
	fi, err := os.Stat(d.partialPath(sha))
	if err == nil {
		st.Received = fi.Size()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return st, false, err
	}
	return st, true, nil
}

// BlobStatus says how much of a blob is stored.
func (d *DB) BlobStatus(ctx context.Context, sha string) (api.BlobStatus, error) {
	if err := ctx.Err(); err != nil {
		return api.BlobStatus{}, err
	}
	if !api.ValidSHA256(sha) {
		return api.BlobStatus{}, fmt.Errorf("%w: sha256: %q is not 64 lower-case hex digits", ErrInvalid, sha)
	}
	defer d.blobLock(sha)()
	st, ok, err := d.blobStatus(sha)
	if err == nil && !ok {
		err = fmt.Errorf("%w: blob %s", ErrNotFound, sha)
	}
	return st, err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// WriteBlob appends r at offset to the upload of sha (see Store).
func (d *DB) WriteBlob(ctx context.Context, sha string, size, offset int64, r io.Reader) (api.BlobStatus, error) {
	st := api.BlobStatus{SHA256: sha, Size: size}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if !api.ValidSHA256(sha) {
		return st, fmt.Errorf("%w: sha256: %q is not 64 lower-case hex digits", ErrInvalid, sha)
	}
	if size < 0 || offset < 0 || offset > size {
		return st, fmt.Errorf("%w: blob %s: offset %d and size %d", ErrInvalid, sha, offset, size)
	}
	defer d.blobLock(sha)()
	cur, ok, err := d.blobStatus(sha)
	if err != nil {
		return st, err
	}
	if ok && cur.Size != size {
		return cur, fmt.Errorf("%w: blob %s has size %d, not %d", ErrConflict, sha, cur.Size, size)
	}
	if cur.Complete {
		return cur, nil
	}
	if !ok {
		if err := d.setUpload(sha, size); err != nil {
			return st, fmt.Errorf("mdb: blob %s: %w", sha, err)
		}
		cur = api.BlobStatus{SHA256: sha, Size: size}
	}
	if offset != cur.Received {
		return cur, fmt.Errorf("%w: blob %s: offset %d, but %d bytes are stored: resume at %d", ErrConflict, sha, offset, cur.Received, cur.Received)
	}
	f, err := os.OpenFile(d.partialPath(sha), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return cur, fmt.Errorf("mdb: blob %s: %w", sha, err)
	}
	n, cerr := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, size-offset+1))
	cur.Received += n
	if cur.Received > size {
		cerr = fmt.Errorf("%w: blob %s: more than the announced %d bytes", ErrInvalid, sha, size)
		if err := f.Truncate(offset); err == nil {
			cur.Received = offset
		}
	}
	if err := f.Sync(); err != nil && cerr == nil {
		cerr = err
	}
	if err := f.Close(); err != nil && cerr == nil {
		cerr = err
	}
	if cerr != nil {
		return cur, fmt.Errorf("mdb: blob %s: %w", sha, cerr)
	}
	if cur.Received < size {
		return cur, nil
	}
	return d.finishBlob(sha, cur)
}

// finishBlob hashes a fully received upload and moves it into place.
func (d *DB) finishBlob(sha string, st api.BlobStatus) (api.BlobStatus, error) {
	pp := d.partialPath(sha)
	f, err := os.Open(pp)
	if err != nil {
		return st, fmt.Errorf("mdb: blob %s: %w", sha, err)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return st, fmt.Errorf("mdb: blob %s: %w", sha, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		os.Remove(pp)
		if err := d.setUpload(sha, -1); err != nil {
			d.log.Warn("mdb: forget failed upload", "sha256", sha, "err", err)
		}
		return api.BlobStatus{SHA256: sha, Size: st.Size}, fmt.Errorf("%w: blob %s: the %d bytes hash to %s; upload discarded", ErrChecksum, sha, st.Size, got)
	}
	final := d.blobPath(sha)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return st, fmt.Errorf("mdb: blob %s: %w", sha, err)
	}
	if err := os.Rename(pp, final); err != nil {
		return st, fmt.Errorf("mdb: blob %s: %w", sha, err)
	}
	if dir, err := os.Open(filepath.Dir(final)); err == nil {
		dir.Sync()
		dir.Close()
	}
	if err := d.setUpload(sha, -1); err != nil {
		d.log.Warn("mdb: forget finished upload", "sha256", sha, "err", err)
	}
	st.Complete = true
	st.Received = st.Size
	return st, nil
}

type fileBlob struct {
	*os.File
	size int64
}

func (b fileBlob) Size() int64 { return b.size }

// OpenBlob opens a complete blob.
func (d *DB) OpenBlob(ctx context.Context, sha string) (Blob, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !api.ValidSHA256(sha) {
		return nil, fmt.Errorf("%w: sha256: %q is not 64 lower-case hex digits", ErrInvalid, sha)
	}
	f, err := os.Open(d.blobPath(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: blob %s (not uploaded completely)", ErrNotFound, sha)
	}
	if err != nil {
		return nil, fmt.Errorf("mdb: blob %s: %w", sha, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mdb: blob %s: %w", sha, err)
	}
	return fileBlob{f, fi.Size()}, nil
}

func (d *DB) validateImage(spec *api.ImageSpec) error {
	if !api.ValidName(spec.Name) {
		return fmt.Errorf("%w: name: %q is not a valid image name", ErrInvalid, spec.Name)
	}
	if !api.ValidName(spec.Version) {
		return fmt.Errorf("%w: version: %q is not valid (1-63 of A-Z a-z 0-9 . _ -)", ErrInvalid, spec.Version)
	}
	if spec.Kind != api.KindOS && spec.Kind != api.KindBoot {
		return fmt.Errorf("%w: kind: %q is not os or boot", ErrInvalid, spec.Kind)
	}
	if spec.Arch != "" && !api.ValidArch(spec.Arch) {
		return fmt.Errorf("%w: arch: %q is not a known arch", ErrInvalid, spec.Arch)
	}
	names := map[string]int{}
	var kernel, nbp bool
	for i := range spec.Files {
		f := &spec.Files[i]
		if !api.ValidName(f.Name) {
			return fmt.Errorf("%w: files[%d]: name %q is not a valid file name", ErrInvalid, i, f.Name)
		}
		if j, dup := names[f.Name]; dup {
			return fmt.Errorf("%w: files[%d]: name %q is files[%d] again", ErrInvalid, i, f.Name, j)
		}
		names[f.Name] = i
		if !api.ValidSHA256(f.SHA256) {
			return fmt.Errorf("%w: files[%d] %s: sha256 %q is not 64 lower-case hex digits", ErrInvalid, i, f.Name, f.SHA256)
		}
		if f.Size < 0 {
			return fmt.Errorf("%w: files[%d] %s: size %d", ErrInvalid, i, f.Name, f.Size)
		}
		if f.Role == "" {
			f.Role = api.RoleOther
		}
		switch f.Role {
		case api.RoleKernel:
			kernel = true
		case api.RoleNBP:
			if !api.ValidArch(f.Arch) {
				return fmt.Errorf("%w: files[%d] %s: nbp needs an arch, not %q", ErrInvalid, i, f.Name, f.Arch)
			}
			nbp = true
		case api.RoleInitrd, api.RoleOther:
		default:
			return fmt.Errorf("%w: files[%d] %s: role %q is not kernel, initrd, nbp or other", ErrInvalid, i, f.Name, f.Role)
		}
		if f.Arch != "" && !api.ValidArch(f.Arch) {
			return fmt.Errorf("%w: files[%d] %s: arch %q is not a known arch", ErrInvalid, i, f.Name, f.Arch)
		}
	}
	if spec.Kind == api.KindOS && !kernel {
		return fmt.Errorf("%w: files: an os image needs a kernel file", ErrInvalid)
	}
	if spec.Kind == api.KindBoot && !nbp {
		return fmt.Errorf("%w: files: a boot image needs at least one nbp file with an arch", ErrInvalid)
	}
	for i, p := range spec.Procedures {
		if !api.ValidName(p.Name) {
			return fmt.Errorf("%w: procedures[%d]: name %q is not valid", ErrInvalid, i, p.Name)
		}
		if p.When != "pre" && p.When != "post" {
			return fmt.Errorf("%w: procedures[%d] %s: when %q is not pre or post", ErrInvalid, i, p.Name, p.When)
		}
	}
	for key := range spec.Defaults {
		if !api.ValidName(key) {
			return fmt.Errorf("%w: defaults: key %q is not valid", ErrInvalid, key)
		}
	}
	for i, f := range spec.Files {
		n, err := d.completeSize(f.SHA256)
		if err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("%w: files[%d] %s: blob %s is not uploaded completely", ErrIncomplete, i, f.Name, f.SHA256)
		}
		if n != f.Size {
			return fmt.Errorf("%w: files[%d] %s: blob %s has %d bytes, not %d", ErrIncomplete, i, f.Name, f.SHA256, n, f.Size)
		}
	}
	return nil
}

// CreateImage registers an image whose blobs are complete.
func (d *DB) CreateImage(ctx context.Context, spec api.ImageSpec) (im api.Image, err error) {
	spec.Files = slices.Clone(spec.Files)
	// Validate under d.mu: DeleteImage removes blobs under it too.
	err = d.update(ctx, func(w *wtx) error {
		if err := d.validateImage(&spec); err != nil {
			return err
		}
		nk := k(pImageName, spec.Name, "/", spec.Version)
		if other, ok, err := getString(w.txn, nk); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%w: image %s version %s exists as %s", ErrConflict, spec.Name, spec.Version, other)
		}
		id, err := w.newID("img-", pImage)
		if err != nil {
			return err
		}
		im = api.Image{ID: id, Name: spec.Name, Version: spec.Version, Kind: spec.Kind, Arch: spec.Arch,
			Files: spec.Files, Cmdline: spec.Cmdline, Defaults: maps.Clone(spec.Defaults),
			Procedures: slices.Clone(spec.Procedures), Revision: w.bump(), Created: w.now}
		if err := w.setJSON(k(pImage, id), im); err != nil {
			return err
		}
		if err := w.set(nk, []byte(id)); err != nil {
			return err
		}
		c := im
		w.logChange("", api.Change{Kind: api.ChangeImage, ID: id, Image: &c})
		return nil
	})
	return im, err
}

// GetImage reads an image.
func (d *DB) GetImage(ctx context.Context, id string) (im api.Image, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error { im, err = getImage(txn, id); return err })
	return im, err
}

// ListImages lists images by id.
func (d *DB) ListImages(ctx context.Context, p Page) (out []api.Image, next string, err error) {
	limit := limitOf(p.Limit, 100, 1000)
	err = d.view(ctx, func(txn *badger.Txn) error {
		return scan(txn, pImage, p.After, true, func(_ []byte, item *badger.Item) (bool, error) {
			if len(out) == limit {
				next = out[len(out)-1].ID
				return false, nil
			}
			var im api.Image
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &im) }); err != nil {
				return false, err
			}
			out = append(out, im)
			return true, nil
		})
	})
	return out, next, err
}

// DeleteImage deletes an image no live order uses, then the blobs of it
// that no other image references.
func (d *DB) DeleteImage(ctx context.Context, id string) error {
	var im api.Image
	used := map[string]bool{}
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.updateLocked(func(w *wtx) (err error) {
		if im, err = getImage(w.txn, id); err != nil {
			return err
		}
		err = scan(w.txn, pLiveSite, "", false, func(key []byte, _ *badger.Item) (bool, error) {
			_, oid, _ := cutLast(string(key[len(pLiveSite):]))
			o, err := getOrder(w.txn, oid)
			if err != nil {
				return false, err
			}
			if o.State.Live() && (o.Image == id || o.BootImage == id) {
				return false, fmt.Errorf("%w: image %s is used by live order %s", ErrInUse, id, o.ID)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		err = scan(w.txn, pImage, "", true, func(key []byte, item *badger.Item) (bool, error) {
			if string(key[len(pImage):]) == id {
				return true, nil
			}
			var other api.Image
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &other) }); err != nil {
				return false, err
			}
			for _, f := range other.Files {
				used[f.SHA256] = true
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if err := w.del(k(pImage, id)); err != nil {
			return err
		}
		if err := w.del(k(pImageName, im.Name, "/", im.Version)); err != nil {
			return err
		}
		w.logChange("", api.Change{Kind: api.ChangeImage, ID: id, Deleted: true})
		return nil
	})
	if err != nil {
		return err
	}
	// Still under d.mu: no CreateImage can start using these blobs.
	for _, f := range im.Files {
		if used[f.SHA256] {
			continue
		}
		unlock := d.blobLock(f.SHA256)
		if _, ok, _ := d.uploadSize(f.SHA256); !ok {
			if err := os.Remove(d.blobPath(f.SHA256)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				d.log.Warn("mdb: remove unused blob", "sha256", f.SHA256, "err", err)
			}
		}
		unlock()
	}
	return nil
}

func cutLast(s string) (before, after string, ok bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return "", s, false
}
