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
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
)

func (d *DB) blobPath(sha string) string {
	return filepath.Join(d.blobDir, "sha256", sha[:2], sha)
}

func (d *DB) partialPath(sha string) string {
	return filepath.Join(d.blobDir, "partial", sha)
}

// blobLock serializes the short steps on one blob (status, the start and
// the end of a chunk, finishing, deleting). It is never held while a
// client's body is read: a chunk marks the blob writing instead, so a
// stalled client blocks nobody's status and a second writer is told at
// once. An entry lives only while it is held or writing, so asking about
// unknown hashes leaves nothing behind.
type blobLock struct {
	mu      sync.Mutex
	refs    int  // under DB.blobMu
	writing bool // under mu; the entry stays while it is set
}

func (d *DB) lockBlob(sha string) (*blobLock, func()) {
	d.blobMu.Lock()
	l, ok := d.blobLocks[sha]
	if !ok {
		l = &blobLock{}
		d.blobLocks[sha] = l
	}
	l.refs++
	d.blobMu.Unlock()
	l.mu.Lock()
	return l, func() {
		writing := l.writing
		l.mu.Unlock()
		d.blobMu.Lock()
		l.refs--
		if l.refs == 0 && !writing {
			delete(d.blobLocks, sha)
		}
		d.blobMu.Unlock()
	}
}

func (d *DB) blobLock(sha string) func() {
	_, unlock := d.lockBlob(sha)
	return unlock
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
		return txn.Set(k(pUpload, sha), badgerkv.U64(uint64(size)))
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
	if size > d.opts.MaxBlobSize {
		return st, fmt.Errorf("%w: blob %s: %d bytes is over the maximum image size of %d", ErrTooLarge, sha, size, d.opts.MaxBlobSize)
	}
	l, unlock := d.lockBlob(sha)
	cur, err := d.startWrite(sha, size, offset, l)
	unlock()
	if err != nil || cur.Complete {
		return cur, err
	}
	// The body is read without the lock; l.writing keeps other writers out.
	n, cerr := d.appendPartial(ctx, sha, size, offset, r)
	_, unlock = d.lockBlob(sha)
	defer unlock()
	l.writing = false
	cur.Received = offset + n
	if cerr != nil {
		return cur, fmt.Errorf("mdb: blob %s: %w", sha, cerr)
	}
	if cur.Received < size {
		return cur, nil
	}
	return d.finishBlob(sha, cur)
}

// startWrite checks a chunk against what is stored and marks the blob
// writing; under l.mu.
func (d *DB) startWrite(sha string, size, offset int64, l *blobLock) (api.BlobStatus, error) {
	cur, ok, err := d.blobStatus(sha)
	if err != nil {
		return cur, err
	}
	if ok && cur.Size != size {
		return cur, fmt.Errorf("%w: blob %s has size %d, not %d", ErrConflict, sha, cur.Size, size)
	}
	if cur.Complete {
		return cur, nil
	}
	if l.writing {
		return cur, fmt.Errorf("%w: blob %s: another upload is writing it", ErrConflict, sha)
	}
	if offset != cur.Received && ok {
		return cur, fmt.Errorf("%w: blob %s: offset %d, but %d bytes are stored: resume at %d", ErrConflict, sha, offset, cur.Received, cur.Received)
	}
	if !ok && offset != 0 {
		return api.BlobStatus{SHA256: sha, Size: size}, fmt.Errorf("%w: blob %s: offset %d, but 0 bytes are stored: resume at 0", ErrConflict, sha, offset)
	}
	// Room for the rest of the blob, checked before its first byte: an
	// upload that cannot fit is refused whole, not left half-written.
	if err := d.roomFor(size - offset); err != nil {
		return cur, fmt.Errorf("blob %s (%d of %d bytes to come): %w", sha, size-offset, size, err)
	}
	if !ok {
		if err := d.setUpload(sha, size); err != nil {
			return st0(sha, size), fmt.Errorf("mdb: blob %s: %w", sha, err)
		}
		cur = st0(sha, size)
	}
	l.writing = true
	return cur, nil
}

func st0(sha string, size int64) api.BlobStatus { return api.BlobStatus{SHA256: sha, Size: size} }

// appendPartial appends at most size-offset bytes of r to the partial
// file, fsynced; more than that is cut off again and refused.
func (d *DB) appendPartial(ctx context.Context, sha string, size, offset int64, r io.Reader) (int64, error) {
	f, err := os.OpenFile(d.partialPath(sha), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	n, cerr := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, size-offset+1))
	if offset+n > size {
		cerr = fmt.Errorf("%w: blob %s: more than the announced %d bytes", ErrInvalid, sha, size)
		if err := f.Truncate(offset); err == nil {
			n = 0
		}
	}
	if err := f.Sync(); err != nil && cerr == nil {
		cerr = err
	}
	if err := f.Close(); err != nil && cerr == nil {
		cerr = err
	}
	return n, cerr
}

