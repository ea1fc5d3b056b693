package mdb

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
	"osim/internal/dirtar"
	"osim/internal/storeformat"
)

// The MDB a release wrote, kept in testdata so that every later release
// proves it reads it: the data dir as a tarball, and what the store held
// through its own API when it was written (manifest.json inside).
//
// Rewrite it (only when the format changes: a new format gets a new
// fixture, the old ones stay) with
//
//	OSIM_WRITE_FIXTURES=1 go test ./controlplane/mdb/ -run TestWriteFormatFixture
const formatFixture = "testdata/mdb-format1.tar.gz"

// storeManifest is everything the store lists, as the generator saw it.
type storeManifest struct {
	Format      uint64            `json:"format"`
	Revision    uint64            `json:"revision"`
	Targets     []api.Target      `json:"targets"`
	Images      []api.Image       `json:"images"`
	Orders      []api.Order       `json:"orders"`
	Tokens      []api.TokenInfo   `json:"tokens"`
	BootServers []api.BootServer  `json:"boot_servers"`
	Events      []api.Event       `json:"events"`
	Credentials []api.Credential  `json:"credentials"`
	Rollouts    []api.Rollout     `json:"rollouts"`
	Sites       []api.Site        `json:"sites"`
	Blobs       map[string]string `json:"blobs"` // sha256 → content
}

func readManifest(t *testing.T, d *DB) storeManifest {
	t.Helper()
	ctx := context.Background()
	var m storeManifest
	m.Revision = must[uint64](t)(d.Revision(ctx))
	m.Targets = listed[api.Target](t)(d.ListTargets(ctx, TargetQuery{Page: Page{Limit: 10000}}))
	m.Images = listed[api.Image](t)(d.ListImages(ctx, Page{Limit: 10000}))
	m.Orders = listed[api.Order](t)(d.ListOrders(ctx, OrderQuery{Page: Page{Limit: 10000}}))
	m.Tokens = must[[]api.TokenInfo](t)(d.ListTokens(ctx))
	m.BootServers = must[[]api.BootServer](t)(d.ListBootServers(ctx))
	m.Events = must[[]api.Event](t)(d.ListEvents(ctx, EventQuery{Limit: 10000}))
	m.Credentials = must[[]api.Credential](t)(d.ListCredentials(ctx))
	m.Rollouts = must[[]api.Rollout](t)(d.ListRollouts(ctx))
	m.Sites = must[[]api.Site](t)(d.ListSites(ctx))
	m.Blobs = map[string]string{}
	for _, im := range m.Images {
		for _, f := range im.Files {
			b := must[Blob](t)(d.OpenBlob(ctx, f.SHA256))
			content, err := io.ReadAll(b)
			b.Close()
			if err != nil {
				t.Fatal(err)
			}
			m.Blobs[f.SHA256] = string(content)
		}
	}
	if err := d.db.View(func(txn *badger.Txn) (err error) { m.Format, err = badgerkv.GetU64(txn, keyFormat); return err }); err != nil {
		t.Fatal(err)
	}
	return m
}

