package mdb

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	"osim/controlplane/api"
	"osim/controlplane/lifecycle"
)

func TestCreateOrderCopiesTargetAndMovesCurrentOrder(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	tg := mustTargets(t, d, "paris", 0, 1)[0]
	im := osImage(t, d, "debian")
	bi := bootImage(t, d, "ipxe")
	r0 := rev(t, d)
	os, err := d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: im.ID, BootImage: bi.ID, Params: map[string]string{"disk": "sda"}})
	if err != nil {
		t.Fatal(err)
	}
	o := os[0]
	if !strings.HasPrefix(o.ID, "o-") || o.State != api.OrderPending || o.Attempt != 1 || len(o.Token) != 32 ||
		o.Site != "paris" || o.Arch != "efi-x64" || o.MACs[0] != mac(0) || len(o.History) != 1 || o.Revision != r0+1 {
		t.Fatalf("order %+v", o)
	}
	if got := must[api.Target](t)(d.GetTarget(ctx, tg.ID)); got.CurrentOrder != o.ID || got.Revision != r0+1 {
		t.Fatalf("target %+v", got)
	}
	_, err = d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: im.ID})
	wantErr(t, err, ErrConflict, tg.ID, "has live order", o.ID)
	if _, err := d.Transition(ctx, o.ID, api.OrderCancelled, "operator"); err != nil {
		t.Fatal(err)
	}
	if got := must[api.Target](t)(d.GetTarget(ctx, tg.ID)); got.CurrentOrder != "" {
		t.Fatalf("final order still current: %+v", got)
	}
	wantErr(t, d.DeleteTarget(ctx, "t-x"), ErrNotFound)

	bad := []struct {
		req  api.OrderRequest
		want error
		word string
	}{
		{api.OrderRequest{Image: im.ID}, ErrInvalid, "exactly one"},
		{api.OrderRequest{Target: tg.ID, Selector: "a", Image: im.ID}, ErrInvalid, "exactly one"},
		{api.OrderRequest{Target: tg.ID}, ErrInvalid, "image"},
		{api.OrderRequest{Target: tg.ID, Image: "img-nope"}, ErrNotFound, "img-nope"},
		{api.OrderRequest{Target: tg.ID, Image: bi.ID}, ErrInvalid, "want os"},
		{api.OrderRequest{Target: tg.ID, Image: im.ID, BootImage: im.ID}, ErrInvalid, "want boot"},
		{api.OrderRequest{Target: "t-nope", Image: im.ID}, ErrNotFound, "t-nope"},
		{api.OrderRequest{Selector: "a b", Image: im.ID}, ErrInvalid, "selector"},
		{api.OrderRequest{Selector: "rack=none", Image: im.ID}, ErrNotFound, "matches no target"},
		{api.OrderRequest{Target: tg.ID, Image: im.ID, Params: map[string]string{"a b": "c"}}, ErrInvalid, "params"},
		{api.OrderRequest{Targets: []string{tg.ID, tg.ID}, Image: im.ID}, ErrInvalid, "targets[1]"},
	}
	for i, c := range bad {
		_, err := d.CreateOrders(ctx, c.req)
		if err == nil {
			t.Fatalf("case %d: no error", i)
		}
		wantErr(t, err, c.want, c.word)
	}
	_, err = d.GetOrder(ctx, "o-nope")
	wantErr(t, err, ErrNotFound)
}

