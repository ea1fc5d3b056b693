package mdb

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
	"osim/internal/storeformat"
)

// A backup is the whole store as one read transaction saw it, and the
// blob files its images name, in one stream:
//
//	"OSIM-BACKUP\x01"
//	'H' len JSON(BackupInfo)                      the header
//	'K' len key len value                         every key of the snapshot
//	'B' 64 hex digits of sha256, len, bytes       every blob an image names
//	'E' len JSON(BackupInfo) sha256(all before)   the end: counts, checksum
//
// Lengths are unsigned varints. The snapshot is exact (one Badger read
// transaction), so the orders, targets, tokens and change log agree with
// each other; blob files are immutable and named by their content, and
// while a backup runs no blob file is removed (an image deleted meanwhile
// has its files removed when the backup ends). Uploads in progress are not
// in a backup. Restore checks every blob's digest and the final checksum:
// a truncated or altered backup is refused, never half restored.

// BackupFormat is the stream's version; Restore refuses others.
const BackupFormat = 1

var backupMagic = []byte("OSIM-BACKUP\x01")

// BackupInfo describes a backup: the header's fields, and the end's counts.
type BackupInfo struct {
	Format   int       `json:"format"`
	Created  time.Time `json:"created"`
	Revision uint64    `json:"revision"`
	// Version is the osim build that wrote it (Options.Version).
	Version   string `json:"version,omitempty"`
	Keys      int    `json:"keys,omitempty"`
	Blobs     int    `json:"blobs,omitempty"`
	BlobBytes int64  `json:"blob_bytes,omitempty"`
}

// backupWriter frames records and hashes everything it writes.
type backupWriter struct {
	w   *bufio.Writer
	sum hash.Hash
	buf [binary.MaxVarintLen64]byte
}

func (b *backupWriter) write(p []byte) error {
	b.sum.Write(p)
	_, err := b.w.Write(p)
	return err
}

func (b *backupWriter) uvarint(n uint64) error {
	return b.write(b.buf[:binary.PutUvarint(b.buf[:], n)])
}

func (b *backupWriter) field(p []byte) error {
	if err := b.uvarint(uint64(len(p))); err != nil {
		return err
	}
	return b.write(p)
}

// Backup writes the store and its blobs to w (see the comment above).
func (d *DB) Backup(ctx context.Context, w io.Writer) (BackupInfo, error) {
	d.backupBegin()
	defer d.backupEnd()
	txn := d.db.NewTransaction(false)
	defer txn.Discard()
	info := BackupInfo{Format: BackupFormat, Created: d.opts.Clock.Now().UTC(), Version: d.opts.Version}
	rev, err := badgerkv.GetU64(txn, keyRev)
	if err != nil {
		return info, fmt.Errorf("mdb: backup: %w", err)
	}
	info.Revision = rev
	bw := &backupWriter{w: bufio.NewWriterSize(w, 1<<20), sum: sha256.New()}
	head, _ := json.Marshal(info)
	if err := bw.write(backupMagic); err != nil {
		return info, err
	}
	if err := bw.write([]byte{'H'}); err != nil {
		return info, err
	}
	if err := bw.field(head); err != nil {
		return info, err
	}
	blobs := map[string]int64{}
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100})
	for it.Rewind(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			it.Close()
			return info, err
		}
		item := it.Item()
		key := item.KeyCopy(nil)
		val, err := item.ValueCopy(nil)
		if err != nil {
			it.Close()
			return info, fmt.Errorf("mdb: backup: %w", err)
		}
		if len(key) > len(pImage) && string(key[:len(pImage)]) == pImage {
			var im api.Image
			if err := json.Unmarshal(val, &im); err == nil {
				for _, f := range im.Files {
					blobs[f.SHA256] = f.Size
				}
			}
		}
		if err := bw.write([]byte{'K'}); err != nil {
			it.Close()
			return info, err
		}
		if err := bw.field(key); err != nil {
			it.Close()
			return info, err
		}
		if err := bw.field(val); err != nil {
			it.Close()
			return info, err
		}
		info.Keys++
	}
	it.Close()
	for sha := range blobs {
		n, err := d.backupBlob(bw, sha)
		if err != nil {
			return info, err
		}
		info.Blobs++
		info.BlobBytes += n
	}
	end, _ := json.Marshal(info)
	if err := bw.write([]byte{'E'}); err != nil {
		return info, err
	}
	if err := bw.field(end); err != nil {
		return info, err
	}
	if _, err := bw.w.Write(bw.sum.Sum(nil)); err != nil {
		return info, err
	}
	return info, bw.w.Flush()
}