// listed drops a listing's next cursor (the fixture fits in one page).
func listed[T any](t *testing.T) func([]T, string, error) []T {
	return func(v []T, _ string, err error) []T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestWriteFormatFixture writes testdata/mdb-format1.tar.gz: a store
// holding one of everything the MDB keeps, written by this build.
func TestWriteFormatFixture(t *testing.T) {
	if os.Getenv("OSIM_WRITE_FIXTURES") != "1" {
		t.Skip("writes the fixture only with OSIM_WRITE_FIXTURES=1")
	}
	ctx := context.Background()
	d, dir := openTest(t)
	targets := mustTargets(t, d, "paris", 0, 20)
	mustTargets(t, d, "lyon", 100, 5)
	os1 := osImage(t, d, "debian")
	boot := bootImage(t, d, "osim-installer")
	orders := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Selector: "rack=r1", Image: os1.ID, BootImage: boot.ID,
		Params: map[string]string{"ssh_authorized_keys": "ssh-ed25519 AAAA fixture"}}))
	must[api.Order](t)(d.Transition(ctx, orders[0].ID, api.OrderCancelled, "fixture"))
	if err := d.CreateToken(ctx, Token{TokenInfo: api.TokenInfo{Role: api.RoleAdmin, Name: "root"}, Hash: shaOf([]byte("admin secret"))}); err != nil {
		t.Fatal(err)
	}
	bs := must[api.BootServer](t)(d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs1", Site: "paris",
		Addresses: []string{"10.0.0.2"}, Subnets: []string{"10.0.0.0/24"}}, "", Token{Hash: shaOf([]byte("bs secret"))}))
	must[api.EventAck](t)(d.IngestEvents(ctx, bs.ID, "paris", []api.Event{{OriginSeq: 1, Type: api.EventDHCPSeen, MAC: targets[1].MACs[0]}}))
	must[api.Credential](t)(d.PutCredential(ctx, Credential{Credential: api.Credential{Name: "bmc", Username: "admin"}, Sealed: []byte("sealed bytes")}))
	must[api.Site](t)(d.PutSite(ctx, api.Site{Name: "paris"}))
	must[api.Rollout](t)(d.CreateRollout(ctx, api.Rollout{Orders: api.OrderRequest{Selector: "rack=r2", Image: os1.ID},
		Policy: api.RolloutPolicy{WaveBy: "rack", FailureBudget: 1}, State: api.RolloutRunning}))
	m := readManifest(t, d)
	if len(m.Orders) == 0 || len(m.Events) == 0 || len(m.Blobs) == 0 || len(m.Rollouts) == 0 {
		t.Fatalf("the fixture lacks something: %d orders, %d events, %d blobs, %d rollouts", len(m.Orders), len(m.Events), len(m.Blobs), len(m.Rollouts))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	manifest, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dirtar.Write(formatFixture, dir); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(formatFixture)
	t.Logf("wrote %s (%d bytes)", formatFixture, st.Size())
}

// TestOpensAStoreWrittenByAnEarlierRelease: the fixture's store opens and
// lists exactly what its writer listed, and then takes writes.
func TestOpensAStoreWrittenByAnEarlierRelease(t *testing.T) {
	dir := t.TempDir()
	if err := dirtar.Read(formatFixture, dir); err != nil {
		t.Fatal(err)
	}
	var want storeManifest
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	d, err := Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("this build cannot open a format-%d store: %v", want.Format, err)
	}
	defer d.Close()
	got := readManifest(t, d)
	if got.Format != Layout.Current {
		t.Errorf("format after Open: %d, want %d (migrated)", got.Format, Layout.Current)
	}
	got.Format = want.Format
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			g, _ := json.Marshal(gv.Field(i).Interface())
			w, _ := json.Marshal(wv.Field(i).Interface())
			t.Errorf("%s differ:\n got %.600s\nwant %.600s", gv.Type().Field(i).Name, g, w)
		}
	}
	if _, err := d.CreateTarget(context.Background(), spec(999, "paris")); err != nil {
		t.Errorf("a write to the upgraded store: %v", err)
	}
}

// A store from a newer release is refused, and left as it was.
func TestRefusesAStoreWrittenByANewerRelease(t *testing.T) {
	dir := t.TempDir()
	if err := dirtar.Read(formatFixture, dir); err != nil {
		t.Fatal(err)
	}
	bdb, err := badger.Open(BadgerOptions(filepath.Join(dir, "db"), quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, badgerkv.U64(Layout.Current+1)) }); err != nil {
		t.Fatal(err)
	}
	before, err := badgerkv.All(bdb)
	if err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	_, err = Open(dir, Options{Logger: quietLogger()})
	if !errors.Is(err, storeformat.ErrTooNew) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer store: %v, want ErrTooNew", err)
	}
	t.Log(err)
	bdb, err = badger.Open(BadgerOptions(filepath.Join(dir, "db"), quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if after, err := badgerkv.All(bdb); err != nil || !reflect.DeepEqual(after, before) {
		t.Errorf("the refused store changed: %d keys before, %d after (%v)", len(before), len(after), err)
	}
}
