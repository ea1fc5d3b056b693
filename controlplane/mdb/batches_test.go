package mdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/clock"
)

// TestSelectorThatMatchesEverythingNeedsAllWhateverItsSpelling: the guard
// is about what a selector matches; `!no-such-label` and `a!=b` match
// every target and are refused without All like any other spelling.
func TestSelectorThatMatchesEverythingNeedsAllWhateverItsSpelling(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	mustTargets(t, d, "paris", 0, 6)
	mustTargets(t, d, "lyon", 6, 6)
	im := osImage(t, d, "debian")
	opts := OrderOptions{MaxShare: 1} // only the every-target rule
	for _, sel := range []string{"!no-such-label", "a!=b", "rack", "rack!=r9,!gpu"} {
		r0 := rev(t, d)
		_, err := d.PlaceOrders(ctx, api.OrderRequest{Selector: sel, Image: im.ID}, opts)
		wantErr(t, err, ErrNeedsAll, sel, "every target (12)", `"all": true`)
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("%q: %v does not wrap ErrInvalid", sel, err)
		}
		if r := rev(t, d); r != r0 {
			t.Fatalf("%q: a refused request moved the revision %d → %d", sel, r0, r)
		}
	}
	res := must[OrderResult](t)(d.PlaceOrders(ctx, api.OrderRequest{Selector: "!no-such-label", Image: im.ID, All: true}, opts))
	if len(res.Orders) != 12 {
		t.Fatalf("with all: %d orders, want 12", len(res.Orders))
	}
}

// TestSelectorOverASiteShareNeedsAll: more than MaxShare of one site's
// targets needs All even when other sites are untouched; exactly the
// share does not.
func TestSelectorOverASiteShareNeedsAll(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	var specs []api.TargetSpec
	for i := range 6 {
		sp := spec(i, "paris")
		sp.Labels = map[string]string{"row": "p" + fmt.Sprint(min(i, 4)/4)} // p0 ×4, p1 ×2
		specs = append(specs, sp)
	}
	paris := must[[]api.Target](t)(d.CreateTargets(ctx, specs))
	mustTargets(t, d, "lyon", 6, 30)
	im := osImage(t, d, "debian")
	opts := OrderOptions{MaxShare: 0.5}
	_, err := d.PlaceOrders(ctx, api.OrderRequest{Selector: "row=p0", Image: im.ID}, opts)
	wantErr(t, err, ErrNeedsAll, "4 of the 6 targets of site paris", "more than 50%")
	res := must[OrderResult](t)(d.PlaceOrders(ctx, api.OrderRequest{Selector: "row=p1", Image: im.ID}, opts))
	if len(res.Orders) != 2 {
		t.Fatalf("%d orders, want 2 (a third of paris)", len(res.Orders))
	}
	// A list names each target: not guarded.
	must[OrderResult](t)(d.PlaceOrders(ctx, api.OrderRequest{Targets: []string{paris[0].ID, paris[1].ID, paris[2].ID}, Image: im.ID}, opts))
}

// TestDryRunListsTheTargetsAndWritesNothing: a dry run answers the
// targets (id, hostname, site), each site's share and why All would be
// needed, and moves nothing.
func TestDryRunListsTheTargetsAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	ts := mustTargets(t, d, "paris", 0, 4)
	im := osImage(t, d, "debian")
	r0 := rev(t, d)
	res := must[OrderResult](t)(d.PlaceOrders(ctx, api.OrderRequest{Selector: "a!=b", Image: im.ID, DryRun: true}, OrderOptions{MaxShare: 0.5}))
	if r := rev(t, d); r != r0 || len(res.Orders) != 0 {
		t.Fatalf("dry run wrote: revision %d → %d, %d orders", r0, r, len(res.Orders))
	}
	if len(res.Plan.Targets) != 4 || res.Plan.Targets[0].Hostname == "" || res.Plan.Targets[0].Site != "paris" {
		t.Fatalf("plan targets %+v", res.Plan.Targets)
	}
	if len(res.Plan.Sites) != 1 || res.Plan.Sites[0] != (api.SiteShare{Site: "paris", Ordered: 4, Total: 4}) {
		t.Fatalf("plan sites %+v", res.Plan.Sites)
	}
	if res.Plan.NeedsAll == "" {
		t.Fatal("plan does not say the request needs all")
	}
	if tg := must[api.Target](t)(d.GetTarget(ctx, ts[0].ID)); tg.CurrentOrder != "" {
		t.Fatalf("dry run gave %s an order", tg.ID)
	}
}

