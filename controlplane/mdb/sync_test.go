package mdb

import (
	"context"
	"encoding/json"
	"reflect"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/internal/clock"
)

func TestEveryWriteBumpsRevisionOnceAndReachesItsSite(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	tg := mustTargets(t, d, "paris", 0, 1)[0] // rev 1
	other := mustTargets(t, d, "lyon", 1, 1)[0]
	im := osImage(t, d, "debian") // rev 3
	if rev(t, d) != 3 {
		t.Fatalf("rev %d", rev(t, d))
	}
	ch, r := allChanges(t, d, "paris", 1)
	if r != 3 || len(ch) != 1 || ch[0].Kind != api.ChangeImage || ch[0].Image.ID != im.ID {
		t.Fatalf("paris after 1: %+v at %d", ch, r)
	}
	ch, _ = allChanges(t, d, "lyon", 1)
	if len(ch) != 2 || ch[0].Target.ID != other.ID || ch[1].Kind != api.ChangeImage {
		t.Fatalf("lyon after 1: %+v", ch)
	}
	// Order creation: one revision, target + order for paris only.
	o := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: im.ID}))[0]
	ch, r = allChanges(t, d, "paris", 3)
	if r != 4 || len(ch) != 2 || ch[0].Rev != 4 || ch[1].Rev != 4 {
		t.Fatalf("order creation: %+v at %d", ch, r)
	}
	if ch2, r2 := allChanges(t, d, "lyon", 3); len(ch2) != 0 || r2 != 4 {
		t.Fatalf("lyon sees paris order: %+v at %d", ch2, r2)
	}
	// Final order: delivered in its final state, target cleared.
	must[api.Order](t)(d.Transition(ctx, o.ID, api.OrderCancelled, ""))
	ch, _ = allChanges(t, d, "paris", 4)
	kinds := map[string]api.Change{}
	for _, c := range ch {
		kinds[c.Kind] = c
	}
	if len(ch) != 2 || kinds[api.ChangeOrder].Order.State != api.OrderCancelled || kinds[api.ChangeTarget].Target.CurrentOrder != "" {
		t.Fatalf("final order changes %+v", ch)
	}
	// Move the target to lyon: paris gets a deletion, lyon an upsert.
	site := "lyon"
	must[api.Target](t)(d.UpdateTarget(ctx, tg.ID, api.TargetPatch{Site: &site}))
	ch, _ = allChanges(t, d, "paris", 5)
	if len(ch) != 1 || !ch[0].Deleted || ch[0].ID != tg.ID || ch[0].Rev != 6 {
		t.Fatalf("paris after move %+v", ch)
	}
	ch, _ = allChanges(t, d, "lyon", 5)
	if len(ch) != 1 || ch[0].Deleted || ch[0].Target.Site != "lyon" {
		t.Fatalf("lyon after move %+v", ch)
	}
	// A live order moves with its target.
	o2 := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: im.ID}))[0]
	r1 := rev(t, d)
	site = "paris"
	must[api.Target](t)(d.UpdateTarget(ctx, tg.ID, api.TargetPatch{Site: &site}))
	ch, _ = allChanges(t, d, "lyon", r1)
	if len(ch) != 2 || !ch[0].Deleted || !ch[1].Deleted {
		t.Fatalf("lyon after moving a target with an order: %+v", ch)
	}
	ch, _ = allChanges(t, d, "paris", r1)
	if len(ch) != 2 || ch[0].Order == nil || ch[0].Order.ID != o2.ID || ch[0].Order.Site != "paris" || ch[1].Target == nil {
		t.Fatalf("paris after moving a target with an order: %+v", ch)
	}
	if os, _, _ := d.ListOrders(ctx, OrderQuery{Site: "paris", State: api.OrderPending}); len(os) != 1 {
		t.Fatalf("moved order not listed at paris: %+v", os)
	}
	// Heartbeat and tokens do not bump; registering does.
	bs := must[api.BootServer](t)(d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs1", Site: "paris"}, "", Token{Hash: shaOf([]byte("s"))}))
	r0 := rev(t, d)
	must[api.BootServer](t)(d.Heartbeat(ctx, bs.ID, api.Heartbeat{SyncedRevision: 3}, time.Now()))
	if err := d.CreateToken(ctx, Token{TokenInfo: api.TokenInfo{Role: api.RoleAdmin}, Hash: shaOf([]byte("t"))}); err != nil {
		t.Fatal(err)
	}
	if rev(t, d) != r0 {
		t.Fatal("heartbeat or token bumped the revision")
	}
	resp, err := d.Changes(ctx, "paris", 6, 0)
	if err != nil || resp.Revision != r0 || len(resp.Changes) != 2 { // the move back at r1+1
		t.Fatalf("changes past a registration: %+v %v", resp, err)
	}
}

