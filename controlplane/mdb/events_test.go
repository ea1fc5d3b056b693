package mdb

import (
	"context"
	"testing"

	"osim/controlplane/api"
)

func TestIngestEventsDropsDuplicates(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	batch := []api.Event{
		{OriginSeq: 1, Type: api.EventDHCPSeen, MAC: mac(1)},
		{OriginSeq: 2, Type: api.EventDHCPSeen, MAC: mac(2)},
		{OriginSeq: 3, Type: api.EventDHCPSeen, MAC: mac(3)},
	}
	ack := must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", batch))
	if ack != (api.EventAck{Accepted: 3, LastSeq: 3}) {
		t.Fatalf("first %+v", ack)
	}
	ack = must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", batch))
	if ack != (api.EventAck{Duplicates: 3, LastSeq: 3}) {
		t.Fatalf("again %+v", ack)
	}
	ack = must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", append(batch[1:], api.Event{OriginSeq: 4, Type: api.EventDHCPSeen})))
	if ack != (api.EventAck{Accepted: 1, Duplicates: 2, LastSeq: 4}) {
		t.Fatalf("overlap %+v", ack)
	}
	// Another origin has its own sequence.
	ack = must[api.EventAck](t)(d.IngestEvents(ctx, "bs-2", "paris", batch[:1]))
	if ack.Accepted != 1 {
		t.Fatalf("bs-2 %+v", ack)
	}
	evs := must[[]api.Event](t)(d.ListEvents(ctx, EventQuery{}))
	if len(evs) != 5 {
		t.Fatalf("%d events stored", len(evs))
	}
	for i, e := range evs {
		if e.Seq != uint64(i+1) || e.Time.IsZero() {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	if evs[3].Origin != "bs-1" || evs[3].OriginSeq != 4 || evs[4].Origin != "bs-2" {
		t.Fatalf("origins %+v", evs)
	}
	if rev(t, d) != 0 {
		t.Fatal("events that change no object bumped the revision")
	}
	if n := must[uint64](t)(d.LastEventSeq(ctx)); n != 5 {
		t.Fatalf("last seq %d", n)
	}
	evs = must[[]api.Event](t)(d.ListEvents(ctx, EventQuery{After: 2, Limit: 2}))
	if len(evs) != 2 || evs[0].Seq != 3 {
		t.Fatalf("paged %+v", evs)
	}
	_, err := d.IngestEvents(ctx, "", "paris", batch)
	wantErr(t, err, ErrInvalid, "origin")
	_, err = d.IngestEvents(ctx, "bs-1", "paris", []api.Event{{OriginSeq: 9}})
	wantErr(t, err, ErrInvalid, "type")
	_, err = d.IngestEvents(ctx, "bs-1", "paris", []api.Event{{Type: "x"}})
	wantErr(t, err, ErrInvalid, "origin_seq")
	_, err = d.AppendEvent(ctx, api.Event{})
	wantErr(t, err, ErrInvalid)
	e := must[api.Event](t)(d.AppendEvent(ctx, api.Event{Type: "note", Origin: "spoof", OriginSeq: 7}))
	if e.Seq != 6 || e.Origin != "" {
		t.Fatalf("appended %+v", e)
	}
}

func TestIngestEventsMoveOrders(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	ts := mustTargets(t, d, "paris", 0, 4)
	im := osImage(t, d, "debian")
	ids := []string{ts[0].ID, ts[1].ID, ts[2].ID, ts[3].ID}
	os := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Targets: ids, Image: im.ID}))
	seq := uint64(0)
	send := func(es ...api.Event) {
		t.Helper()
		for i := range es {
			seq++
			es[i].OriginSeq = seq
		}
		if _, err := d.IngestEvents(ctx, "bs-1", "paris", es); err != nil {
			t.Fatal(err)
		}
	}
	state := func(i int) api.Order { return must[api.Order](t)(d.GetOrder(ctx, os[i].ID)) }

	// Order 0: the whole path, one event at a time.
	send(api.Event{Type: api.EventOrderStaged, Order: os[0].ID})
	if s := state(0); s.State != api.OrderStaged || s.History[1].Event == 0 {
		t.Fatalf("staged: %+v", s)
	}
	r0 := rev(t, d)
	send(api.Event{Type: api.EventFileServed, Order: os[0].ID})
	if state(0).State != api.OrderBooting || rev(t, d) != r0+1 {
		t.Fatal("file.served did not boot the order in one revision")
	}
	send(api.Event{Type: api.EventInstallStatus, Order: os[0].ID, Phase: "installing", Progress: 10, Message: "partitioning"})
	s := state(0)
	if s.State != api.OrderInstalling || s.Progress != 10 || s.Message != "partitioning" {
		t.Fatalf("installing %+v", s)
	}
	send(api.Event{Type: api.EventInstallStatus, Order: os[0].ID, Phase: "installing", Progress: 50})
	if s := state(0); s.Progress != 50 || s.State != api.OrderInstalling {
		t.Fatalf("progress %+v", s)
	}
	send(api.Event{Type: api.EventInstallStatus, Order: os[0].ID, Phase: "done"})
	if s := state(0); s.State != api.OrderDone {
		t.Fatalf("done %+v", s)
	}
	if tg := must[api.Target](t)(d.GetTarget(ctx, ts[0].ID)); tg.CurrentOrder != "" {
		t.Fatal("done order still current")
	}

	// Order 1: the installer reports before the booting event: two steps.
	send(api.Event{Type: api.EventOrderStaged, Order: os[1].ID},
		api.Event{Type: api.EventInstallStatus, Order: os[1].ID, Phase: "installing"})
	s = state(1)
	if s.State != api.OrderInstalling || len(s.History) != 4 || s.History[2].To != api.OrderBooting {
		t.Fatalf("staged→installing via booting: %+v", s.History)
	}
	// A late booting event is refused: stored, changes nothing.
	r0 = rev(t, d)
	send(api.Event{Type: api.EventFileServed, Order: os[1].ID})
	if state(1).State != api.OrderInstalling || rev(t, d) != r0 {
		t.Fatal("refused transition changed something")
	}
	// Order 2: pending order sees "done": refused; then failed.
	send(api.Event{Type: api.EventInstallStatus, Order: os[2].ID, Phase: "done"})
	if state(2).State != api.OrderPending {
		t.Fatal("pending order went done")
	}
	send(api.Event{Type: api.EventInstallStatus, Order: os[2].ID, Phase: "failed", Message: "no disk"})
	if s := state(2); s.State != api.OrderFailed || s.Message != "no disk" {
		t.Fatalf("failed %+v", s)
	}
	// Order 3: booting then done goes via installing.
	send(api.Event{Type: api.EventOrderStaged, Order: os[3].ID}, api.Event{Type: api.EventFileServed, Order: os[3].ID},
		api.Event{Type: api.EventInstallStatus, Order: os[3].ID, Phase: "done"})
	if s := state(3); s.State != api.OrderDone || len(s.History) != 5 {
		t.Fatalf("booting→done: %+v", s.History)
	}
	// Inventory merges facts, by target or by MAC.
	send(api.Event{Type: api.EventInventory, Target: ts[0].ID, Data: map[string]string{"cpu": "4"}},
		api.Event{Type: api.EventInventory, MAC: mac(1), Data: map[string]string{"mem": "8G"}})
	if tg := must[api.Target](t)(d.GetTarget(ctx, ts[0].ID)); tg.Facts["cpu"] != "4" {
		t.Fatalf("facts %v", tg.Facts)
	}
	if tg := must[api.Target](t)(d.GetTarget(ctx, ts[1].ID)); tg.Facts["mem"] != "8G" {
		t.Fatalf("facts by MAC %v", tg.Facts)
	}
	// Unknown orders: stored, nothing else.
	send(api.Event{Type: api.EventFileServed, Order: "o-nope"})
	// Every transition left an order.state event.
	st := must[[]api.Event](t)(d.ListEvents(ctx, EventQuery{Order: os[3].ID, Type: api.EventOrderState}))
	if len(st) != 4 {
		t.Fatalf("%d order.state events for order 3", len(st))
	}
	evs := must[[]api.Event](t)(d.ListEvents(ctx, EventQuery{Target: ts[1].ID, Limit: 1000}))
	if len(evs) == 0 {
		t.Fatal("no events by target")
	}
}
