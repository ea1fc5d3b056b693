package manager

import (
	"slices"
	"strings"
	"testing"

	"osim/controlplane/api"
)

// The audit's attack: site s1's boot server token uploads events naming
// site s2's order (staged, done) and target (inventory). The whole batch
// is refused, nothing of s2 changes, and the refusal is counted.
func TestBootServerCannotReportOnAnotherSitesOrdersOrTargets(t *testing.T) {
	e := newEnv(t) // e.bs is in site s1
	ctx := t.Context()
	mine, img := e.seed("s1", 1, nil, 1)
	theirs, _ := e.seed("s2", 1, nil, 2)
	op := e.client(api.RoleOperator)
	myOrder := must[[]api.Order](t)(op.CreateOrders(ctx, api.OrderRequest{Target: mine[0].ID, Image: img.ID}))[0]
	theirOrder := must[[]api.Order](t)(op.CreateOrders(ctx, api.OrderRequest{Target: theirs[0].ID, Image: img.ID}))[0]
	bs := e.client(api.RoleBootServer)

	cases := []struct {
		name  string
		batch []api.Event
		names string
	}{
		{"order", []api.Event{
			{OriginSeq: 1, Type: api.EventOrderStaged, Order: myOrder.ID},
			{OriginSeq: 2, Type: api.EventOrderStaged, Order: theirOrder.ID},
			{OriginSeq: 3, Type: api.EventInstallStatus, Order: theirOrder.ID, Phase: "done"},
		}, "events[1] (order.staged, origin_seq 2): order " + theirOrder.ID},
		{"target by MAC", []api.Event{
			{OriginSeq: 1, Type: api.EventInventory, MAC: theirs[0].MACs[0], Data: map[string]string{"cpu": "evil"}},
		}, "events[0] (inventory, origin_seq 1): target " + theirs[0].ID},
		{"target by id", []api.Event{
			{OriginSeq: 1, Type: api.EventInventory, Target: theirs[0].ID, Data: map[string]string{"cpu": "evil"}},
		}, "target " + theirs[0].ID},
		{"own order, other target", []api.Event{
			{OriginSeq: 1, Type: api.EventInventory, Order: myOrder.ID, Target: theirs[0].ID, Data: map[string]string{"cpu": "evil"}},
		}, "target " + theirs[0].ID},
	}
	for i, c := range cases {
		_, err := bs.UploadEvents(ctx, api.EventBatch{Events: c.batch})
		mustStatus(t, err, 403)
		if ae, _ := err.(*api.Error); ae == nil || !strings.Contains(ae.Message, c.names) || !strings.Contains(ae.Message, `site "s2"`) {
			t.Fatalf("%s: error %v does not name the offending event %q and its site", c.name, err, c.names)
		}
		var want []uint64
		for _, ev := range c.batch {
			if ev.Type != api.EventOrderStaged || ev.Order != myOrder.ID {
				want = append(want, ev.OriginSeq)
			}
		}
		if ae, _ := err.(*api.Error); ae.Reason != api.ErrReasonForeignSite || !slices.Equal(ae.Refused, want) {
			t.Fatalf("%s: reason %q refused %v, want %q %v (every foreign event, so the boot server drops just those)",
				c.name, ae.Reason, ae.Refused, api.ErrReasonForeignSite, want)
		}
		if got := testCounter(t, e, "osim_manager_events_refused_total", map[string]string{"reason": "foreign_site"}); got != float64(i+1) {
			t.Fatalf("%s: events_refused_total %v, want %d", c.name, got, i+1)
		}
	}
	// Nothing of the refused batches was stored: not even the own order's
	// event that came first, and origin seqs 1-3 are still free.
	if o := must[api.Order](t)(op.GetOrder(ctx, myOrder.ID)); o.State != api.OrderPending {
		t.Fatalf("own order moved by a refused batch: %s", o.State)
	}
	if o := must[api.Order](t)(op.GetOrder(ctx, theirOrder.ID)); o.State != api.OrderPending {
		t.Fatalf("other site's order moved: %s", o.State)
	}
	if tg := must[api.Target](t)(op.GetTarget(ctx, theirs[0].ID)); len(tg.Facts) != 0 {
		t.Fatalf("other site's target got facts: %v", tg.Facts)
	}
	ack := must[api.EventAck](t)(bs.UploadEvents(ctx, api.EventBatch{Events: []api.Event{
		{OriginSeq: 1, Type: api.EventOrderStaged, Order: myOrder.ID},
		{OriginSeq: 2, Type: api.EventInventory, MAC: mine[0].MACs[0], Data: map[string]string{"cpu": "x86"}},
		// An unknown MAC's DHCP is the boot server's own business.
		{OriginSeq: 3, Type: api.EventDHCPSeen, MAC: theirs[0].MACs[0]},
	}}))
	if ack.Accepted != 3 {
		t.Fatalf("own site's batch: %+v", ack)
	}
	if o := must[api.Order](t)(op.GetOrder(ctx, myOrder.ID)); o.State != api.OrderStaged {
		t.Fatalf("own order: %s", o.State)
	}
}