// failAfter is a SpaceGuard that refuses every check after the first n.
type failAfter struct{ n, calls atomic.Int64 }

func (f *failAfter) Check(int64) error {
	if f.calls.Add(1) > f.n.Load() {
		return errors.New("disk full (test)")
	}
	return nil
}

// TestMassOrderIsWholeAfterTheCallerHangsUp: the caller's context ends
// while the chunks of a 3,500-order batch are written; every order is
// written all the same (before: 1,000 or 2,000 were left).
func TestMassOrderIsWholeAfterTheCallerHangsUp(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	d, _ := openTest(t)
	mustTargets(t, d, "paris", 0, 3500)
	im := osImage(t, d, "debian")
	r0 := rev(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // hang up as soon as the first chunk is committed
		_, _ = d.WaitRevision(context.Background(), r0)
		cancel()
	}()
	_, err := d.PlaceOrders(ctx, api.OrderRequest{Selector: "rack", Image: im.ID, All: true}, OrderOptions{})
	if err != nil {
		t.Logf("PlaceOrders: %v", err)
	}
	if n := must[map[api.OrderState]int](t)(d.CountOrders(context.Background()))[api.OrderPending]; n != 3500 {
		t.Fatalf("%d orders after the hang-up, want all 3500", n)
	}
}

// TestFailedChunkIsFinishedByTheRetryOfTheSameRequest: a chunk fails
// (disk full) after 2 of 4 chunks; the batch stays open, and the retry of
// the same request finishes it and answers all 3,500 orders, replayed,
// instead of 409 "has live order".
func TestFailedChunkIsFinishedByTheRetryOfTheSameRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	ctx := context.Background()
	guard := &failAfter{}
	guard.n.Store(1 << 40)
	d, _ := openTest(t, func(o *Options) { o.Space = guard })
	mustTargets(t, d, "paris", 0, 3500)
	im := osImage(t, d, "debian")
	guard.calls.Store(0)
	guard.n.Store(2)
	req := api.OrderRequest{Selector: "rack", Image: im.ID, All: true}
	_, err := d.PlaceOrders(ctx, req, OrderOptions{})
	wantErr(t, err, ErrNoSpace, "2000 of 3500")
	guard.n.Store(1 << 40)
	res := must[OrderResult](t)(d.PlaceOrders(ctx, req, OrderOptions{}))
	if !res.Replayed || len(res.Orders) != 3500 {
		t.Fatalf("retry: replayed %v, %d orders, want 3500", res.Replayed, len(res.Orders))
	}
	checkOneOrderPerTarget(t, d, 3500)
}

// TestOpenBatchIsFinishedAtStart: a batch left open (as a crash leaves
// it) is finished by ResumeOrderBatches after a reopen.
func TestOpenBatchIsFinishedAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	ctx := context.Background()
	guard := &failAfter{}
	guard.n.Store(1 << 40)
	d, dir := openTest(t, func(o *Options) { o.Space = guard })
	mustTargets(t, d, "paris", 0, 2500)
	im := osImage(t, d, "debian")
	guard.calls.Store(0)
	guard.n.Store(1)
	_, err := d.PlaceOrders(ctx, api.OrderRequest{Selector: "rack", Image: im.ID, All: true}, OrderOptions{})
	wantErr(t, err, ErrNoSpace, "1000 of 2500")
	d.Close()
	d, err = Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if n := must[int](t)(d.ResumeOrderBatches(ctx)); n != 1 {
		t.Fatalf("%d batches resumed, want 1", n)
	}
	checkOneOrderPerTarget(t, d, 2500)
	if n := must[int](t)(d.ResumeOrderBatches(ctx)); n != 0 {
		t.Fatalf("%d batches resumed a second time", n)
	}
}

