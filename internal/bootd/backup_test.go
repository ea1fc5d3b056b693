package bootd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
	"osim/dataplane/dhcp"
	"osim/internal/backupstream"
	"osim/internal/badgerkv"
	"osim/internal/mgrtest"
	"osim/internal/storeformat"
)

// testManager is a real manager on a temporary MDB, over loopback HTTP;
// while holdEvents is set it answers the boot servers' event uploads 503,
// so that their events stay in their buffers.
type testManager struct {
	store      *mdb.DB
	url        string
	admin      *api.Client
	join       string
	holdEvents atomic.Bool
}

func startTestManager(t *testing.T) *testManager {
	t.Helper()
	m := &testManager{}
	mm := mgrtest.StartManager(t, mgrtest.Options{Wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if m.holdEvents.Load() && r.Method == http.MethodPost && r.URL.Path == api.Prefix+"/events" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte(`{"code":503,"message":"test: events held"}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	m.store, m.url = mm.Store, mm.URL
	m.admin = mm.Client(t, api.RoleAdmin)
	m.join = mm.Token(t, api.TokenRequest{Role: api.RoleJoin, Site: "lab"})
	return m
}

// seedSite gives site lab an OS image (two blobs), three targets and
// orders for two of them.
func (m *testManager) seedSite(t *testing.T) (api.Image, []api.Target, []api.Order) {
	t.Helper()
	ctx := context.Background()
	spec := api.ImageSpec{Name: "debian", Version: "12", Kind: api.KindOS, Cmdline: "console=ttyS0"}
	for _, f := range []struct{ name, role, data string }{
		{"vmlinuz", api.RoleKernel, strings.Repeat("kernel ", 3000)}, {"initrd.img", api.RoleInitrd, strings.Repeat("initrd ", 5000)},
	} {
		st, err := m.admin.UploadBlob(ctx, shaHex(f.data), int64(len(f.data)), strings.NewReader(f.data), 0)
		if err != nil {
			t.Fatal(err)
		}
		spec.Files = append(spec.Files, api.ImageFile{Name: f.name, SHA256: st.SHA256, Size: st.Size, Role: f.role})
	}
	img, err := m.admin.CreateImage(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	var targets []api.Target
	for i := range 3 {
		tg, err := m.admin.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("node%d", i), MACs: []string{fmt.Sprintf("52:54:00:bb:00:%02x", i)},
			Arch: "bios", Site: "lab"})
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, tg)
	}
	orders, err := m.admin.CreateOrders(ctx, api.OrderRequest{Targets: []string{targets[0].ID, targets[1].ID}, Image: img.ID})
	if err != nil {
		t.Fatal(err)
	}
	return img, targets, orders
}

// runNode builds and runs a manager-mode boot server on loopback with its
// data dir in dataDir; stop ends it and waits.
func runNode(t *testing.T, dataDir, managerURL, join string) (n *Node, stop func()) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tftp"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{
		Address: "127.0.0.1", DataDir: dataDir,
		DHCP:    DHCPSection{Listen: "127.0.0.1:0", BootListen: "127.0.0.1:0"},
		TFTP:    TFTPSection{Listen: "127.0.0.1:0", Root: filepath.Join(dir, "tftp")},
		HTTP:    HTTPSection{Listen: freeTCP(t)},
		Manager: &ManagerSection{URL: managerURL, JoinToken: join, Name: "bs-lab", Site: "lab"},
	}
	k, err := Check(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	n, err = Build(k, Options{Log: slog.New(slog.DiscardHandler), Level: new(slog.LevelVar), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, time.Second) }()
	var once atomic.Bool
	stop = func() {
		if once.Swap(true) {
			return
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node: %v", err)
		}
	}
	t.Cleanup(stop)
	return n, stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// heldEvents are what runBootServer emits while the manager holds them.
func heldEvents(targets []api.Target) []api.Event {
	var out []api.Event
	for i, tg := range targets {
		out = append(out, api.Event{Type: api.EventDHCPSeen, Target: tg.ID, MAC: tg.MACs[0], Message: fmt.Sprintf("held %d", i),
			Time: time.Date(2026, 1, 2, 3, 4, 5+i, 0, time.UTC)})
	}
	return out
}

// runBootServer runs a boot server on dataDir against m until it has
// registered, synced the site, staged the orders' blobs and reported them
// staged; then, the manager holding events, it emits heldEvents(targets)
// and stops. It answers the boot server's id.
func runBootServer(t *testing.T, m *testManager, dataDir string, img api.Image, targets []api.Target, orders []api.Order) string {
	t.Helper()
	ctx := context.Background()
	n, stop := runNode(t, dataDir, m.url, m.join)
	waitFor(t, "registration", func() bool { return n.agent.ID() != "" })
	rev, err := m.store.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sync", func() bool { return n.agent.Revision() >= rev })
	for _, f := range img.Files {
		waitFor(t, "the staged "+f.Name, func() bool {
			st, err := os.Stat(filepath.Join(dataDir, "blobs", "sha256", f.SHA256))
			return err == nil && st.Size() == f.Size
		})
	}
	for _, o := range orders {
		waitFor(t, "order "+o.ID+" staged at the manager", func() bool {
			got, err := m.store.GetOrder(ctx, o.ID)
			return err == nil && got.State == api.OrderStaged
		})
	}
	// The sync carries the orders' new state back: wait for it too, so
	// that nothing moves while the events are held.
	waitFor(t, "the staged orders synced back", func() bool {
		rev, err := m.store.Revision(ctx)
		return err == nil && n.agent.Revision() >= rev
	})
	m.holdEvents.Store(true)
	for _, e := range heldEvents(targets) {
		if err := n.agent.Emit(e); err != nil {
			t.Fatal(err)
		}
	}
	id := n.agent.ID()
	stop()
	return id
}

// writeLease adds a full-DHCP lease to a stopped data dir, through the
// lease store full mode runs.
func writeLease(t *testing.T, dataDir string, l dhcp.Lease) {
	t.Helper()
	db, err := badger.Open(bootdBadgerOptions(dataDir, true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	leases, err := dhcp.OpenBadgerLeases(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := leases.Update(context.Background(), func(tx dhcp.LeaseTx) error { return tx.Put(l) }); err != nil {
		t.Fatal(err)
	}
}

func fixtureLease() dhcp.Lease {
	return dhcp.Lease{IP: netip.MustParseAddr("10.9.0.50"), MAC: net.HardwareAddr{0x52, 0x54, 0, 0xbb, 0, 1}, State: dhcp.LeaseBound,
		Expires: time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// dataDirKeys is every key and value of a stopped data dir's Badger.
func dataDirKeys(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	db, err := badger.Open(bootdBadgerOptions(dataDir, true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out, err := badgerkv.All(db)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stagedBlobs is every file under a data dir's blobs/ (sha256/ and
// partial/), by path, with its content.
func stagedBlobs(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	root := filepath.Join(dataDir, "blobs")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[rel] = string(b)
		return err
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func countPrefix(keys map[string]string, prefix string) int {
	n := 0
	for k := range keys {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// TestBackupOfAStoppedBootServerRestoresTheSameBootServer: a boot server
// registers, syncs its site, stages two blobs and holds three events the
// manager would not take; stopped (with a full-DHCP lease added), its data
// dir is backed up, restored into a new dir, and the two compared key by
// key and file by file. A boot server started on the restored dir is the
// same one: it does not register again (its join token is now wrong),
// the manager still lists one boot server with the same id, it heartbeats,
// and the events the old one held reach the manager.
func TestBackupOfAStoppedBootServerRestoresTheSameBootServer(t *testing.T) {
	ctx := context.Background()
	m := startTestManager(t)
	img, targets, orders := m.seedSite(t)
	orig := filepath.Join(t.TempDir(), "data")
	id := runBootServer(t, m, orig, img, targets, orders)
	writeLease(t, orig, fixtureLease())
	// A download in progress is not part of a backup.
	if err := os.WriteFile(filepath.Join(orig, "blobs", "partial", shaHex("partial")), []byte("part"), 0o644); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	start := time.Now()
	info, err := Backup(ctx, orig, &buf, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if info.BootServer != id || info.Name != "bs-lab" || info.Site != "lab" || info.Blobs != 2 || info.DataDirFormat != DataDirLayout.Current || info.Version == "" {
		t.Fatalf("backup %+v, boot server %s", info, id)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	start = time.Now()
	got, err := Restore(restored, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup: %d keys, %d blobs (%d bytes) in a %d-byte stream in %v; restore in %v",
		info.Keys, info.Blobs, info.BlobBytes, buf.Len(), took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if got.Keys != info.Keys || got.Blobs != info.Blobs || got.BootServer != id {
		t.Fatalf("restored %+v, backed up %+v", got, info)
	}

	want, have := dataDirKeys(t, orig), dataDirKeys(t, restored)
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			t.Errorf("key %q: restored %q (%v), backed up %q", k, hv, ok, v)
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			t.Errorf("restored key %q was not in the data dir", k)
		}
	}
	if len(want) != info.Keys {
		t.Errorf("the data dir holds %d keys, the backup %d", len(want), info.Keys)
	}
	for prefix, n := range map[string]int{"agent/cred": 1, "agent/g/": 1, "evq/": len(targets), "lease/ip/": 1, "bootd/format": 1} {
		if c := countPrefix(have, prefix); c < n || (prefix == "evq/" && c != n) {
			t.Errorf("restored %d keys under %q, want %d", c, prefix, n)
		}
	}
	wantBlobs, haveBlobs := stagedBlobs(t, orig), stagedBlobs(t, restored)
	delete(wantBlobs, filepath.Join("partial", shaHex("partial")))
	if len(haveBlobs) != 2 || fmt.Sprint(haveBlobs) != fmt.Sprint(wantBlobs) {
		t.Errorf("restored blob files %d, want the %d staged ones, identical", len(haveBlobs), len(wantBlobs))
	}

	// The replacement appliance: the restored dir, a join token that no
	// longer works, the manager taking events again.
	m.holdEvents.Store(false)
	restart := time.Now()
	n, stop := runNode(t, restored, m.url, "not-a-join-token")
	defer stop()
	if n.agent.ID() != id {
		t.Fatalf("restored boot server id %q, want %q", n.agent.ID(), id)
	}
	waitFor(t, "the held events at the manager", func() bool {
		evs, err := m.store.ListEvents(ctx, mdb.EventQuery{Type: api.EventDHCPSeen, Limit: 100})
		held := 0
		for _, e := range evs {
			if strings.HasPrefix(e.Message, "held ") && e.Origin == id {
				held++
			}
		}
		return err == nil && held == len(targets)
	})
	waitFor(t, "a heartbeat of the restored boot server", func() bool {
		bss, err := m.store.ListBootServers(ctx)
		return err == nil && len(bss) == 1 && bss[0].LastHeartbeat.After(restart)
	})
	bss, err := m.store.ListBootServers(ctx)
	if err != nil || len(bss) != 1 || bss[0].ID != id {
		t.Fatalf("the manager's boot servers %+v %v, want only %s", bss, err, id)
	}
	// It boots the ordered targets from its restored view.
	if d, err := n.agent.Lookup(ctx, net.HardwareAddr{0x52, 0x54, 0, 0xbb, 0, 0}, dhcp.ArchBIOS); err != nil || d.Action != dhcp.ActionBootImage {
		t.Errorf("the restored view's answer for %s: %+v %v", targets[0].MACs[0], d, err)
	}
}

// smallDataDir writes a data dir as a boot server leaves it, without
// running one: the format stamp, a credential, a view key, two buffered
// events, a lease, a staged blob and a download in progress.
func smallDataDir(t *testing.T, dir string) {
	t.Helper()
	db, _, closeDB, err := openDataDir(dir, false, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		if err := badgerkv.SetJSON(txn, keyCred, map[string]string{"id": "bs-7", "token": "secret", "name": "bs", "site": "lab"}); err != nil {
			return err
		}
		if err := txn.Set([]byte("agent/rev"), badgerkv.U64(42)); err != nil {
			return err
		}
		for i := range 2 {
			if err := txn.Set(append([]byte("evq/"), badgerkv.U64(uint64(i+1))...), []byte(`{"type":"dhcp.seen"}`)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	closeDB()
	writeLease(t, dir, fixtureLease())
	for sub, content := range map[string]string{"sha256": "a staged blob", "partial": "a download"} {
		p := filepath.Join(dir, "blobs", sub, shaHex(content))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func backupOf(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Backup(context.Background(), dir, &buf, BackupOptions{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A backup cut short, altered, of the manager's MDB, or not a backup is
// refused and leaves nothing: a missing target dir stays missing, an empty
// one empty. An occupied target dir is refused and left as it was.
func TestRestoreRefusesABrokenBackupAndLeavesNothing(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	smallDataDir(t, src)
	whole := backupOf(t, src)
	blob := bytes.Index(whole, []byte("a staged blob"))
	key := bytes.Index(whole, []byte("agent/rev"))
	if blob < 0 || key < 0 {
		t.Fatal("the backup lacks its blob or a key")
	}
	flip := func(i int) []byte { b := bytes.Clone(whole); b[i] ^= 0x20; return b }
	store, err := mdb.Open(t.TempDir(), mdb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var mdbBackup bytes.Buffer
	if _, err := store.Backup(context.Background(), &mdbBackup); err != nil {
		t.Fatal(err)
	}
	store.Close()
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"cut inside a key":             {whole[:key+3], "not a whole osim backup"},
		"cut inside the blob":          {whole[:blob+4], "not a whole osim backup"},
		"cut before its checksum":      {whole[:len(whole)-10], "not a whole osim backup"},
		"a key's byte altered":         {flip(key + 2), "not a whole osim backup"},
		"a blob's byte altered":        {flip(blob + 2), "not a whole osim backup"},
		"a byte appended":              {append(bytes.Clone(whole), 0), "not a whole osim backup"},
		"not a backup":                 {[]byte("hello"), "no osim backup header"},
		"the manager's MDB":            {mdbBackup.Bytes(), "osim-manager restore"},
		"empty":                        {nil, "no osim backup header"},
		"cut right after the magic":    {whole[:len(backupstream.Magic)], "not a whole osim backup"},
		"the header's kind is another": {forged(t, BackupInfo{Kind: "toaster", Format: 1}, nil), "a backup of a toaster"},
	} {
		for _, existing := range []bool{false, true} {
			dir := filepath.Join(t.TempDir(), "r")
			if existing {
				os.Mkdir(dir, 0o700)
			}
			_, err := Restore(dir, bytes.NewReader(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want %q", name, err, c.want)
			}
			ents, serr := os.ReadDir(dir)
			switch {
			case existing && (serr != nil || len(ents) != 0):
				t.Errorf("%s: the empty target dir holds %d entries after a refusal (%v)", name, len(ents), serr)
			case !existing && serr == nil:
				t.Errorf("%s: %s left behind", name, dir)
			}
		}
	}
	// The whole backup restores (the cases above differ from it only so).
	if _, err := Restore(filepath.Join(t.TempDir(), "r"), bytes.NewReader(whole)); err != nil {
		t.Fatalf("the whole backup: %v", err)
	}
	occupied := t.TempDir()
	os.WriteFile(filepath.Join(occupied, "keep"), []byte("mine"), 0o644)
	if _, err := Restore(occupied, bytes.NewReader(whole)); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("an occupied dir: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(occupied, "keep")); err != nil || string(b) != "mine" {
		t.Errorf("an occupied dir's file after a refused restore: %q %v", b, err)
	}
}

// forged is a backup stream with header h and the given 'K' records
// (key, value, key, value...), its end counting them.
func forged(t *testing.T, h BackupInfo, kv []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	head, _ := json.Marshal(h)
	w, err := backupstream.NewWriter(&buf, head)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if err := w.Record('K', []byte(kv[i]), []byte(kv[i+1])); err != nil {
			t.Fatal(err)
		}
		h.Keys++
	}
	end, _ := json.Marshal(h)
	if err := w.End(end); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A backup of a data dir in a format newer than this build's is refused,
// naming both formats, whether its header or its bootd/format key says
// so; nothing is left.
func TestRestoreRefusesADataDirFormatNewerThanThisBuild(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	smallDataDir(t, src)
	db, err := badger.Open(bootdBadgerOptions(src, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(DataDirLayout.Key, badgerkv.U64(DataDirLayout.Current+1)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	newer := string(badgerkv.U64(DataDirLayout.Current + 1))
	for name, data := range map[string][]byte{
		"a newer data dir backed up": backupOf(t, src),
		"its header says format 1, its key the next": forged(t, BackupInfo{Kind: BackupKind, Format: BackupFormat, DataDirFormat: 1, Version: "v9"},
			[]string{"agent/rev", "x", string(DataDirLayout.Key), newer}),
	} {
		dir := filepath.Join(t.TempDir(), "r")
		_, err := Restore(dir, bytes.NewReader(data))
		wantMsg := fmt.Sprintf("format %d, this build reads formats 1 to %d", DataDirLayout.Current+1, DataDirLayout.Current)
		if !errors.Is(err, storeformat.ErrTooNew) || !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("%s: %v, want ErrTooNew and %q", name, err, wantMsg)
		}
		if _, serr := os.Stat(dir); serr == nil {
			t.Errorf("%s: %s left behind", name, dir)
		}
		t.Logf("%s: %v", name, err)
	}
}

// A data dir a running boot server holds (Badger's lock) is refused with
// one line; a backup of a stopped one leaves downloads in progress out; a
// staged blob damaged on disk fails the backup, naming the file.
func TestBackupRefusesARunningDataDirAndADamagedBlob(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	smallDataDir(t, dir)
	db, err := badger.Open(bootdBadgerOptions(dir, false)) // as osim-bootd serve holds it
	if err != nil {
		t.Fatal(err)
	}
	_, err = Backup(ctx, dir, &bytes.Buffer{}, BackupOptions{})
	db.Close()
	if want := "stop osim-bootd first: " + dir + " is in use"; !errors.Is(err, ErrInUse) || err.Error() != want {
		t.Errorf("a running data dir: %v, want %q", err, want)
	}
	info, err := Backup(ctx, dir, &bytes.Buffer{}, BackupOptions{})
	if err != nil || info.Blobs != 1 || info.BootServer != "bs-7" {
		t.Fatalf("the stopped data dir: %+v %v, want 1 blob (the download in progress left out)", info, err)
	}
	if _, err := Backup(ctx, t.TempDir(), &bytes.Buffer{}, BackupOptions{}); err == nil || !strings.Contains(err.Error(), "not a boot server's data dir") {
		t.Errorf("a dir without a Badger: %v", err)
	}
	damaged := filepath.Join(dir, "blobs", "sha256", shaHex("a staged blob"))
	os.WriteFile(damaged, []byte("a staged blub"), 0o644)
	if _, err := Backup(ctx, dir, &bytes.Buffer{}, BackupOptions{}); err == nil || !strings.Contains(err.Error(), "remove "+damaged) {
		t.Errorf("a damaged blob: %v, want it named", err)
	}
}

// A data dir left by a boot server that was killed (its log not replayed,
// which Badger's read-only open refuses) is backed up with what it had
// written; a cleanly stopped one is backed up without a change to it.
func TestBackupOfADataDirLeftByACrashHoldsItsLastWrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	smallDataDir(t, dir)
	manifest := func(d string) string {
		b, err := os.ReadFile(filepath.Join(d, "MANIFEST"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := manifest(dir)
	backupOf(t, dir)
	if manifest(dir) != before {
		t.Error("a backup of a stopped data dir changed its Badger MANIFEST")
	}

	db, err := badger.Open(bootdBadgerOptions(dir, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("agent/rev"), badgerkv.U64(99)) }); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "crashed")
	// What a kill leaves: the files as they are while Badger runs.
	if out, err := exec.Command("cp", "-a", "--sparse=always", dir, crashed).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	db.Close()
	os.Remove(filepath.Join(crashed, "LOCK"))
	if _, err := badger.Open(bootdBadgerOptions(crashed, true).WithReadOnly(true)); err == nil || !strings.Contains(err.Error(), badger.ErrTruncateNeeded.Error()) {
		t.Fatalf("the crashed copy opens read-only (%v): this test no longer tests the replay", err)
	}
	// Another user's dir (osim-bootd's, backed up by root) is not
	// replayed: the files the replay writes would be the wrong owner's.
	if os.Geteuid() == 0 {
		if err := os.Chown(crashed, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, err := Backup(context.Background(), crashed, &buf, BackupOptions{})
		if err == nil || !strings.Contains(err.Error(), "replayed by its owner (uid 65534)") {
			t.Errorf("a crashed dir of another user: %v, want the refusal naming its owner", err)
		}
		if err := os.Chown(crashed, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(restored, bytes.NewReader(backupOf(t, crashed))); err != nil {
		t.Fatal(err)
	}
	if v := dataDirKeys(t, restored)["agent/rev"]; v != string(badgerkv.U64(99)) {
		t.Errorf("agent/rev after a crash, backed up and restored: %x, want the last write (99)", v)
	}
}