func (d *DB) backupBlob(bw *backupWriter, sha string) (int64, error) {
	f, err := os.Open(d.blobPath(sha))
	if err != nil {
		return 0, fmt.Errorf("mdb: backup: blob %s an image names: %w", sha, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := bw.write([]byte{'B'}); err != nil {
		return 0, err
	}
	if err := bw.write([]byte(sha)); err != nil {
		return 0, err
	}
	if err := bw.uvarint(uint64(fi.Size())); err != nil {
		return 0, err
	}
	n, err := io.Copy(writerFunc(bw.write), io.LimitReader(f, fi.Size()))
	if err == nil && n != fi.Size() {
		err = fmt.Errorf("blob %s: %d of %d bytes read", sha, n, fi.Size())
	}
	return n, err
}

type writerFunc func([]byte) error

func (f writerFunc) Write(p []byte) (int, error) {
	if err := f(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// backupBegin defers blob file removals until every running backup ends.
func (d *DB) backupBegin() {
	d.blobMu.Lock()
	d.backups++
	d.blobMu.Unlock()
}

// backupEnd removes, after the last running backup, the blob files an
// image deletion left meanwhile, unless an image names them again.
func (d *DB) backupEnd() {
	d.blobMu.Lock()
	d.backups--
	var later []string
	if d.backups == 0 {
		later, d.deferredRemovals = d.deferredRemovals, nil
	}
	d.blobMu.Unlock()
	if len(later) == 0 {
		return
	}
	d.mu.Lock() // no image can start using them while we look
	defer d.mu.Unlock()
	used := map[string]bool{}
	err := d.db.View(func(txn *badger.Txn) error {
		return scan(txn, pImage, "", true, func(_ []byte, item *badger.Item) (bool, error) {
			var im api.Image
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &im) }); err != nil {
				return false, err
			}
			for _, f := range im.Files {
				used[f.SHA256] = true
			}
			return true, nil
		})
	})
	if err != nil {
		d.log.Warn("after a backup: unused blobs not removed", "err", err)
		return
	}
	for _, sha := range later {
		if !used[sha] {
			d.removeBlob(sha)
		}
	}
}

// Restore writes a backup read from r into dir, which must not exist or
// be empty, and answers what it held. It refuses a stream of another
// format, one that is truncated or altered, and a blob whose content does
// not match its digest; what it wrote is then removed.
func Restore(dir string, r io.Reader) (info BackupInfo, err error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return info, fmt.Errorf("mdb: restore: %s is not empty", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return info, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	bdb, err := badger.Open(BadgerOptions(filepath.Join(dir, "db"), slog.New(slog.DiscardHandler)))
	if err != nil {
		return info, fmt.Errorf("mdb: restore: %w", err)
	}
	defer func() {
		if cerr := bdb.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	raw := bufio.NewReaderSize(r, 1<<20)
	br := &hashReader{r: raw, h: sha256.New()}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("mdb: restore: not a whole osim backup: "+format, a...)
	}
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != string(backupMagic) {
		return info, bad("no osim backup header (format %d expected)", BackupFormat)
	}
	field := func(max uint64) ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil || n > max {
			return nil, bad("a field of %d bytes (%v)", n, err)
		}
		b := make([]byte, n)
		if _, err = io.ReadFull(br, b); err != nil {
			return nil, bad("it ends inside a record (%v)", err)
		}
		return b, nil
	}
	wb := bdb.NewWriteBatch()
	defer wb.Cancel()
	var counted BackupInfo
	for {
		typ, err := br.ReadByte()
		if err != nil {
			return info, bad("it ends before its end record (%v)", err)
		}
		switch typ {
		case 'H':
			b, err := field(1 << 20)
			if err != nil {
				return info, err
			}
			if err := json.Unmarshal(b, &info); err != nil || info.Format != BackupFormat {
				return info, bad("format %d, this osim reads %d (%v)", info.Format, BackupFormat, err)
			}
		case 'K':
			key, err := field(1 << 16)
			if err != nil {
				return info, err
			}
			val, err := field(64 << 20)
			if err != nil {
				return info, err
			}
			// A newer release's store is refused here, not at the first start.
			if string(key) == string(keyFormat) && len(val) == 8 && binary.BigEndian.Uint64(val) > Layout.Current {
				return info, fmt.Errorf("mdb: restore: %w: the backup's MDB is in format %d, this build reads formats 1 to %d: restore it with the release that wrote it (%s)",
					storeformat.ErrTooNew, binary.BigEndian.Uint64(val), Layout.Current, info.Version)
			}
			if err := wb.Set(key, val); err != nil {
				return info, err
			}
			counted.Keys++
		case 'B':
			n, err := restoreBlob(br, filepath.Join(dir, "blobs"))
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return info, bad("it ends inside a blob")
			}
			if err != nil {
				return info, err
			}
			counted.Blobs++
			counted.BlobBytes += n
		case 'E':
			b, err := field(1 << 20)
			if err != nil {
				return info, err
			}
			var end BackupInfo
			if err := json.Unmarshal(b, &end); err != nil {
				return info, bad("its end record: %v", err)
			}
			want, got := br.h.Sum(nil), make([]byte, sha256.Size)
			if _, err := io.ReadFull(raw, got); err != nil {
				return info, bad("no checksum (%v)", err)
			}
			if string(want) != string(got) {
				return info, bad("its checksum does not match its content")
			}
			if end.Keys != counted.Keys || end.Blobs != counted.Blobs || end.BlobBytes != counted.BlobBytes {
				return info, bad("its end counts %d keys and %d blobs, the stream held %d and %d", end.Keys, end.Blobs, counted.Keys, counted.Blobs)
			}
			if err := wb.Flush(); err != nil {
				return info, fmt.Errorf("mdb: restore: %w", err)
			}
			return end, nil
		default:
			return info, bad("an unknown record %q", typ)
		}
	}
}