func TestCreateOrdersAllOrNothing(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	ts := mustTargets(t, d, "paris", 0, 5)
	im := osImage(t, d, "debian")
	first := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: ts[3].ID, Image: im.ID}))[0]
	r0 := rev(t, d)
	ids := []string{ts[0].ID, ts[1].ID, ts[2].ID, ts[3].ID, ts[4].ID}
	_, err := d.CreateOrders(ctx, api.OrderRequest{Targets: ids, Image: im.ID})
	wantErr(t, err, ErrConflict, fmt.Sprintf("targets[3] %s: has live order %s", ts[3].ID, first.ID))
	ids[3] = "t-xyz"
	_, err = d.CreateOrders(ctx, api.OrderRequest{Targets: ids, Image: im.ID})
	wantErr(t, err, ErrNotFound, "targets[3] t-xyz")
	if r := rev(t, d); r != r0 {
		t.Fatalf("failed requests moved the revision %d → %d", r0, r)
	}
	os, _, _ := d.ListOrders(ctx, OrderQuery{})
	if len(os) != 1 {
		t.Fatalf("%d orders, want 1", len(os))
	}
	ids = []string{ts[0].ID, ts[1].ID, ts[2].ID, ts[4].ID}
	got := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Targets: ids, Image: im.ID}))
	if len(got) != 4 || rev(t, d) != r0+1 {
		t.Fatalf("%d orders at revision %d", len(got), rev(t, d))
	}
}

func TestSelectorOrdersMatchLabels(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	ts := mustTargets(t, d, "paris", 0, 30)
	im := osImage(t, d, "debian")
	got := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Selector: "rack=r2", Image: im.ID}))
	if len(got) != 10 {
		t.Fatalf("%d orders, want 10", len(got))
	}
	byID := map[string]api.Target{}
	for _, tg := range ts {
		byID[tg.ID] = tg
	}
	for _, o := range got {
		if byID[o.Target].Labels["rack"] != "r2" {
			t.Fatalf("order for %s with labels %v", o.Target, byID[o.Target].Labels)
		}
	}
	_, err := d.CreateOrders(ctx, api.OrderRequest{Selector: "rack", Image: im.ID})
	wantErr(t, err, ErrConflict, "has live order")
	list, _, _ := d.ListOrders(ctx, OrderQuery{Target: got[0].Target})
	if len(list) != 1 || list[0].ID != got[0].ID {
		t.Fatalf("by target: %+v", list)
	}
	list, _, _ = d.ListOrders(ctx, OrderQuery{State: api.OrderPending, Site: "paris", Page: Page{Limit: 3}})
	if len(list) != 3 {
		t.Fatalf("filtered %d", len(list))
	}
	counts := must[map[api.OrderState]int](t)(d.CountOrders(ctx))
	if counts[api.OrderPending] != 10 {
		t.Fatalf("counts %v", counts)
	}
	_, _, err = d.ListOrders(ctx, OrderQuery{State: "bogus"})
	wantErr(t, err, ErrInvalid)
}

func TestTransitionFollowsStateMachine(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	im := osImage(t, d, "debian")
	// path reaches state s from pending.
	path := map[api.OrderState][]api.OrderState{
		api.OrderPending:    nil,
		api.OrderStaged:     {api.OrderStaged},
		api.OrderBooting:    {api.OrderStaged, api.OrderBooting},
		api.OrderInstalling: {api.OrderStaged, api.OrderBooting, api.OrderInstalling},
		api.OrderDone:       {api.OrderStaged, api.OrderBooting, api.OrderInstalling, api.OrderDone},
		api.OrderFailed:     {api.OrderFailed},
		api.OrderCancelled:  {api.OrderCancelled},
	}
	n := 0
	for _, from := range api.OrderStates {
		for _, to := range api.OrderStates {
			t.Run(fmt.Sprintf("%s-%s", from, to), func(t *testing.T) {
				tg := mustTargets(t, d, "paris", 1000+n, 1)[0]
				n++
				o := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: im.ID}))[0]
				for _, s := range path[from] {
					if _, err := d.Transition(ctx, o.ID, s, ""); err != nil {
						t.Fatal(err)
					}
				}
				r0, ev0 := rev(t, d), must[uint64](t)(d.LastEventSeq(ctx))
				got, err := d.Transition(ctx, o.ID, to, "test")
				if lifecycle.CanMove(from, to) {
					if err != nil || got.State != to || got.History[len(got.History)-1].From != from || got.Revision != r0+1 {
						t.Fatalf("%v %+v", err, got)
					}
					evs := must[[]api.Event](t)(d.ListEvents(ctx, EventQuery{After: ev0}))
					if len(evs) != 1 || evs[0].Type != api.EventOrderState || evs[0].Order != o.ID || evs[0].Origin != "" {
						t.Fatalf("events %+v", evs)
					}
					cur := must[api.Target](t)(d.GetTarget(ctx, tg.ID)).CurrentOrder
					if to.Final() != (cur == "") {
						t.Fatalf("state %s, CurrentOrder %q", to, cur)
					}
					return
				}
				wantErr(t, err, ErrTransition, string(from), string(to))
				if rev(t, d) != r0 {
					t.Fatal("refused transition bumped the revision")
				}
			})
		}
	}
	_, err := d.Transition(ctx, "o-nope", api.OrderDone, "")
	wantErr(t, err, ErrNotFound)
}