func TestChangesPagesByWholeRevisions(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	mustTargets(t, d, "paris", 0, 1500) // rev 1 (1000), rev 2 (500)
	mustTargets(t, d, "paris", 2000, 3) // rev 3
	_, err := d.Changes(ctx, "paris", 0, 10)
	wantErr(t, err, ErrGone)
	if ts := must[[]api.Target](t)(d.CreateTargets(ctx, nil)); len(ts) != 0 || rev(t, d) != 3 {
		t.Fatal("creating no targets wrote something")
	}
	d2, _ := openTest(t)
	resp, err := d2.Changes(ctx, "paris", 0, 10)
	if err != nil || resp.Revision != 0 || len(resp.Changes) != 0 {
		t.Fatalf("empty store: %+v %v", resp, err)
	}
	// A write of 3 targets, then 1000 more, from rev 0 of a fresh store.
	mustTargets(t, d2, "paris", 0, 3)
	mustTargets(t, d2, "paris", 10, 1000)
	mustTargets(t, d2, "paris", 2000, 2)
	resp, err = d2.Changes(ctx, "paris", 1, 10)
	if err != nil || resp.Revision != 2 || len(resp.Changes) != 1000 {
		t.Fatalf("a revision larger than limit comes whole: rev %d, %d changes, %v", resp.Revision, len(resp.Changes), err)
	}
	resp, _ = d2.Changes(ctx, "paris", 2, 10)
	if resp.Revision != 3 || len(resp.Changes) != 2 {
		t.Fatalf("next: %d %d", resp.Revision, len(resp.Changes))
	}
	_, err = d2.Changes(ctx, "paris", 99, 10)
	wantErr(t, err, ErrGone, "ahead")
	_, err = d2.Changes(ctx, "bad site", 1, 10)
	wantErr(t, err, ErrInvalid)
}

func TestCompactLogMakesOldRevisionsGone(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	for i := range 10 {
		mustTargets(t, d, "paris", i, 1)
	}
	if err := d.CompactLog(ctx, 4); err != nil {
		t.Fatal(err)
	}
	_, err := d.Changes(ctx, "paris", 5, 100)
	wantErr(t, err, ErrGone)
	resp, err := d.Changes(ctx, "paris", 6, 100)
	if err != nil || len(resp.Changes) != 4 || resp.Revision != 10 {
		t.Fatalf("%+v %v", resp, err)
	}
	// Automatic retention.
	d2, _ := openTest(t, func(o *Options) { o.LogRetention = 3 })
	for i := range 20 {
		mustTargets(t, d2, "paris", i, 1)
	}
	if _, err := d2.Changes(ctx, "paris", 2, 100); err == nil {
		t.Fatal("automatic retention kept everything")
	}
	if _, err := d2.Changes(ctx, "paris", 17, 100); err != nil {
		t.Fatal(err)
	}
}

// applyChange applies a sync change to a view the way a boot server does.
type view struct {
	targets map[string]api.Target
	orders  map[string]api.Order
	images  map[string]api.Image
}

func (v *view) apply(c api.Change) {
	switch c.Kind {
	case api.ChangeTarget:
		if c.Deleted {
			delete(v.targets, c.ID)
		} else {
			v.targets[c.ID] = *c.Target
		}
	case api.ChangeOrder:
		if c.Deleted || c.Order.State.Final() {
			delete(v.orders, c.ID)
		} else {
			v.orders[c.ID] = *c.Order
		}
	case api.ChangeImage:
		if c.Deleted {
			delete(v.images, c.ID)
		} else {
			v.images[c.ID] = *c.Image
		}
	}
}

func sorted[T any](m map[string]T) []T {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]T, 0, len(m))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

func jsonEq(t *testing.T, what string, a, b any) {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !reflect.DeepEqual(ja, jb) {
		t.Fatalf("%s differ:\nsynced %s\nstore  %s", what, ja, jb)
	}
}

