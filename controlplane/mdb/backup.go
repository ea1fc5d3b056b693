package mdb

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/backupstream"
	"osim/internal/badgerkv"
)

// A backup is the whole store as one read transaction saw it, and the
// blob files its images name, in one internal/backupstream stream:
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

// BackupInfo describes a backup: the header's fields, and the end's counts.
type BackupInfo struct {
	// Kind is empty in the MDB's backups; a boot server's data dir
	// backup (internal/bootd) names itself, and Restore refuses it.
	Kind     string    `json:"kind,omitempty"`
	Format   int       `json:"format"`
	Created  time.Time `json:"created"`
	Revision uint64    `json:"revision"`
	// Version is the osim build that wrote it (Options.Version).
	Version   string `json:"version,omitempty"`
	Keys      int    `json:"keys,omitempty"`
	Blobs     int    `json:"blobs,omitempty"`
	BlobBytes int64  `json:"blob_bytes,omitempty"`
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
	head, _ := json.Marshal(info)
	bw, err := backupstream.NewWriter(w, head)
	if err != nil {
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
		if err := bw.Record(backupstream.TypeKey, key, val); err != nil {
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
	return info, bw.End(end)
}

func (d *DB) backupBlob(bw *backupstream.Writer, sha string) (int64, error) {
	f, err := os.Open(d.blobPath(sha))
	if err != nil {
		return 0, fmt.Errorf("mdb: backup: blob %s an image names: %w", sha, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := bw.Blob(sha, fi.Size(), f); err != nil {
		return 0, fmt.Errorf("mdb: %w", err)
	}
	return fi.Size(), nil
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
	undo, err := backupstream.TargetDir(dir)
	if err != nil {
		return info, fmt.Errorf("mdb: restore: %w", err)
	}
	defer func() {
		if err != nil {
			undo()
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
	bad := func(format string, a ...any) error {
		return fmt.Errorf("mdb: restore: %w: "+format, append([]any{backupstream.ErrIncomplete}, a...)...)
	}
	br, head, err := backupstream.NewReader(r, 1<<20)
	if err != nil {
		return info, fmt.Errorf("mdb: restore: %w (format %d expected)", err, BackupFormat)
	}
	if err := json.Unmarshal(head, &info); err != nil || info.Format != BackupFormat {
		return info, bad("format %d, this osim reads %d (%v)", info.Format, BackupFormat, err)
	}
	if info.Kind != "" {
		return info, fmt.Errorf("mdb: restore: a backup of a %s, not of the manager's MDB", info.Kind)
	}
	wb := bdb.NewWriteBatch()
	defer wb.Cancel()
	blobDir := filepath.Join(dir, "blobs")
	b, err := br.Restore(func(key, val []byte) error {
		// A newer release's store is refused here, not at the first start.
		if err := Layout.CheckKey(key, val, info.Version); err != nil {
			return err
		}
		return wb.Set(key, val)
	}, func(sha string) string { return filepath.Join(blobDir, "sha256", sha[:2], sha) })
	if err != nil {
		return info, fmt.Errorf("mdb: restore: %w", err)
	}
	var end BackupInfo
	if err := json.Unmarshal(b, &end); err != nil {
		return info, bad("its end record: %v", err)
	}
	if err := wb.Flush(); err != nil {
		return info, fmt.Errorf("mdb: restore: %w", err)
	}
	return end, nil
}
