package bootd

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/agent"
	"osim/controlplane/api"
	"osim/dataplane/dhcp"
	"osim/internal/badgerkv"
	"osim/internal/dirtar"
	"osim/internal/diskspace"
)

// A boot server's data dir as this release writes it, kept in testdata so
// that every later release proves it reads it: the credential, the synced
// view, events the manager had not taken yet, a full-DHCP lease and the
// staged blobs, with what they held (manifest.json inside). Its point is
// to keep passing: a change that breaks it breaks every boot server
// upgraded in place. Rewrite it only when the data dir's format changes (a
// new format gets a new fixture, the old ones stay) with
//
//	OSIM_WRITE_FIXTURES=1 go test ./internal/bootd/ -run TestWriteDataDirFixture
const dataDirFixture = "testdata/datadir-format1.tar.gz"

// dataDirManifest is what the fixture's data dir held when written.
type dataDirManifest struct {
	Format     uint64 `json:"format"`
	Credential struct {
		ID    string `json:"id"`
		Token string `json:"token"`
		Name  string `json:"name"`
		Site  string `json:"site"`
	} `json:"credential"`
	Revision uint64            `json:"revision"`
	Targets  []api.Target      `json:"targets"`
	Orders   []api.Order       `json:"orders"`
	Images   []api.Image       `json:"images"`
	Events   []api.Event       `json:"events"` // the buffer, oldest first
	Lease    dhcp.Lease        `json:"lease"`
	Blobs    map[string]string `json:"blobs"` // sha256 → content
}

// TestWriteDataDirFixture writes testdata/datadir-format1.tar.gz: the data
// dir of a real boot server (in process, against a real manager) that
// registered, synced a site, staged an image and holds three events.
func TestWriteDataDirFixture(t *testing.T) {
	if os.Getenv("OSIM_WRITE_FIXTURES") != "1" {
		t.Skip("writes the fixture only with OSIM_WRITE_FIXTURES=1")
	}
	m := startTestManager(t)
	img, targets, orders := m.seedSite(t)
	dir := filepath.Join(t.TempDir(), "data")
	runBootServer(t, m, dir, img, targets, orders)
	writeLease(t, dir, fixtureLease())

	var mf dataDirManifest
	db, err := badger.Open(bootdBadgerOptions(dir, false))
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(txn *badger.Txn) error {
		if mf.Format, err = badgerkv.GetU64(txn, DataDirLayout.Key); err != nil {
			return err
		}
		if _, err := badgerkv.GetJSON(txn, keyCred, &mf.Credential); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("evq/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var e api.Event
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &e) }); err != nil {
				return err
			}
			mf.Events = append(mf.Events, e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{DB: db, BlobDir: filepath.Join(dir, "blobs"), Client: api.NewClient("http://127.0.0.1:1", "", false)})
	if err != nil {
		t.Fatal(err)
	}
	if mf.Targets, mf.Orders, mf.Images, mf.Revision, err = a.View(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	mf.Lease = fixtureLease()
	mf.Blobs = map[string]string{}
	for _, f := range img.Files {
		b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", f.SHA256))
		if err != nil {
			t.Fatal(err)
		}
		mf.Blobs[f.SHA256] = string(b)
	}
	if mf.Credential.ID == "" || len(mf.Events) != len(targets) || len(mf.Orders) != len(orders) || mf.Format != DataDirLayout.Current {
		t.Fatalf("the fixture lacks something: %+v", mf)
	}
	// The disk guard makes its ballast again at the next start.
	if err := os.Remove(filepath.Join(dir, diskspace.BallastName)); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(mf, "", " ")
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dirtar.Write(dataDirFixture, dir); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(dataDirFixture)
	t.Logf("wrote %s (%d bytes)", dataDirFixture, st.Size())
}

