package mdb

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
)

func TestBootServersAndTokens(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	hash := shaOf([]byte("secret"))
	bs := must[api.BootServer](t)(d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs1", Site: "paris",
		Addresses: []string{"10.0.0.2"}, Subnets: []string{"10.0.0.0/24"}}, "", Token{Hash: hash, TokenInfo: api.TokenInfo{Role: api.RoleAdmin}}))
	if !strings.HasPrefix(bs.ID, "bs-") || bs.Revision != 1 {
		t.Fatalf("registered %+v", bs)
	}
	tok := must[Token](t)(d.TokenByHash(ctx, hash))
	if tok.Role != api.RoleBootServer || tok.BootServer != bs.ID || !strings.HasPrefix(tok.ID, "tok-") {
		t.Fatalf("credential %+v", tok)
	}
	_, err := d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs1", Site: "lyon"}, "", Token{Hash: shaOf([]byte("x"))})
	wantErr(t, err, ErrConflict, "bs1", bs.ID)
	_, err = d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs2", Site: "lyon"}, "", Token{Hash: hash})
	wantErr(t, err, ErrConflict, "hash")
	for _, req := range []api.RegisterRequest{
		{Name: "", Site: "s"}, {Name: "n", Site: "a b"}, {Name: "n", Site: "s", Addresses: []string{"x"}},
		{Name: "n", Site: "s", Subnets: []string{"10.0.0.0"}},
	} {
		_, err := d.RegisterBootServer(ctx, req, "", Token{Hash: shaOf([]byte("y"))})
		wantErr(t, err, ErrInvalid)
	}
	_, err = d.RegisterBootServer(ctx, api.RegisterRequest{Name: "n", Site: "s"}, "", Token{Hash: "short"})
	wantErr(t, err, ErrInvalid, "hash")
	at := time.Date(2026, 5, 5, 5, 5, 5, 0, time.UTC)
	hb := must[api.BootServer](t)(d.Heartbeat(ctx, bs.ID, api.Heartbeat{SyncedRevision: 7, Version: "1.2"}, at))
	if !hb.LastHeartbeat.Equal(at) || hb.SyncedRevision != 7 || hb.Version != "1.2" {
		t.Fatalf("heartbeat %+v", hb)
	}
	_, err = d.Heartbeat(ctx, "bs-nope", api.Heartbeat{}, at)
	wantErr(t, err, ErrNotFound)
	if got := must[api.BootServer](t)(d.GetBootServer(ctx, bs.ID)); got.SyncedRevision != 7 {
		t.Fatalf("get %+v", got)
	}
	if l := must[[]api.BootServer](t)(d.ListBootServers(ctx)); len(l) != 1 {
		t.Fatalf("list %+v", l)
	}

	admin := Token{TokenInfo: api.TokenInfo{Role: api.RoleAdmin, Name: "root", Secret: "leak"}, Hash: shaOf([]byte("a"))}
	if err := d.CreateToken(ctx, admin); err != nil {
		t.Fatal(err)
	}
	wantErr(t, d.CreateToken(ctx, admin), ErrConflict)
	wantErr(t, d.CreateToken(ctx, Token{TokenInfo: api.TokenInfo{Role: "god"}, Hash: shaOf([]byte("b"))}), ErrInvalid, "role")
	toks := must[[]api.TokenInfo](t)(d.ListTokens(ctx))
	if len(toks) != 2 {
		t.Fatalf("tokens %+v", toks)
	}
	for _, ti := range toks {
		if ti.Secret != "" {
			t.Fatal("a secret was stored")
		}
	}
	a := must[Token](t)(d.TokenByHash(ctx, admin.Hash))
	if err := d.CreateToken(ctx, Token{TokenInfo: api.TokenInfo{Role: api.RoleAdmin, Name: "root2"}, Hash: shaOf([]byte("a2"))}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteToken(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	_, err = d.TokenByHash(ctx, admin.Hash)
	wantErr(t, err, ErrNotFound)
	wantErr(t, d.DeleteToken(ctx, a.ID), ErrNotFound)

	if err := d.DeleteBootServer(ctx, bs.ID); err != nil {
		t.Fatal(err)
	}
	_, err = d.TokenByHash(ctx, hash)
	wantErr(t, err, ErrNotFound)
	_, err = d.GetBootServer(ctx, bs.ID)
	wantErr(t, err, ErrNotFound)
	wantErr(t, d.DeleteBootServer(ctx, bs.ID), ErrNotFound)
	// The name is free again.
	must[api.BootServer](t)(d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs1", Site: "paris"}, "", Token{Hash: hash}))
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ts := mustTargets(t, d, "paris", 0, 3)
	im := osImage(t, d, "debian")
	o := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: ts[0].ID, Image: im.ID}))[0]
	must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", []api.Event{{OriginSeq: 41, Type: api.EventOrderStaged, Order: o.ID}}))
	if err := d.CreateToken(ctx, Token{TokenInfo: api.TokenInfo{Role: api.RoleViewer}, Hash: shaOf([]byte("v"))}); err != nil {
		t.Fatal(err)
	}
	half := shaOf([]byte("abcdef"))
	must[api.BlobStatus](t)(d.WriteBlob(ctx, half, 6, 0, strings.NewReader("abc")))
	r0, ev0 := rev(t, d), must[uint64](t)(d.LastEventSeq(ctx))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d, err = Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if rev(t, d) != r0 || must[uint64](t)(d.LastEventSeq(ctx)) != ev0 {
		t.Fatalf("counters %d %d, want %d %d", rev(t, d), must[uint64](t)(d.LastEventSeq(ctx)), r0, ev0)
	}
	ack := must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", []api.Event{{OriginSeq: 41, Type: api.EventOrderStaged, Order: o.ID}}))
	if ack.Duplicates != 1 || ack.LastSeq != 41 {
		t.Fatalf("origin seq lost: %+v", ack)
	}
	if got := must[api.Order](t)(d.GetOrder(ctx, o.ID)); got.State != api.OrderStaged || got.Token != o.Token {
		t.Fatalf("order %+v", got)
	}
	must[Token](t)(d.TokenByHash(ctx, shaOf([]byte("v"))))
	if st := must[api.BlobStatus](t)(d.BlobStatus(ctx, half)); st.Received != 3 || st.Size != 6 {
		t.Fatalf("upload %+v", st)
	}
	must[api.BlobStatus](t)(d.WriteBlob(ctx, half, 6, 3, strings.NewReader("def")))
	resp := must[api.SyncResponse](t)(d.Changes(ctx, "paris", 1, 100))
	if resp.Revision != r0 || len(resp.Changes) == 0 {
		t.Fatalf("log after reopen %+v", resp)
	}
	// New revisions continue from the old.
	if tg := mustTargets(t, d, "paris", 10, 1)[0]; tg.Revision != r0+1 {
		t.Fatalf("revision after reopen %d", tg.Revision)
	}
}