// hashReader hashes every byte read through it: the checksum covers
// exactly what was consumed, not what the buffer read ahead.
type hashReader struct {
	r *bufio.Reader
	h hash.Hash
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

func (h *hashReader) ReadByte() (byte, error) {
	c, err := h.r.ReadByte()
	if err == nil {
		h.h.Write([]byte{c})
	}
	return c, err
}

// restoreBlob reads one blob record (after its type) into
// blobDir/sha256/ab/<sha>, checking its digest.
func restoreBlob(br *hashReader, blobDir string) (int64, error) {
	name := make([]byte, 64)
	if _, err := io.ReadFull(br, name); err != nil {
		return 0, err
	}
	sha := string(name)
	if _, err := hex.DecodeString(sha); err != nil {
		return 0, fmt.Errorf("mdb: restore: a blob named %q", sha)
	}
	size, err := binary.ReadUvarint(br)
	if err != nil {
		return 0, err
	}
	path := filepath.Join(blobDir, "sha256", sha[:2], sha)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".restore-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(br, int64(size)))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if uint64(n) != size || hex.EncodeToString(h.Sum(nil)) != sha {
		return 0, fmt.Errorf("mdb: restore: blob %s: its %d bytes do not match its digest", sha, n)
	}
	return n, os.Rename(f.Name(), path)
}

// CheckBackup reads a whole backup file and reports whether its checksum
// matches its content: a backup cut short or altered is refused without
// restoring it.
func CheckBackup(path string) (size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() < int64(len(backupMagic)+sha256.Size) {
		return fi.Size(), fmt.Errorf("mdb: %s is not a whole osim backup (%d bytes)", path, fi.Size())
	}
	h := sha256.New()
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(io.TeeReader(f, h), magic); err != nil || string(magic) != string(backupMagic) {
		return fi.Size(), fmt.Errorf("mdb: %s is not an osim backup", path)
	}
	if _, err := io.CopyN(h, f, fi.Size()-int64(len(magic))-sha256.Size); err != nil {
		return fi.Size(), err
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return fi.Size(), err
	}
	if string(h.Sum(nil)) != string(want) {
		return fi.Size(), fmt.Errorf("mdb: %s is not a whole osim backup: its checksum does not match (cut short or altered)", path)
	}
	return fi.Size(), nil
}
