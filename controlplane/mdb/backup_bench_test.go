package mdb

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/internal/backupstream"
)

// TestBackupScale is `make bench-backup`: a manager's MDB of 100,000
// targets, 100,000 orders and a 256 MiB image, backed up online
// (Backup, one read transaction) and restored into an empty dir, against
// the peer an SRE would otherwise use: tar of the stopped data dir, and
// its extraction. The same files, the same disk, one after the other.
// OSIM_MDB_BACKUP_BENCH=1 runs it.
func TestBackupScale(t *testing.T) {
	if os.Getenv("OSIM_MDB_BACKUP_BENCH") == "" {
		t.Skip("set OSIM_MDB_BACKUP_BENCH=1 (make bench-backup) to back up 100,000 targets and orders and a 256 MiB image")
	}
	ctx := context.Background()
	d, dir := openTest(t)
	blob := make([]byte, 256<<20)
	rand.Read(blob)
	sum := sha256.Sum256(blob)
	sha := hex.EncodeToString(sum[:])
	if _, err := d.WriteBlob(ctx, sha, int64(len(blob)), 0, bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	initrd := upload(t, d, "initrd")
	initrd.Name, initrd.Role = "initrd.img", api.RoleInitrd
	im := must[api.Image](t)(d.CreateImage(ctx, api.ImageSpec{Name: "big", Version: "1", Kind: api.KindOS,
		Files: []api.ImageFile{{Name: "vmlinuz", Role: api.RoleKernel, SHA256: sha, Size: int64(len(blob))}, initrd}}))
	mustTargets(t, d, "paris", 0, 100_000)
	orders := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Selector: "rack", Image: im.ID, All: true}))
	t.Logf("store: 100,000 targets, %d orders, a %d MiB image", len(orders), len(blob)>>20)

	out := t.TempDir()
	start := time.Now()
	backup := filepath.Join(out, "mdb.osimbak")
	size, err := backupstream.WriteFile(backup, func(w io.Writer) error { _, err := d.Backup(ctx, w); return err })
	if err != nil {
		t.Fatal(err)
	}
	tBackup := time.Since(start)
	f, err := os.Open(backup)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	info, err := Restore(filepath.Join(out, "restored"), f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	tRestore := time.Since(start)
	d.Close()

	// The peer: the stopped data dir copied whole with tar, and back.
	start = time.Now()
	tarball := filepath.Join(out, "mdb.tar")
	if b, err := exec.Command("tar", "-C", dir, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, b)
	}
	exec.Command("sync", "-f", tarball).Run()
	tTar := time.Since(start)
	st, _ := os.Stat(tarball)
	untar := filepath.Join(out, "untarred")
	os.Mkdir(untar, 0o700)
	start = time.Now()
	if b, err := exec.Command("tar", "-C", untar, "-xf", tarball).CombinedOutput(); err != nil {
		t.Fatalf("untar: %v %s", err, b)
	}
	exec.Command("sync", "-f", untar).Run()
	tUntar := time.Since(start)

	mb := func(n int64, d time.Duration) string { return fmt.Sprintf("%.0f MB/s", float64(n)/1e6/d.Seconds()) }
	t.Logf("osim backup (online): %d keys, %d blobs, %d MB in %v (%s); restore %v (%s)",
		info.Keys, info.Blobs, size/1e6, tBackup.Round(time.Millisecond), mb(size, tBackup), tRestore.Round(time.Millisecond), mb(size, tRestore))
	t.Logf("tar of the stopped dir: %d MB in %v (%s); extract %v (%s)",
		st.Size()/1e6, tTar.Round(time.Millisecond), mb(st.Size(), tTar), tUntar.Round(time.Millisecond), mb(st.Size(), tUntar))
	t.Logf("ratios osim/tar: backup time %.2f, restore time %.2f, size %.2f",
		tBackup.Seconds()/tTar.Seconds(), tRestore.Seconds()/tUntar.Seconds(), float64(size)/float64(st.Size()))
}