func TestNewOnCallersDatabase(t *testing.T) {
	dir := t.TempDir()
	bdb, err := badger.Open(BadgerOptions(filepath.Join(dir, "db"), quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if _, err := New(bdb, Options{}); err == nil {
		t.Fatal("New without BlobDir")
	}
	d, err := New(bdb, Options{BlobDir: filepath.Join(dir, "blobs"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	mustTargets(t, d, "paris", 0, 2)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// Close left the caller's database open, and every key is under mdb/.
	err = bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if key := string(it.Item().Key()); !strings.HasPrefix(key, "mdb/") {
				t.Errorf("key %q outside mdb/", key)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeatStatsAndStagedImagesAreKeptAndChecked(t *testing.T) {
	d, _ := openTest(t)
	ctx := context.Background()
	bs := must[api.BootServer](t)(d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs1", Site: "lyon"}, "",
		Token{Hash: shaOf([]byte("s")), TokenInfo: api.TokenInfo{Role: api.RoleAdmin}}))
	at := time.Date(2026, 5, 5, 5, 5, 5, 0, time.UTC)
	stats := map[string]float64{"osim_dhcp_packets_total": 12, "osim_disk_free_bytes": 1 << 30}
	hb := must[api.BootServer](t)(d.Heartbeat(ctx, bs.ID, api.Heartbeat{Stats: stats, StagedImages: []string{"img-b", "img-a"}}, at))
	if hb.Stats["osim_disk_free_bytes"] != 1<<30 || !hb.StatsAt.Equal(at) || strings.Join(hb.StagedImages, ",") != "img-a,img-b" {
		t.Fatalf("heartbeat %+v", hb)
	}
	// An older boot server sends neither: both stay as they were.
	hb = must[api.BootServer](t)(d.Heartbeat(ctx, bs.ID, api.Heartbeat{SyncedRevision: 2}, at.Add(time.Second)))
	if len(hb.Stats) != 2 || len(hb.StagedImages) != 2 || !hb.StatsAt.Equal(at) {
		t.Fatalf("a heartbeat without stats changed them: %+v", hb)
	}
	// An empty list means none staged now.
	hb = must[api.BootServer](t)(d.Heartbeat(ctx, bs.ID, api.Heartbeat{StagedImages: []string{}}, at))
	if len(hb.StagedImages) != 0 {
		t.Fatalf("staged images %v, want none", hb.StagedImages)
	}
	many := map[string]float64{}
	for i := range api.MaxHeartbeatStats + 1 {
		many[fmt.Sprintf("m_%d", i)] = 1
	}
	for _, bad := range []api.Heartbeat{
		{Stats: map[string]float64{"Bad-Name": 1}},
		{Stats: map[string]float64{"x": math.NaN()}},
		{Stats: map[string]float64{"x": math.Inf(1)}},
		{Stats: many},
		{StagedImages: []string{"img a"}},
		{StagedImages: make([]string, api.MaxStagedImages+1)},
		{EgressCeiling: -1},
		{EgressCeiling: math.NaN()},
	} {
		_, err := d.Heartbeat(ctx, bs.ID, bad, at)
		wantErr(t, err, ErrInvalid)
	}
}

// Egress is the bytes/s delivered (HTTP and TFTP) between the last two
// heartbeats with stats; a counter that went back (a restart) or a long
// gap tells nothing.
func TestHeartbeatEgressRate(t *testing.T) {
	d, _ := openTest(t)
	ctx := context.Background()
	bs := must[api.BootServer](t)(d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs1", Site: "lyon"}, "",
		Token{Hash: shaOf([]byte("s")), TokenInfo: api.TokenInfo{Role: api.RoleAdmin}}))
	at := time.Date(2026, 5, 5, 5, 5, 5, 0, time.UTC)
	beat := func(http, tftp float64, at time.Time) api.BootServer {
		t.Helper()
		return must[api.BootServer](t)(d.Heartbeat(ctx, bs.ID, api.Heartbeat{EgressCeiling: 1.25e9,
			Stats: map[string]float64{"osim_httpboot_response_bytes_total": http, "osim_tftp_bytes_sent_total": tftp}}, at))
	}
	if hb := beat(1e9, 1e6, at); hb.Egress != 0 || hb.EgressCeiling != 1.25e9 {
		t.Fatalf("first heartbeat: egress %v ceiling %v, want 0 and 1.25e9", hb.Egress, hb.EgressCeiling)
	}
	if hb := beat(1e9+500e6, 1e6+100e6, at.Add(10*time.Second)); hb.Egress != 60e6 {
		t.Fatalf("egress %v, want 60e6 (600 MB in 10 s)", hb.Egress)
	}
	if hb := beat(5e6, 0, at.Add(20*time.Second)); hb.Egress != 0 {
		t.Fatalf("after a restart: egress %v, want 0", hb.Egress)
	}
	if hb := beat(5e9, 0, at.Add(20*time.Minute)); hb.Egress != 0 {
		t.Fatalf("after a 20-minute gap: egress %v, want 0", hb.Egress)
	}
}
