package bootd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/internal/backupstream"
	"osim/internal/badgerkv"
	"osim/internal/buildinfo"
	"osim/internal/clock"
)

// A boot server's backup is its data dir, offline (the boot server
// stopped), in one internal/backupstream stream:
//
//	"OSIM-BACKUP\x01"
//	'H' len JSON(BackupInfo)                 kind "boot server data dir", versions, identity
//	'K' len key len value                    every key of its Badger: the credential,
//	                                         the synced view, the events not yet
//	                                         uploaded, full DHCP's leases, bootd/format
//	'B' 64 hex digits of sha256, len, bytes  every staged blob (blobs/sha256/<sha>)
//	'E' len JSON(BackupInfo) sha256(all before)
//
// Downloads in progress (blobs/partial/) are left out: the agent fetches
// them again. The disk guard's ballast and Badger's own files are not
// copied as files; a restore writes the keys into a new Badger.
//
// A restored data dir is the same boot server: it keeps its credential,
// so it does not register again, resumes its sync from the backed-up
// revision and uploads the events the old appliance had not.

// BackupKind names a boot server's backup in its header (the MDB's has
// none); each side's restore refuses the other's.
const BackupKind = "boot server data dir"

// BackupFormat is the version of what the stream holds; Restore refuses
// others.
const BackupFormat = 1

// ErrInUse: the data dir's Badger is locked by a running boot server.
var ErrInUse = errors.New("is in use")

// BackupInfo describes a boot server's backup: the header, and in the
// end record the counts.
type BackupInfo struct {
	Kind   string `json:"kind"`
	Format int    `json:"format"`
	// DataDirFormat is the data dir's format (DataDirLayout) when it was
	// backed up; Restore refuses one newer than this build's.
	DataDirFormat uint64    `json:"data_dir_format"`
	Created       time.Time `json:"created"`
	Version       string    `json:"version,omitempty"` // the osim build that wrote it
	// BootServer, Name and Site are its identity at the manager ("": it
	// had not registered).
	BootServer string `json:"boot_server,omitempty"`
	Name       string `json:"name,omitempty"`
	Site       string `json:"site,omitempty"`
	Keys       int    `json:"keys,omitempty"`
	Blobs      int    `json:"blobs,omitempty"`
	BlobBytes  int64  `json:"blob_bytes,omitempty"`
}

// BackupOptions are Backup's: the version it records (default: this
// build) and its clock (nil: the system's).
type BackupOptions struct {
	Version string
	Clock   clock.Clock
}

// keyCred is the agent's credential (controlplane/agent/codec.go); the
// backup's header names the boot server from it.
var keyCred = []byte("agent/cred")

// Backup writes the boot server data dir dir to w. The boot server must be
// stopped: a data dir whose Badger is locked is refused (ErrInUse).
func Backup(ctx context.Context, dir string, w io.Writer, o BackupOptions) (info BackupInfo, err error) {
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		return info, fmt.Errorf("backup: %s is not a boot server's data dir (no Badger MANIFEST): %w", dir, err)
	}
	if locked(dir) {
		return info, fmt.Errorf("stop osim-bootd first: %s %w", dir, ErrInUse)
	}
	db, err := openForBackup(dir)
	if err != nil {
		if strings.Contains(err.Error(), "directory lock") {
			return info, fmt.Errorf("stop osim-bootd first: %s %w", dir, ErrInUse)
		}
		return info, fmt.Errorf("backup: open %s: %w", dir, err)
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("backup: close %s: %w", dir, cerr)
		}
	}()
	if o.Version == "" {
		o.Version = buildinfo.Get().Short()
	}
	info = BackupInfo{Kind: BackupKind, Format: BackupFormat, Created: clock.Or(o.Clock).Now().UTC(), Version: o.Version}
	txn := db.NewTransaction(false)
	defer txn.Discard()
	if info.DataDirFormat, err = badgerkv.GetU64(txn, DataDirLayout.Key); err != nil {
		return info, fmt.Errorf("backup: %w", err)
	}
	info.DataDirFormat = max(info.DataDirFormat, 1) // unrecorded: format 1 (storeformat)
	var cred struct{ ID, Name, Site string }
	if _, err := badgerkv.GetJSON(txn, keyCred, &cred); err == nil {
		info.BootServer, info.Name, info.Site = cred.ID, cred.Name, cred.Site
	}
	head, _ := json.Marshal(info)
	bw, err := backupstream.NewWriter(w, head)
	if err != nil {
		return info, err
	}
	if info.Keys, err = backupKeys(ctx, txn, bw); err != nil {
		return info, err
	}
	staged := filepath.Join(dir, "blobs", "sha256")
	ents, err := os.ReadDir(staged)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return info, fmt.Errorf("backup: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !backupstream.IsSHA256(e.Name()) {
			continue // not a staged blob (a restore's temporary file)
		}
		if err := ctx.Err(); err != nil {
			return info, err
		}
		n, err := backupBlob(bw, filepath.Join(staged, e.Name()), e.Name())
		if err != nil {
			return info, err
		}
		info.Blobs++
		info.BlobBytes += n
	}
	end, _ := json.Marshal(info)
	return info, bw.End(end)
}