// TestOpensADataDirWrittenByAnEarlierRelease: the fixture's data dir opens
// as a start opens it (openDataDir: its format checked), and the agent
// reads it back: the same boot server id, the same view at the same
// revision, the target of an order booted from it, its staged blobs
// served; run against a manager, it uses the stored credential and uploads
// the buffered events as they were; full DHCP's lease is there.
func TestOpensADataDirWrittenByAnEarlierRelease(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	if err := dirtar.Read(dataDirFixture, dir); err != nil {
		t.Fatal(err)
	}
	var want dataDirManifest
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	db, _, closeDB, err := openDataDir(dir, false, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatalf("this build cannot open a format-%d data dir: %v", want.Format, err)
	}
	defer closeDB()
	var format uint64
	if err := db.View(func(txn *badger.Txn) (err error) { format, err = badgerkv.GetU64(txn, DataDirLayout.Key); return err }); err != nil || format != DataDirLayout.Current {
		t.Errorf("format after the open: %d %v, want %d (migrated)", format, err, DataDirLayout.Current)
	}

	mm := &fixtureManager{rev: want.Revision}
	ms := httptest.NewServer(mm)
	defer ms.Close()
	a, err := agent.New(agent.Config{DB: db, BlobDir: filepath.Join(dir, "blobs"), Client: api.NewClient(ms.URL, "", false),
		Registry: reg, Logger: slog.New(slog.DiscardHandler), SyncWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != want.Credential.ID {
		t.Errorf("boot server id %q, want %q", a.ID(), want.Credential.ID)
	}
	var got dataDirManifest
	if got.Targets, got.Orders, got.Images, got.Revision, err = a.View(); err != nil {
		t.Fatal(err)
	}
	for what, pair := range map[string][2]any{"revision": {got.Revision, want.Revision}, "targets": {got.Targets, want.Targets},
		"orders": {got.Orders, want.Orders}, "images": {got.Images, want.Images}} {
		g, _ := json.Marshal(pair[0])
		w, _ := json.Marshal(pair[1])
		if string(g) != string(w) {
			t.Errorf("%s differ:\n got %.600s\nwant %.600s", what, g, w)
		}
	}
	if v := gauge(t, reg, "osim_agent_events_pending"); v != float64(len(want.Events)) {
		t.Errorf("events pending %v, want %d", v, len(want.Events))
	}

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx) }()
	waitFor(t, "the buffered events at the manager", func() bool { return len(mm.uploaded()) >= len(want.Events) })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("agent: %v", err)
	}
	mm.mu.Lock()
	registered, auth := mm.registered, mm.eventsAuth
	mm.mu.Unlock()
	if registered {
		t.Error("the agent registered again")
	}
	if auth != "Bearer "+want.Credential.Token {
		t.Errorf("events uploaded with %q, want the stored credential", auth)
	}
	up := mm.uploaded()
	if len(up) != len(want.Events) {
		t.Fatalf("uploaded %d events, want %d", len(up), len(want.Events))
	}
	for i, e := range up {
		w := want.Events[i]
		if e.Type != w.Type || e.Target != w.Target || e.MAC != w.MAC || e.Message != w.Message || e.OriginSeq != w.OriginSeq || !e.Time.Equal(w.Time) {
			t.Errorf("event %d: %+v, want %+v", i, e, w)
		}
	}

	// The seams answer from it (they emit events of their own: after the
	// buffer's check).
	if len(want.Orders) == 0 {
		t.Fatal("the fixture holds no order")
	}
	o := want.Orders[0]
	mac, _ := net.ParseMAC(o.MACs[0])
	if d, err := a.Lookup(ctx, mac, dhcp.ArchBIOS); err != nil || d.Action != dhcp.ActionBootImage {
		t.Errorf("the DHCP answer for order %s's target: %+v %v", o.ID, d, err)
	}
	for _, img := range want.Images {
		for _, f := range img.Files {
			fh, err := a.Open(ctx, "images/"+img.ID+"/"+f.Name)
			if err != nil {
				t.Errorf("staged %s: %v", f.Name, err)
				continue
			}
			content, _ := io.ReadAll(fh)
			fh.Close()
			if string(content) != want.Blobs[f.SHA256] {
				t.Errorf("staged %s: %d bytes, not the fixture's", f.Name, len(content))
			}
		}
	}
	leases, err := dhcp.OpenBadgerLeases(db)
	if err != nil {
		t.Fatal(err)
	}
	err = leases.View(func(tx dhcp.LeaseTx) error {
		l, ok, err := tx.Get(want.Lease.IP)
		if err != nil || !ok || l.MAC.String() != want.Lease.MAC.String() || l.State != want.Lease.State || !l.Expires.Equal(want.Lease.Expires) {
			t.Errorf("lease %s: %+v %v %v, want %+v", want.Lease.IP, l, ok, err, want.Lease)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fixtureManager is a hand-written fake of the manager, the last resort
// the house style allows: the fixture's credential was issued by a
// manager that no longer exists, so no real one would accept it. It
// answers an agent that registered before: no change since its revision,
// heartbeats, and event uploads it records; a registration is refused
// and noted (the test requires none).
type fixtureManager struct {
	rev        uint64
	mu         sync.Mutex
	events     []api.Event
	eventsAuth string
	registered bool
}

func (m *fixtureManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	js := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.URL.Path == api.Prefix+"/bootservers/register":
		m.mu.Lock()
		m.registered = true
		m.mu.Unlock()
		http.Error(w, `{"code":403,"message":"fixture: no registration"}`, http.StatusForbidden)
	case r.URL.Path == api.Prefix+"/bootservers/heartbeat":
		js(api.BootServer{})
	case r.URL.Path == api.Prefix+"/sync":
		select {
		case <-r.Context().Done():
		case <-time.After(100 * time.Millisecond):
		}
		js(api.SyncResponse{Revision: m.rev, Changes: []api.Change{}})
	case r.URL.Path == api.Prefix+"/events" && r.Method == http.MethodPost:
		var b api.EventBatch
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || len(b.Events) == 0 {
			http.Error(w, `{"code":400,"message":"bad batch"}`, http.StatusBadRequest)
			return
		}
		m.mu.Lock()
		m.events = append(m.events, b.Events...)
		m.eventsAuth = r.Header.Get("Authorization")
		m.mu.Unlock()
		js(api.EventAck{Accepted: len(b.Events), LastSeq: b.Events[len(b.Events)-1].OriginSeq})
	default:
		http.Error(w, `{"code":404,"message":"fixture: not here"}`, http.StatusNotFound)
	}
}

func (m *fixtureManager) uploaded() []api.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]api.Event(nil), m.events...)
}

// gauge reads one gauge of reg (0 when absent).
func gauge(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}