func TestRetryIssuesNewTokenAndAttempt(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	tg := mustTargets(t, d, "paris", 0, 1)[0]
	im := osImage(t, d, "debian")
	o := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: im.ID}))[0]
	_, err := d.Retry(ctx, o.ID)
	wantErr(t, err, ErrTransition, "pending")
	must[api.Order](t)(d.Transition(ctx, o.ID, api.OrderFailed, "disk on fire"))
	other := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: im.ID}))[0]
	_, err = d.Retry(ctx, o.ID)
	wantErr(t, err, ErrConflict, other.ID)
	must[api.Order](t)(d.Transition(ctx, other.ID, api.OrderCancelled, ""))
	r := must[api.Order](t)(d.Retry(ctx, o.ID))
	if r.State != api.OrderPending || r.Attempt != 2 || r.Token == o.Token || len(r.Token) != 32 || r.Message != "" {
		t.Fatalf("retried %+v", r)
	}
	if got := must[api.Target](t)(d.GetTarget(ctx, tg.ID)); got.CurrentOrder != o.ID {
		t.Fatalf("current %q", got.CurrentOrder)
	}
	_, err = d.Retry(ctx, "o-nope")
	wantErr(t, err, ErrNotFound)
}

func TestDeleteTargetRefusesWhileOrderLive(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	tg := mustTargets(t, d, "paris", 0, 1)[0]
	im := osImage(t, d, "debian")
	o := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: im.ID}))[0]
	wantErr(t, d.DeleteTarget(ctx, tg.ID), ErrConflict, o.ID)
	must[api.Order](t)(d.Transition(ctx, o.ID, api.OrderCancelled, ""))
	if err := d.DeleteTarget(ctx, tg.ID); err != nil {
		t.Fatal(err)
	}
}

func TestCreateOrdersLargeRequestChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	ctx := context.Background()
	d, _ := openTest(t)
	mustTargets(t, d, "paris", 0, 2100)
	im := osImage(t, d, "debian")
	r0 := rev(t, d)
	os := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Selector: "rack", Image: im.ID}))
	if len(os) != 2100 || rev(t, d) != r0+3 {
		t.Fatalf("%d orders, revision %d → %d", len(os), r0, rev(t, d))
	}
}

