package manager

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
)

// seed makes n targets in site with labels, and an OS image.
func (e *env) seed(site string, n int, labels map[string]string, macBase int) ([]api.Target, api.Image) {
	e.t.Helper()
	ctx := e.t.Context()
	op := e.client(api.RoleOperator)
	var ts []api.Target
	for i := range n {
		tg, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("%s-%d-n%d", site, macBase, i),
			MACs: []string{fmt.Sprintf("52:54:00:%02x:%02x:%02x", macBase, i/256, i%256)}, Arch: "efi-x64", Site: site, Labels: labels})
		if err != nil {
			e.t.Fatal(err)
		}
		ts = append(ts, tg)
	}
	imgs, err := op.ListImages(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(imgs) > 0 {
		return ts, imgs[0]
	}
	k := e.uploadImageFile("vmlinuz", api.RoleKernel, testData(1000))
	img, err := op.CreateImage(ctx, api.ImageSpec{Name: "debian", Version: "12", Kind: api.KindOS, Arch: "efi-x64", Files: []api.ImageFile{k}})
	if err != nil {
		e.t.Fatal(err)
	}
	return ts, img
}

func TestMassOrderBySelector(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ts, img := e.seed("s1", 25, map[string]string{"rack": "r7"}, 1)
	e.seed("s1", 5, map[string]string{"rack": "r8"}, 2)
	op := e.client(api.RoleOperator)
	orders, err := op.CreateOrders(ctx, api.OrderRequest{Selector: "rack=r7", Image: img.ID, Params: map[string]string{"disk": "sda"}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(orders) != len(ts) {
		t.Fatalf("%d orders, want %d", len(orders), len(ts))
	}
	for _, o := range orders {
		if o.Token != "" || o.State != api.OrderPending || o.Attempt != 1 {
			t.Fatalf("order %+v (token must be hidden)", o)
		}
	}
	l, err := e.client(api.RoleViewer).ListOrders(ctx, api.OrderPending, "", "s1", "", 1000)
	if err != nil || len(l.Orders) != 25 {
		t.Fatalf("list pending: %d %v", len(l.Orders), err)
	}
	for _, o := range l.Orders {
		if o.Token != "" {
			t.Fatal("list shows a token")
		}
	}
	// All or nothing: a second order for the same targets conflicts.
	_, err = op.CreateOrders(ctx, api.OrderRequest{Selector: "rack", Image: img.ID})
	mustStatus(t, err, 409)
	l, _ = op.ListOrders(ctx, "", "", "", "", 1000)
	if len(l.Orders) != 25 {
		t.Fatalf("a refused request wrote orders: %d", len(l.Orders))
	}
	for _, c := range []struct{ body, msg string }{
		{`{"image":"` + img.ID + `"}`, "exactly one of target, targets, selector"},
		{`{"target":"x","selector":"rack","image":"` + img.ID + `"}`, "exactly one"},
		{`{"selector":"a=b=c=","image":"` + img.ID + `"}`, "selector"},
		{`{"selector":"rack=r8"}`, "image"},
	} {
		wantError(t, e.as(api.RoleOperator, "POST", "/api/v1/orders", c.body), 400, c.msg)
	}
	wantError(t, e.as(api.RoleViewer, "GET", "/api/v1/orders?state=sleeping", ""), 400, "state")
	_, err = op.CreateOrders(ctx, api.OrderRequest{Target: "no-such-target", Image: img.ID})
	if !api.IsStatus(err, 404) && !api.IsStatus(err, 400) {
		t.Fatalf("unknown target: %v", err)
	}
}

func TestCancelRetryAndForbiddenTransitions(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ts, img := e.seed("s1", 1, nil, 1)
	op := e.client(api.RoleOperator)
	orders, err := op.CreateOrders(ctx, api.OrderRequest{Target: ts[0].ID, Image: img.ID})
	if err != nil {
		t.Fatal(err)
	}
	id := orders[0].ID
	_, err = op.RetryOrder(ctx, id)
	mustStatus(t, err, 409) // pending cannot be retried
	o, err := op.CancelOrder(ctx, id)
	if err != nil || o.State != api.OrderCancelled || o.Token != "" {
		t.Fatalf("cancel: %+v %v", o, err)
	}
	if last := o.History[len(o.History)-1]; !strings.Contains(last.Reason, "test-operator") {
		t.Fatalf("cancel reason %q does not name the caller", last.Reason)
	}
	_, err = op.CancelOrder(ctx, id)
	mustStatus(t, err, 409) // already final
	o, err = op.RetryOrder(ctx, id)
	if err != nil || o.State != api.OrderPending || o.Attempt != 2 || o.Token != "" {
		t.Fatalf("retry: %+v %v", o, err)
	}
	got, err := e.client(api.RoleViewer).GetOrder(ctx, id)
	if err != nil || got.Attempt != 2 || got.Token != "" {
		t.Fatalf("get: %+v %v", got, err)
	}
	_, err = op.CancelOrder(ctx, "no-such-order")
	mustStatus(t, err, 404)
	tg, _ := op.GetTarget(ctx, ts[0].ID)
	if tg.CurrentOrder != id {
		t.Fatalf("target's current order %q, want %q", tg.CurrentOrder, id)
	}
	mustStatus(t, op.DeleteTarget(ctx, ts[0].ID), 409) // live order
	mustStatus(t, op.DeleteImage(ctx, img.ID), 409)    // in use
}

func TestEventIngestDedupesAndMovesOrders(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ts, img := e.seed("s1", 1, nil, 1)
	orders, err := e.client(api.RoleOperator).CreateOrders(ctx, api.OrderRequest{Target: ts[0].ID, Image: img.ID})
	if err != nil {
		t.Fatal(err)
	}
	oid := orders[0].ID
	now := e.clock.Now()
	batch := api.EventBatch{Events: []api.Event{
		{OriginSeq: 1, Time: now, Type: api.EventOrderStaged, Order: oid, Target: ts[0].ID},
		{OriginSeq: 2, Time: now, Type: api.EventFileServed, Order: oid, Target: ts[0].ID, MAC: ts[0].MACs[0], Data: map[string]string{"file": "boot.ipxe"}},
	}}
	bs := e.client(api.RoleBootServer)
	ack, err := bs.UploadEvents(ctx, batch)
	if err != nil || ack.Accepted != 2 || ack.Duplicates != 0 || ack.LastSeq != 2 {
		t.Fatalf("first upload: %+v %v", ack, err)
	}
	ack, err = bs.UploadEvents(ctx, batch)
	if err != nil || ack.Accepted != 0 || ack.Duplicates != 2 || ack.LastSeq != 2 {
		t.Fatalf("second upload: %+v %v", ack, err)
	}
	o, err := e.client(api.RoleViewer).GetOrder(ctx, oid)
	if err != nil || o.State != api.OrderBooting {
		t.Fatalf("order after staged+served: %+v %v", o, err)
	}
	l, err := e.client(api.RoleViewer).ListEvents(ctx, 0, api.EventFilter{Order: oid, Type: api.EventFileServed})
	if err != nil || len(l.Events) != 1 || l.Events[0].Origin != e.bs.ID || l.Last != l.Events[0].Seq {
		t.Fatalf("events of the order: %+v %v", l, err)
	}
	if got := testCounter(t, e, "osim_manager_events_ingested_total", nil); got != 2 {
		t.Fatalf("events_ingested_total %v, want 2", got)
	}
	if got := testCounter(t, e, "osim_manager_events_duplicate_total", nil); got != 2 {
		t.Fatalf("events_duplicate_total %v, want 2", got)
	}
	// Too many events in one batch.
	var sb strings.Builder
	sb.WriteString(`{"events":[`)
	for i := range MaxEventBatch + 1 {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"origin_seq":%d,"type":"dhcp.seen"}`, i+10)
	}
	sb.WriteString(`]}`)
	wantError(t, e.as(api.RoleBootServer, "POST", "/api/v1/events", sb.String()), 413, "limit")
	wantError(t, e.as(api.RoleBootServer, "POST", "/api/v1/events", `{"evnts":[]}`), 400, `unknown field "evnts"`)
}

func TestEventsLongPollReturnsWhenAnEventArrives(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	viewer := e.client(api.RoleViewer)
	l, err := viewer.ListEvents(ctx, 0, api.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	last := l.Last
	type result struct {
		l   api.EventList
		err error
		d   time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		l, err := viewer.ListEvents(ctx, last, api.EventFilter{Type: api.EventDHCPSeen, Wait: 30 * time.Second})
		done <- result{l, err, time.Since(start)}
	}()
	e.waitPolling(1)
	// An event of another type does not end the wait.
	if _, err := e.client(api.RoleBootServer).UploadEvents(ctx, api.EventBatch{Events: []api.Event{{OriginSeq: 1, Type: api.EventFileServed}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("long-poll ended on an event it filters out: %+v %v", r.l, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := e.client(api.RoleBootServer).UploadEvents(ctx, api.EventBatch{Events: []api.Event{{OriginSeq: 2, Type: api.EventDHCPSeen, MAC: "52:54:00:00:00:01"}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || len(r.l.Events) != 1 || r.l.Events[0].Type != api.EventDHCPSeen || r.d > 10*time.Second {
			t.Fatalf("long-poll: %+v %v after %v", r.l, r.err, r.d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll did not return after the event")
	}
	// Nothing new: the wait ends empty with Last = after, and not before
	// its time on the clock.
	go func() {
		start := e.clock.Now()
		l, err := viewer.ListEvents(ctx, last+100, api.EventFilter{Wait: 300 * time.Millisecond})
		done <- result{l, err, e.clock.Now().Sub(start)}
	}()
	e.waitPolling(1)
	e.clock.Step(299 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("empty wait ended early: %+v %v after %v", r.l, r.err, r.d)
	default:
		if n := e.clock.Pending(); n != 1 {
			t.Fatalf("%d timers pending 1 ms before the wait ends, want its own", n)
		}
	}
	e.clock.Step(time.Millisecond)
	r := <-done
	if r.err != nil || len(r.l.Events) != 0 || r.l.Last != last+100 || r.d < 250*time.Millisecond {
		t.Fatalf("empty wait: %+v %v after %v", r.l, r.err, r.d)
	}
	wantError(t, e.as(api.RoleViewer, "GET", "/api/v1/events?wait=forever", ""), 400, "wait")
	wantError(t, e.as(api.RoleViewer, "GET", "/api/v1/events?after=-3", ""), 400, "after")
}