func TestSnapshotDuringWritesThenChangesConverge(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	ts := mustTargets(t, d, "paris", 0, 600)
	mustTargets(t, d, "lyon", 1000, 50)
	im := osImage(t, d, "debian")
	must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Selector: "rack=r0", Image: im.ID}))

	kf := upload(t, d, "late kernel")
	kf.Name, kf.Role = "vmlinuz", api.RoleKernel
	late := api.ImageSpec{Name: "late", Version: "1", Kind: api.KindOS, Files: []api.ImageFile{kf}}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var writes atomic.Int64
	wg.Add(1)
	go func() { // writer: moves, orders, transitions, deletions
		defer wg.Done()
		lyon, paris := "lyon", "paris"
		for i := 0; ; i++ {
			writes.Store(int64(i))
			select {
			case <-stop:
				return
			default:
			}
			tg := ts[i%len(ts)]
			switch i % 4 {
			case 0:
				d.UpdateTarget(ctx, tg.ID, api.TargetPatch{Site: &lyon})
			case 1:
				d.UpdateTarget(ctx, tg.ID, api.TargetPatch{Site: &paris})
			case 2:
				if os, err := d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: im.ID}); err == nil {
					d.Transition(ctx, os[0].ID, api.OrderStaged, "")
				}
			case 3:
				if cur, err := d.GetTarget(ctx, tg.ID); err == nil && cur.CurrentOrder != "" {
					d.Transition(ctx, cur.CurrentOrder, api.OrderCancelled, "")
				}
			}
			if i == 10 {
				d.CreateImage(ctx, late)
			}
		}
	}()
	v := view{map[string]api.Target{}, map[string]api.Order{}, map[string]api.Image{}}
	resp := must[api.SyncResponse](t)(d.Snapshot(ctx, "paris", "", 50))
	snapRev := resp.Revision
	pages := 1
	for {
		if !resp.Snapshot || resp.Revision != snapRev {
			t.Fatalf("page %d: snapshot %v revision %d, want %d", pages, resp.Snapshot, resp.Revision, snapRev)
		}
		for _, c := range resp.Changes {
			v.apply(c)
		}
		if resp.Cursor == "" {
			break
		}
		resp = must[api.SyncResponse](t)(d.Snapshot(ctx, "paris", resp.Cursor, 50))
		pages++
		for n := writes.Load(); writes.Load() < n+2; { // a write between every two pages
			runtime.Gosched()
		}
	}
	if pages < 10 {
		t.Fatalf("only %d pages", pages)
	}
	close(stop)
	wg.Wait()
	since := snapRev
	for {
		r, err := d.Changes(ctx, "paris", since, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range r.Changes {
			v.apply(c)
		}
		if r.Revision == since {
			break
		}
		since = r.Revision
	}
	if since != rev(t, d) {
		t.Fatalf("changes stopped at %d, store at %d", since, rev(t, d))
	}
	targets, orders, images, err := SiteView(ctx, d, "paris")
	if err != nil {
		t.Fatal(err)
	}
	jsonEq(t, "targets", sorted(v.targets), targets)
	jsonEq(t, "orders", sorted(v.orders), orders)
	jsonEq(t, "images", sorted(v.images), images)
	if len(images) != 2 || len(targets) == 0 {
		t.Fatalf("%d images, %d targets", len(images), len(targets))
	}
	_, err = d.Snapshot(ctx, "paris", "garbage!", 10)
	wantErr(t, err, ErrInvalid)
}

func TestWaitRevisionWakesOnCommit(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	done := make(chan uint64)
	go func() {
		r, _ := d.WaitRevision(ctx, 0)
		done <- r
	}()
	evDone := make(chan error)
	go func() { evDone <- d.WaitEvents(ctx, 0) }()
	waitWaiting(t, d, 2)
	mustTargets(t, d, "paris", 0, 1)
	if r := <-done; r != 1 {
		t.Fatalf("woke at %d", r)
	}
	must[api.Event](t)(d.AppendEvent(ctx, api.Event{Type: "note"}))
	if err := <-evDone; err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Unix(0, 0))
	c, cancel := clock.WithTimeout(ctx, clk, 20*time.Millisecond)
	defer cancel()
	revErr, evErr := make(chan error), make(chan error)
	go func() { _, err := d.WaitRevision(c, 1); revErr <- err }()
	go func() { evErr <- d.WaitEvents(c, 1) }()
	waitWaiting(t, d, 2) // both wait: neither returned without a write
	clk.Step(20 * time.Millisecond)
	if err := <-revErr; err == nil {
		t.Fatal("WaitRevision returned without a write")
	}
	if err := <-evErr; err == nil {
		t.Fatal("WaitEvents returned without an event")
	}
}

// waitWaiting returns once n callers wait in d.wait.
func waitWaiting(t *testing.T, d *DB, n int32) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); d.waiting.Load() < n; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting after 10 s, want %d", d.waiting.Load(), n)
		}
	}
}