// AbortUpload deletes an unfinished upload of sha (see Store).
func (d *DB) AbortUpload(ctx context.Context, sha string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !api.ValidSHA256(sha) {
		return fmt.Errorf("%w: sha256: %q is not 64 lower-case hex digits", ErrInvalid, sha)
	}
	l, unlock := d.lockBlob(sha)
	defer unlock()
	cur, ok, err := d.blobStatus(sha)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%w: blob %s: no upload", ErrNotFound, sha)
	case cur.Complete:
		return fmt.Errorf("%w: blob %s is complete: it goes with the last image that uses it", ErrConflict, sha)
	case l.writing:
		return fmt.Errorf("%w: blob %s: a chunk is being written; abort after it ends", ErrConflict, sha)
	}
	return d.dropUpload(sha)
}

func (d *DB) dropUpload(sha string) error {
	if err := os.Remove(d.partialPath(sha)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mdb: blob %s: %w", sha, err)
	}
	if err := d.setUpload(sha, -1); err != nil {
		return fmt.Errorf("mdb: blob %s: %w", sha, err)
	}
	return nil
}

// ExpireUploads deletes unfinished uploads not written to since before
// (see Store).
func (d *DB) ExpireUploads(ctx context.Context, before time.Time) (int, error) {
	var shas []string
	err := d.view(ctx, func(txn *badger.Txn) error {
		return scan(txn, pUpload, "", false, func(key []byte, _ *badger.Item) (bool, error) {
			shas = append(shas, string(key[len(pUpload):]))
			return true, nil
		})
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, sha := range shas {
		l, unlock := d.lockBlob(sha)
		st, ok, err := d.blobStatus(sha)
		if err == nil && ok && !st.Complete && !l.writing && d.partialIdleSince(sha, before) {
			if err = d.dropUpload(sha); err == nil {
				n++
				d.log.Info("expired an unfinished upload", "sha256", sha, "received", st.Received, "size", st.Size)
			}
		}
		unlock()
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// partialIdleSince: the partial file was last written before t (or the
// upload was announced and never written, and before is in the future
// of the record, which a missing file cannot tell: those go too).
func (d *DB) partialIdleSince(sha string, t time.Time) bool {
	fi, err := os.Stat(d.partialPath(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	return err == nil && fi.ModTime().Before(t)
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
			d.log.Warn("forget failed upload", "sha256", sha, "err", err)
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
		d.log.Warn("forget finished upload", "sha256", sha, "err", err)
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
	if err := checkImageSpec(spec); err != nil {
		return err
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
		if other, ok, err := badgerkv.GetString(w.txn, nk); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%w: image %s version %s exists as %s", ErrConflict, spec.Name, spec.Version, other)
		}
		id, err := w.newID("img-", pImage)
		if err != nil {
			return err
		}
		im = api.Image{ID: id, Name: spec.Name, Version: spec.Version, Kind: spec.Kind, Arch: spec.Arch,
			Format: spec.Format, Install: cloneInstall(spec.Install), Files: spec.Files, Cmdline: spec.Cmdline, Defaults: maps.Clone(spec.Defaults),
			Procedures: slices.Clone(spec.Procedures), Revision: w.bump(), Created: w.now,
			Parameters: slices.Clone(spec.Parameters)}
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
	err := d.updateFreeingLocked(func(w *wtx) (err error) {
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
		if site, err := defaultBootUser(w.txn, id); err != nil {
			return err
		} else if site != "" {
			return fmt.Errorf("%w: image %s is the default boot image of site %s (osimctl sites set %s --default-boot-image OTHER first)", ErrInUse, id, site, site)
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
		if !used[f.SHA256] {
			d.removeBlob(f.SHA256)
		}
	}
	return nil
}

// removeBlob removes an unused blob's file (under d.mu), or, while a
// backup runs, leaves it to the backup's end.
func (d *DB) removeBlob(sha string) {
	d.blobMu.Lock()
	if d.backups > 0 {
		d.deferredRemovals = append(d.deferredRemovals, sha)
		d.blobMu.Unlock()
		return
	}
	d.blobMu.Unlock()
	unlock := d.blobLock(sha)
	defer unlock()
	if _, ok, _ := d.uploadSize(sha); !ok {
		if err := os.Remove(d.blobPath(sha)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("remove unused blob", "sha256", sha, "err", err)
		}
	}
}

func cutLast(s string) (before, after string, ok bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return "", s, false
}

func cloneInstall(in *api.InstallSettings) *api.InstallSettings {
	if in == nil {
		return nil
	}
	c := *in
	return &c
}