// checkOneOrderPerTarget checks that n orders exist, one per target, each
// its target's current order.
func checkOneOrderPerTarget(t *testing.T, d *DB, n int) {
	t.Helper()
	ctx := context.Background()
	if c := must[map[api.OrderState]int](t)(d.CountOrders(ctx))[api.OrderPending]; c != n {
		t.Fatalf("%d pending orders, want %d", c, n)
	}
	seen := map[string]string{}
	after := ""
	for {
		os, next, err := d.ListOrders(ctx, OrderQuery{Page: Page{After: after, Limit: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range os {
			if prev, dup := seen[o.Target]; dup {
				t.Fatalf("target %s has orders %s and %s", o.Target, prev, o.ID)
			}
			seen[o.Target] = o.ID
		}
		if next == "" {
			break
		}
		after = next
	}
	if len(seen) != n {
		t.Fatalf("%d targets with orders, want %d", len(seen), n)
	}
	for tg, o := range seen {
		if cur := must[api.Target](t)(d.GetTarget(ctx, tg)).CurrentOrder; cur != o {
			t.Fatalf("target %s: current order %q, want %s", tg, cur, o)
		}
	}
}

// TestRequestIDReplaysTheSameRequestAndRefusesAnother: the same request
// id answers the orders already made (any state); the id on another
// request is a conflict; a derived id replays only while the orders are
// live, so the same request after the installs is a new one.
func TestRequestIDReplaysTheSameRequestAndRefusesAnother(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	ts := mustTargets(t, d, "paris", 0, 3)
	im := osImage(t, d, "debian")
	req := api.OrderRequest{Targets: []string{ts[0].ID, ts[1].ID}, Image: im.ID, RequestID: "reimage-42"}
	first := must[OrderResult](t)(d.PlaceOrders(ctx, req, OrderOptions{}))
	if first.Replayed || first.RequestID != "reimage-42" {
		t.Fatalf("first: %+v", first)
	}
	r0 := rev(t, d)
	again := must[OrderResult](t)(d.PlaceOrders(ctx, req, OrderOptions{}))
	if !again.Replayed || len(again.Orders) != 2 || again.Orders[0].ID != first.Orders[0].ID || rev(t, d) != r0 {
		t.Fatalf("retry: %+v at revision %d (was %d)", again, rev(t, d), r0)
	}
	other := req
	other.Targets = []string{ts[2].ID}
	_, err := d.PlaceOrders(ctx, other, OrderOptions{})
	wantErr(t, err, ErrConflict, "reimage-42", "different request")

	derived := api.OrderRequest{Target: ts[2].ID, Image: im.ID}
	o1 := must[OrderResult](t)(d.PlaceOrders(ctx, derived, OrderOptions{}))
	o2 := must[OrderResult](t)(d.PlaceOrders(ctx, derived, OrderOptions{}))
	if !o2.Replayed || o2.Orders[0].ID != o1.Orders[0].ID || o1.RequestID != o2.RequestID {
		t.Fatalf("derived retry: %+v then %+v", o1, o2)
	}
	must[api.Order](t)(d.Transition(ctx, o1.Orders[0].ID, api.OrderCancelled, "test"))
	o3 := must[OrderResult](t)(d.PlaceOrders(ctx, derived, OrderOptions{}))
	if o3.Replayed || o3.Orders[0].ID == o1.Orders[0].ID {
		t.Fatalf("the same request after its order ended was replayed: %+v", o3)
	}
}

// TestBatchRecordsExpire: records older than BatchRetention are deleted
// as new batches are written; the request id is then free again.
func TestBatchRecordsExpire(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := clock.NewFake(now)
	d, _ := openTest(t, func(o *Options) { o.Clock = clk })
	ts := mustTargets(t, d, "paris", 0, 3)
	im := osImage(t, d, "debian")
	must[OrderResult](t)(d.PlaceOrders(ctx, api.OrderRequest{Target: ts[0].ID, Image: im.ID, RequestID: "r1"}, OrderOptions{}))
	clk.Step(BatchRetention + time.Minute)
	must[OrderResult](t)(d.PlaceOrders(ctx, api.OrderRequest{Target: ts[1].ID, Image: im.ID}, OrderOptions{}))
	if n := countKeys(t, d, pBatch); n != 1 {
		t.Fatalf("%d batch records, want 1 (the expired one deleted)", n)
	}
	res := must[OrderResult](t)(d.PlaceOrders(ctx, api.OrderRequest{Target: ts[2].ID, Image: im.ID, RequestID: "r1"}, OrderOptions{}))
	if res.Replayed {
		t.Fatal("an expired request id was replayed")
	}
}

func countKeys(t *testing.T, d *DB, prefix string) int {
	t.Helper()
	n := 0
	err := d.db.View(func(txn *badger.Txn) error {
		return scan(txn, prefix, "", false, func([]byte, *badger.Item) (bool, error) { n++; return true, nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOrderBatchScale100k measures a 100,000-order batch (time, the batch
// record's size, the store's growth) and how many orders one Badger
// transaction holds at these options (why the batch is not one
// transaction). OSIM_MDB_SCALE=1 runs it.
func TestOrderBatchScale100k(t *testing.T) {
	if os.Getenv("OSIM_MDB_SCALE") == "" {
		t.Skip("set OSIM_MDB_SCALE=1 to write 100,000 orders")
	}
	ctx := context.Background()
	d, dir := openTest(t)
	im := osImage(t, d, "debian")
	mustTargets(t, d, "paris", 0, 100_000)
	// One transaction: write orders until Badger says it is too big.
	var targets []api.Target
	err := d.db.View(func(txn *badger.Txn) error {
		return scan(txn, pTarget, "", true, func(_ []byte, item *badger.Item) (bool, error) {
			var tg api.Target
			err := item.Value(func(b []byte) error { return json.Unmarshal(b, &tg) })
			targets = append(targets, tg)
			return true, err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	fit := 0
	d.mu.Lock()
	w := d.begin()
	b := orderBatch{Image: im.ID, Count: len(targets)}
	for _, tg := range targets {
		_, err := w.batchOrder("probe", b, batchItem{tg.ID, fmt.Sprintf("o-probe%07d", fit)})
		for i := len(w.changes) - 2; err == nil && i < len(w.changes); i++ { // the log entries commit adds
			var v []byte
			if v, err = json.Marshal(w.changes[i].c); err == nil {
				err = w.set(logKey(w.rev, uint32(i)), append([]byte(w.changes[i].site+"\n"), v...))
			}
		}
		if err != nil {
			if !errors.Is(err, badger.ErrTxnTooBig) {
				t.Fatal(err)
			}
			break
		}
		fit++
	}
	w.txn.Discard()
	d.mu.Unlock()
	t.Logf("one Badger transaction (MemTableSize 64 MiB: limit %d bytes, %d entries) holds %d orders",
		d.db.MaxBatchSize(), d.db.MaxBatchCount(), fit)

	size0 := dirSize(t, dir)
	start := time.Now()
	res := must[OrderResult](t)(d.PlaceOrders(ctx, api.OrderRequest{Selector: "rack", Image: im.ID, All: true}, OrderOptions{}))
	took := time.Since(start)
	var items, head int
	err = d.db.View(func(txn *badger.Txn) error {
		for key, n := range map[string]*int{pBatchItems: &items, pBatch: &head} {
			item, err := txn.Get(k(key, res.RequestID))
			if err != nil {
				return err
			}
			*n = int(item.ValueSize())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d orders in %v (%d transactions); batch record %d bytes + %d bytes of items; store grew %.1f MiB",
		len(res.Orders), took.Round(time.Millisecond), (len(res.Orders)+chunkSize-1)/chunkSize, head, items,
		float64(dirSize(t, dir)-size0)/(1<<20))
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		info, err := e.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