// openForBackup opens a stopped data dir's Badger read-only, so that a
// backup changes nothing in it. A boot server killed or cut from power
// leaves a log Badger must replay first, which read-only refuses: such a
// dir is opened read-write, as a start would open it. The larger
// memtables of full DHCP mode hold either mode's log.
//
// Only the dir's owner may replay it: files root wrote into an
// osim-bootd-owned dir would keep the boot server from opening it.
func openForBackup(dir string) (*badger.DB, error) {
	db, err := badger.Open(bootdBadgerOptions(dir, true).WithReadOnly(true))
	if err == nil || !strings.Contains(err.Error(), badger.ErrTruncateNeeded.Error()) {
		return db, err
	}
	st, serr := os.Stat(dir)
	if serr != nil {
		return nil, serr
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%s was not closed cleanly: its log must be replayed by its owner (uid %d) first, so run the backup as that user (runuser -u osim-bootd -- osim-bootd backup ...), or start and stop osim-bootd once", dir, sys.Uid)
	}
	return badger.Open(bootdBadgerOptions(dir, true))
}

// backupKeys writes every key txn sees as a 'K' record.
func backupKeys(ctx context.Context, txn *badger.Txn, bw *backupstream.Writer) (n int, err error) {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		item := it.Item()
		// Nothing writes these today; a restore could not give them back.
		if item.ExpiresAt() != 0 || item.UserMeta() != 0 {
			return n, fmt.Errorf("backup: key %q has a TTL or user meta, which a backup does not keep", item.Key())
		}
		val, err := item.ValueCopy(nil)
		if err != nil {
			return n, fmt.Errorf("backup: %w", err)
		}
		if err := bw.Record(backupstream.TypeKey, item.Key(), val); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func backupBlob(bw *backupstream.Writer, path, sha string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := bw.Blob(sha, fi.Size(), f); err != nil {
		return 0, fmt.Errorf("%w: remove %s, the boot server fetches it again", err, path)
	}
	return fi.Size(), nil
}

// locked reports whether a process holds Badger's lock on dir.
func locked(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB), syscall.EWOULDBLOCK)
}

// Restore writes a boot server's backup read from r into dir, which must
// not exist or be empty, and answers what it held. It refuses another
// kind of backup, a data dir format newer than this build reads, a stream
// cut short or altered and a blob whose content does not match its name;
// what it wrote is then removed (dir is left as it was).
func Restore(dir string, r io.Reader) (info BackupInfo, err error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return info, fmt.Errorf("restore: %s is not empty: restore into a new or empty data dir", dir)
	}
	br, head, err := backupstream.NewReader(r, 1<<20)
	if err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	if err := json.Unmarshal(head, &info); err != nil {
		return info, fmt.Errorf("restore: %w: its header: %v", backupstream.ErrIncomplete, err)
	}
	switch {
	case info.Kind == "":
		return info, errors.New("restore: a backup of the manager's MDB, not of a boot server's data dir: restore it with osim-manager restore")
	case info.Kind != BackupKind:
		return info, fmt.Errorf("restore: a backup of a %s, not of a boot server's data dir", info.Kind)
	case info.Format != BackupFormat:
		return info, fmt.Errorf("restore: a boot server backup in format %d, this osim reads %d: restore it with the release that wrote it (%s)", info.Format, BackupFormat, info.Version)
	}
	if err := DataDirLayout.TooNew(info.DataDirFormat, info.Version); err != nil {
		return info, err
	}
	undo, err := backupstream.TargetDir(dir)
	if err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	defer func() {
		if err != nil {
			undo()
		}
	}()
	db, err := badger.Open(bootdBadgerOptions(dir, false))
	if err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("restore: %w", cerr)
		}
	}()
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	staged := filepath.Join(dir, "blobs", "sha256")
	b, err := br.Restore(func(key, val []byte) error {
		if err := DataDirLayout.CheckKey(key, val, info.Version); err != nil {
			return err
		}
		return wb.Set(key, val)
	}, func(sha string) string { return filepath.Join(staged, sha) })
	if err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	var end BackupInfo
	if err := json.Unmarshal(b, &end); err != nil {
		return info, fmt.Errorf("restore: %w: its end record: %v", backupstream.ErrIncomplete, err)
	}
	if err := wb.Flush(); err != nil {
		return info, fmt.Errorf("restore: %w", err)
	}
	return end, nil
}
