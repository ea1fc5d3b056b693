package mdb

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"osim/controlplane/api"
	"osim/internal/backupstream"
	"osim/internal/clock"
)

// A backup file a release wrote, kept in testdata so that every later
// release proves it restores it (the framing moved to
// internal/backupstream after this one was written: the bytes must not
// have changed). Rewrite it only when the backup format changes (a new
// format gets a new fixture, the old ones stay) with
//
//	OSIM_WRITE_FIXTURES=1 go test ./controlplane/mdb/ -run TestWriteBackupFixture
const backupFixture = "testdata/backup-format1.osim"

// backupFixtureVersion is the Version the fixture's writer stamped.
const backupFixtureVersion = "fixture"

// TestWriteBackupFixture writes testdata/backup-format1.osim: a small
// store (targets, a boot image with one blob, orders) backed up.
func TestWriteBackupFixture(t *testing.T) {
	if os.Getenv("OSIM_WRITE_FIXTURES") != "1" {
		t.Skip("writes the fixture only with OSIM_WRITE_FIXTURES=1")
	}
	d, _ := openTest(t, func(o *Options) { o.Version = backupFixtureVersion })
	mustTargets(t, d, "paris", 0, 12)
	bootImage(t, d, "osim-installer") // one blob: the stream's blob order is then fixed
	var buf bytes.Buffer
	if _, err := d.Backup(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(backupFixture, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", backupFixture, buf.Len())
}

// TestRestoresABackupWrittenByAnEarlierRelease: the fixture restores,
// opens at its revision with its targets and its blob, and a backup of the
// restored store taken at the same moment by the same version is the
// fixture byte for byte (the writer's framing has not changed).
func TestRestoresABackupWrittenByAnEarlierRelease(t *testing.T) {
	ctx := context.Background()
	fixture, err := os.ReadFile(backupFixture)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	info, err := Restore(dir, bytes.NewReader(fixture))
	if err != nil {
		t.Fatalf("this build cannot restore a format-1 backup: %v", err)
	}
	if info.Format != 1 || info.Version != backupFixtureVersion || info.Keys == 0 || info.Blobs != 1 {
		t.Fatalf("restored %+v", info)
	}
	d, err := Open(dir, Options{Logger: quietLogger(), Clock: clock.NewFake(info.Created), Version: backupFixtureVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if rev := must[uint64](t)(d.Revision(ctx)); rev != info.Revision {
		t.Errorf("restored revision %d, the backup's %d", rev, info.Revision)
	}
	targets := listed[api.Target](t)(d.ListTargets(ctx, TargetQuery{Page: Page{Limit: 100}}))
	if len(targets) != 12 {
		t.Errorf("restored %d targets, want 12", len(targets))
	}
	imgs := listed[api.Image](t)(d.ListImages(ctx, Page{}))
	if len(imgs) != 1 || len(imgs[0].Files) != 1 {
		t.Fatalf("restored images %+v", imgs)
	}
	b := must[Blob](t)(d.OpenBlob(ctx, imgs[0].Files[0].SHA256))
	content, _ := io.ReadAll(b)
	b.Close()
	if string(content) != "ipxe of osim-installer" {
		t.Errorf("restored blob %q", content)
	}
	var again bytes.Buffer
	if _, err := d.Backup(ctx, &again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), fixture) {
		t.Errorf("a backup of the restored store differs from the fixture (%d and %d bytes): the stream's bytes changed", again.Len(), len(fixture))
	}
}

// A boot server's data dir backup (internal/bootd: same framing, its
// header names its kind) is refused, and nothing is left.
func TestRestoreRefusesABootServerBackup(t *testing.T) {
	var buf bytes.Buffer
	w, err := backupstream.NewWriter(&buf, []byte(`{"kind":"boot server data dir","format":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.End([]byte(`{"kind":"boot server data dir","format":1}`)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "r")
	if _, err := Restore(dir, &buf); err == nil || !strings.Contains(err.Error(), "a backup of a boot server data dir, not of the manager's MDB") {
		t.Errorf("a boot server's backup: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s left behind", dir)
	}
}