// TestCountOrdersKeptByCommitsMatchesAScan drives orders through creation,
// event-driven and API transitions, a refused transition and a retry, and
// checks after each step and after a reopen that the counts CountOrders keeps
// equal a full scan.
func TestCountOrdersKeptByCommitsMatchesAScan(t *testing.T) {
	ctx := context.Background()
	d, dir := openTest(t)
	ts := mustTargets(t, d, "paris", 0, 6)
	im := osImage(t, d, "debian")
	var ids []string
	for _, tg := range ts {
		ids = append(ids, tg.ID)
	}
	made := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Targets: ids, Image: im.ID}))
	check := func(step string, d *DB, want map[api.OrderState]int) {
		t.Helper()
		kept := must[map[api.OrderState]int](t)(d.CountOrders(ctx))
		scanned, err := d.scanOrderCounts()
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range api.OrderStates {
			if kept[st] != scanned[st] || kept[st] != want[st] {
				t.Fatalf("%s: kept %v, scan %v, want %v", step, kept, scanned, want)
			}
		}
	}
	check("created", d, map[api.OrderState]int{api.OrderPending: 6})
	ev := []api.Event{
		{OriginSeq: 1, Type: api.EventOrderStaged, Order: made[0].ID},
		{OriginSeq: 2, Type: api.EventOrderStaged, Order: made[1].ID},
		{OriginSeq: 3, Type: api.EventInstallStatus, Order: made[1].ID, Phase: "installing"},
		{OriginSeq: 4, Type: api.EventInstallStatus, Order: made[1].ID, Phase: "done"},
		{OriginSeq: 5, Type: api.EventInstallStatus, Order: made[2].ID, Phase: "done"}, // refused: pending
	}
	must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", ev))
	check("events", d, map[api.OrderState]int{api.OrderPending: 4, api.OrderStaged: 1, api.OrderDone: 1})
	must[api.Order](t)(d.Transition(ctx, made[3].ID, api.OrderCancelled, "operator"))
	if _, err := d.Transition(ctx, made[3].ID, api.OrderStaged, ""); err == nil {
		t.Fatal("cancelled → staged accepted")
	}
	check("cancel", d, map[api.OrderState]int{api.OrderPending: 3, api.OrderStaged: 1, api.OrderDone: 1, api.OrderCancelled: 1})
	must[api.Order](t)(d.Retry(ctx, made[3].ID))
	want := map[api.OrderState]int{api.OrderPending: 4, api.OrderStaged: 1, api.OrderDone: 1}
	check("retry", d, want)
	d.Close()
	d2, err := Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	check("reopened", d2, want)
}

// TestOrdersEndedCountsEveryEntryIntoAFinalState checks the counters
// behind osim_manager_orders_ended_total: an order that fails, is retried
// and fails again counts twice, though CountOrders then holds it once;
// a refused transition counts nothing; a reopened store starts at zero.
func TestOrdersEndedCountsEveryEntryIntoAFinalState(t *testing.T) {
	ctx := context.Background()
	d, dir := openTest(t)
	ts := mustTargets(t, d, "paris", 0, 3)
	im := osImage(t, d, "debian")
	made := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Targets: []string{ts[0].ID, ts[1].ID, ts[2].ID}, Image: im.ID}))
	check := func(step string, d *DB, done, failed, cancelled uint64) {
		t.Helper()
		want := map[api.OrderState]uint64{api.OrderDone: done, api.OrderFailed: failed, api.OrderCancelled: cancelled}
		if got := d.OrdersEnded(); !maps.Equal(got, want) {
			t.Fatalf("%s: OrdersEnded %v, want %v", step, got, want)
		}
	}
	check("created", d, 0, 0, 0)
	ev := []api.Event{
		{OriginSeq: 1, Type: api.EventOrderStaged, Order: made[0].ID},
		{OriginSeq: 2, Type: api.EventInstallStatus, Order: made[0].ID, Phase: "installing"},
		{OriginSeq: 3, Type: api.EventInstallStatus, Order: made[0].ID, Phase: "done"},
	}
	must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", ev))
	check("done by events", d, 1, 0, 0)
	must[api.Order](t)(d.Transition(ctx, made[1].ID, api.OrderFailed, "disk"))
	must[api.Order](t)(d.Retry(ctx, made[1].ID))
	must[api.Order](t)(d.Transition(ctx, made[1].ID, api.OrderFailed, "disk again"))
	must[api.Order](t)(d.Transition(ctx, made[2].ID, api.OrderCancelled, "operator"))
	if _, err := d.Transition(ctx, made[2].ID, api.OrderFailed, ""); err == nil {
		t.Fatal("cancelled → failed accepted")
	}
	check("failed twice, cancelled once", d, 1, 2, 1)
	if n := must[map[api.OrderState]int](t)(d.CountOrders(ctx)); n[api.OrderFailed] != 1 {
		t.Fatalf("CountOrders %v: want 1 failed", n)
	}
	d.Close()
	d2, err := Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	check("reopened", d2, 0, 0, 0)
}
