package manager

import (
	"testing"
	"time"

	"osim/controlplane/api"
)

// TestDiscoveredTargetIsListedRefusedOrdersAndAccepted drives the API: a
// boot server's target.discovered upload registers a discovered target
// (its site, arch, facts), listed by state; orders are 409 until accept,
// which makes it a normal target.
func TestDiscoveredTargetIsListedRefusedOrdersAndAccepted(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bs, op := e.client(api.RoleBootServer), e.client(api.RoleOperator)
	const mac = "52:54:00:d1:5c:01"
	ev := api.Event{OriginSeq: 1, Type: api.EventTargetDiscovered, MAC: mac,
		Data: map[string]string{api.DataDHCPArch: "efi-x64", "disk0_size": "8589934592"}}
	for seq := range uint64(2) { // a second report: still one target
		ev.OriginSeq = seq + 1
		if _, err := bs.UploadEvents(ctx, api.EventBatch{Events: []api.Event{ev}}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := op.ListTargetsInState(ctx, api.TargetDiscovered, "", "", "", 0)
	if err != nil || len(l.Targets) != 1 {
		t.Fatalf("discovered targets: %+v %v", l, err)
	}
	tg := l.Targets[0]
	if tg.Site != "s1" || tg.Arch != "efi-x64" || tg.Facts["disk0_size"] != "8589934592" || tg.Hostname != "discovered-525400d15c01" {
		t.Fatalf("discovered target %+v", tg)
	}
	if n := registryValue(t, e.reg, "osim_manager_targets_discovered_total", nil); n != 1 {
		t.Errorf("osim_manager_targets_discovered_total %v, want 1", n)
	}
	img := mustOSImage(t, e)
	_, err = op.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID})
	mustStatus(t, err, 409)

	_, err = op.AcceptTarget(ctx, tg.ID, api.AcceptRequest{Hostname: "not a name"})
	mustStatus(t, err, 400)
	acc, err := op.AcceptTarget(ctx, mac, api.AcceptRequest{Hostname: "web1", Labels: map[string]string{"role": "web"}})
	if err != nil || acc.State != "" || acc.Hostname != "web1" || acc.Labels["role"] != "web" {
		t.Fatalf("accept: %+v %v", acc, err)
	}
	_, err = op.AcceptTarget(ctx, tg.ID, api.AcceptRequest{Hostname: "web2"})
	mustStatus(t, err, 409)
	if l, _ := op.ListTargetsInState(ctx, api.TargetDiscovered, "", "", "", 0); len(l.Targets) != 0 {
		t.Errorf("still listed as discovered: %+v", l.Targets)
	}
	if _, err := op.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID}); err != nil {
		t.Fatalf("order after accept: %v", err)
	}
	_, err = op.ListTargetsInState(ctx, "lost", "", "", "", 0)
	mustStatus(t, err, 400)
}

func TestBootLoopIsShownOnTheTargetUntilANewOrder(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bs, op := e.client(api.RoleBootServer), e.client(api.RoleOperator)
	tg, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: "n1", MACs: []string{"52:54:00:00:1b:01"}, Site: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	if _, err := bs.UploadEvents(ctx, api.EventBatch{Events: []api.Event{{OriginSeq: 1, Type: api.EventBootLoop,
		Target: tg.ID, MAC: tg.MACs[0], Time: at}}}); err != nil {
		t.Fatal(err)
	}
	got, _ := op.GetTarget(ctx, tg.ID)
	if !got.BootLoop.Equal(at) {
		t.Fatalf("boot_loop %v, want %v", got.BootLoop, at)
	}
	img := mustOSImage(t, e)
	if _, err := op.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID}); err != nil {
		t.Fatal(err)
	}
	if got, _ = op.GetTarget(ctx, tg.ID); !got.BootLoop.IsZero() {
		t.Errorf("boot_loop %v after a new order, want cleared", got.BootLoop)
	}
}

// mustOSImage is the env's OS image (seed's, with no targets of its own).
func mustOSImage(t *testing.T, e *env) api.Image {
	t.Helper()
	_, img := e.seed("s9", 0, nil, 0xee)
	return img
}
