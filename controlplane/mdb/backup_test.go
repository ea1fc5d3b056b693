package mdb

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"osim/internal/backupstream"
	"osim/internal/badgerkv"
)

// allKeys is every key and value of a Badger database.
func allKeys(t *testing.T, db *badger.DB) map[string]string {
	t.Helper()
	out, err := badgerkv.All(db)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A backup taken while targets are written and an image is deleted
// restores into an empty directory as one consistent store: exactly the
// keys of one moment (the live store's at the backup's revision, none
// half written), every blob its images name with the right content, and
// it opens and serves.
func TestBackupUnderWriteLoadRestoresOneMoment(t *testing.T) {
	d, _ := openTest(t)
	ctx := context.Background()
	kept := osImage(t, d, "kept")
	gone := osImage(t, d, "gone")
	mustTargets(t, d, "lyon", 0, 200)

	// The load: targets keep coming, each write a new revision.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var written atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1000; !stop.Load(); i++ {
			if _, err := d.CreateTarget(ctx, spec(i, "lyon")); err != nil {
				t.Errorf("load: %v", err)
				return
			}
			written.Add(1)
		}
	}()
	for written.Load() < 20 {
	}
	// A snapshot of every key at the backup's revision: take the live
	// store's keys with the writes held back, around the backup's own
	// read, by deleting the image inside the backup window.
	var buf bytes.Buffer
	d.backupBegin() // as if another backup ran: the deletion's file removal waits
	if err := d.DeleteImage(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.blobPath(gone.Files[0].SHA256)); err != nil {
		t.Fatalf("a blob was removed while a backup ran: %v", err)
	}
	info, err := d.Backup(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	d.backupEnd()
	stop.Store(true)
	wg.Wait()
	if _, err := os.Stat(d.blobPath(gone.Files[0].SHA256)); err == nil {
		t.Error("the deleted image's blob outlived the backups")
	}
	if _, err := os.Stat(d.blobPath(kept.Files[0].SHA256)); err != nil {
		t.Errorf("a used blob was removed after the backups: %v", err)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	got, err := Restore(dir, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != info.Revision || got.Keys != info.Keys || got.Blobs != 2 || got.Format != BackupFormat {
		t.Fatalf("restored %+v, backed up %+v", got, info)
	}
	r, err := Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open the restored store: %v", err)
	}
	defer r.Close()
	if rev, _ := r.Revision(ctx); rev != info.Revision {
		t.Fatalf("restored revision %d, backup %d", rev, info.Revision)
	}
	// One moment: the live store at that revision is the restored store
	// plus the targets written after it (the load only adds targets and
	// their change-log entries and counters).
	live, restored := allKeys(t, d.db), allKeys(t, r.db)
	for k, v := range restored {
		if lv, ok := live[k]; !ok || (lv != v && !strings.HasPrefix(k, "mdb/meta/")) {
			t.Errorf("restored key %q differs from the live store's", k)
		}
	}
	targets, _, err := r.ListTargets(ctx, TargetQuery{Page: Page{Limit: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(targets); n < 220 || n >= 200+int(written.Load()) {
		t.Errorf("restored %d targets: want the 200 seeded and some of the %d written under load, not all", n, written.Load())
	}
	imgs, _, err := r.ListImages(ctx, Page{})
	if err != nil || len(imgs) != 1 || imgs[0].ID != kept.ID {
		t.Fatalf("restored images %v %+v, want only %s", err, imgs, kept.ID)
	}
	for _, f := range kept.Files {
		b, err := r.OpenBlob(ctx, f.SHA256)
		if err != nil {
			t.Fatalf("restored blob %s: %v", f.Name, err)
		}
		data, _ := io.ReadAll(b)
		b.Close()
		if int64(len(data)) != f.Size {
			t.Errorf("restored blob %s: %d bytes, want %d", f.Name, len(data), f.Size)
		}
	}
	// It serves writes: the next revision follows the restored one.
	if _, err := r.CreateTarget(ctx, spec(99999, "lyon")); err != nil {
		t.Fatal(err)
	}
	if rev, _ := r.Revision(ctx); rev != info.Revision+1 {
		t.Errorf("revision after a write: %d, want %d", rev, info.Revision+1)
	}
}

// A backup that is cut short, altered, or not a backup is refused and
// leaves nothing behind; an occupied directory is refused.
func TestRestoreRefusesABrokenBackup(t *testing.T) {
	d, _ := openTest(t)
	osImage(t, d, "img")
	mustTargets(t, d, "lyon", 0, 10)
	var buf bytes.Buffer
	if _, err := d.Backup(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	whole := buf.Bytes()
	flip := bytes.Clone(whole)
	flip[len(flip)/2] ^= 0xff
	head, _ := json.Marshal(BackupInfo{Format: 99})
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"truncated":      {whole[:len(whole)-40], "not a whole osim backup"},
		"a byte flipped": {flip, "not a whole osim backup"},
		"not a backup":   {[]byte("hello"), "no osim backup header"},
		"another format": {append(append(append([]byte{}, backupstream.Magic...), 'H', byte(len(head))), head...), "format 99"},
	} {
		dir := filepath.Join(t.TempDir(), "r")
		_, err := Restore(dir, bytes.NewReader(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
		if _, serr := os.Stat(dir); serr == nil {
			t.Errorf("%s: %s left behind", name, dir)
		}
	}
	occupied := t.TempDir()
	os.WriteFile(filepath.Join(occupied, "x"), nil, 0o644)
	if _, err := Restore(occupied, bytes.NewReader(whole)); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("an occupied dir: %v", err)
	}
}
