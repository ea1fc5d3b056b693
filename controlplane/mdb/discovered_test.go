package mdb

import (
	"context"
	"testing"
	"time"

	"osim/controlplane/api"
)

func discoveredEvent(seq uint64, m, arch string, facts map[string]string) api.Event {
	data := map[string]string{api.DataDHCPArch: arch}
	for k, v := range facts {
		data[k] = v
	}
	return api.Event{OriginSeq: seq, Type: api.EventTargetDiscovered, MAC: m, Data: data}
}

func TestDiscoveredMachineBecomesADiscoveredTargetOfTheBootServersSite(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	m := "52:54:00:AB:CD:01"
	must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", []api.Event{discoveredEvent(1, m, "efi-x64", map[string]string{"mem": "2G"})}))
	tg := must[api.Target](t)(d.TargetByMAC(ctx, m))
	if tg.State != api.TargetDiscovered || tg.Site != "paris" || tg.Arch != "efi-x64" || tg.Hostname != "discovered-525400abcd01" ||
		tg.Facts["mem"] != "2G" || len(tg.MACs) != 1 || tg.MACs[0] != "52:54:00:ab:cd:01" {
		t.Fatalf("discovered target %+v", tg)
	}
	// A second report updates the facts: still one target, and a report
	// whose boot server did not see the arch keeps the one known.
	must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", []api.Event{discoveredEvent(2, m, "", map[string]string{"mem": "4G", "cpus": "2"})}))
	ts, _ := must2(t)(d.ListTargets(ctx, TargetQuery{State: api.TargetDiscovered}))
	if len(ts) != 1 || ts[0].ID != tg.ID || ts[0].Facts["mem"] != "4G" || ts[0].Facts["cpus"] != "2" || ts[0].Arch != "efi-x64" {
		t.Fatalf("after a second report: %+v", ts)
	}
	if n := d.TargetsDiscovered(); n != 1 {
		t.Errorf("TargetsDiscovered %d, want 1 (a second report is no new target)", n)
	}
	evs := must[[]api.Event](t)(d.ListEvents(ctx, EventQuery{}))
	if len(evs) != 2 || evs[0].Target != tg.ID || evs[0].Type != api.EventTargetDiscovered {
		t.Errorf("events kept: %+v", evs)
	}
	// Normal targets are not in the discovered listing, and it is.
	mustTargets(t, d, "paris", 1, 2)
	normal, _ := must2(t)(d.ListTargets(ctx, TargetQuery{StateSet: true}))
	all, _ := must2(t)(d.ListTargets(ctx, TargetQuery{}))
	if len(normal) != 2 || len(all) != 3 {
		t.Errorf("normal %d, all %d; want 2 and 3", len(normal), len(all))
	}
	_, _, err := d.ListTargets(ctx, TargetQuery{State: "weird"})
	wantErr(t, err, ErrInvalid, "state")
}

func must2(t *testing.T) func([]api.Target, string, error) ([]api.Target, string) {
	return func(ts []api.Target, next string, err error) ([]api.Target, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return ts, next
	}
}

func TestDiscoveryOfAKnownTargetChangesNothing(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	tg := mustTargets(t, d, "paris", 1, 1)[0]
	must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", []api.Event{discoveredEvent(1, tg.MACs[0], "efi-arm64", map[string]string{"x": "y"})}))
	// Another site's boot server reporting the MAC changes nothing either,
	// and its event does not name the target.
	must[api.EventAck](t)(d.IngestEvents(ctx, "bs-2", "rome", []api.Event{discoveredEvent(1, tg.MACs[0], "efi-arm64", map[string]string{"x": "y"})}))
	got := must[api.Target](t)(d.GetTarget(ctx, tg.ID))
	if got.State != "" || got.Arch != tg.Arch || got.Facts["x"] != "" || got.Revision != tg.Revision {
		t.Fatalf("a known target changed by a discovery report: %+v", got)
	}
	evs := must[[]api.Event](t)(d.ListEvents(ctx, EventQuery{}))
	if len(evs) != 2 || evs[0].Target != tg.ID || evs[1].Target != "" {
		t.Errorf("events %+v: want the own site's naming the target, the other's not", evs)
	}
}

func TestDiscoveredTargetGetsNoOrdersUntilAccepted(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	img := osImage(t, d, "debian")
	m := mac(77)
	must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", []api.Event{discoveredEvent(1, m, "bios", map[string]string{"a": "b"})}))
	tg := must[api.Target](t)(d.TargetByMAC(ctx, m))
	_, err := d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID})
	wantErr(t, err, ErrConflict, "accept")
	wantErr(t, err, ErrDiscovered)

	mustTargets(t, d, "paris", 1, 1) // host1
	_, err = d.AcceptTarget(ctx, tg.ID, api.AcceptRequest{Hostname: "host1"})
	wantErr(t, err, ErrConflict, "host1")
	_, err = d.AcceptTarget(ctx, tg.ID, api.AcceptRequest{Hostname: "bad name"})
	wantErr(t, err, ErrInvalid, "hostname")
	acc := must[api.Target](t)(d.AcceptTarget(ctx, tg.ID, api.AcceptRequest{Hostname: "web7", Labels: map[string]string{"rack": "r1"}}))
	if acc.State != "" || acc.Hostname != "web7" || acc.Labels["rack"] != "r1" || acc.Facts["a"] != "b" {
		t.Fatalf("accepted %+v", acc)
	}
	_, err = d.AcceptTarget(ctx, tg.ID, api.AcceptRequest{Hostname: "web8"})
	wantErr(t, err, ErrConflict, "not a discovered target")
	// The discovered name is free again, the new one taken.
	if err := checkHostnameFree(d, "paris", api.DiscoveredHostname(m)); err != nil {
		t.Error(err)
	}
	if _, err := d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID}); err != nil {
		t.Fatalf("order for the accepted target: %v", err)
	}
}

func checkHostnameFree(d *DB, site, name string) error {
	_, err := d.CreateTarget(context.Background(), api.TargetSpec{Hostname: name, MACs: []string{mac(999)}, Site: site})
	return err
}

func TestBootLoopMarksTheTargetUntilItsNextOrder(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	img := osImage(t, d, "debian")
	tg := mustTargets(t, d, "paris", 1, 1)[0]
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", []api.Event{{OriginSeq: 1, Type: api.EventBootLoop, Target: tg.ID, MAC: tg.MACs[0], Time: at}}))
	got := must[api.Target](t)(d.GetTarget(ctx, tg.ID))
	if !got.BootLoop.Equal(at) {
		t.Fatalf("BootLoop %v, want %v", got.BootLoop, at)
	}
	must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID}))
	got = must[api.Target](t)(d.GetTarget(ctx, tg.ID))
	if !got.BootLoop.IsZero() {
		t.Fatalf("BootLoop %v after a new order, want cleared", got.BootLoop)
	}
	// A loop report that arrives while the target has an order is stale.
	must[api.EventAck](t)(d.IngestEvents(ctx, "bs-1", "paris", []api.Event{{OriginSeq: 2, Type: api.EventBootLoop, Target: tg.ID, Time: at}}))
	if got = must[api.Target](t)(d.GetTarget(ctx, tg.ID)); !got.BootLoop.IsZero() {
		t.Errorf("BootLoop set while the target has a live order")
	}
}
