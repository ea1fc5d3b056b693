package mdb

import (
	"context"
	"testing"
	"time"

	"osim/controlplane/api"
)

func TestCredentialsAreNamedByPowerSpecsAndGuardedWhileInUse(t *testing.T) {
	d, _ := openTest(t)
	ctx := context.Background()
	spec := api.TargetSpec{Hostname: "n1", MACs: []string{"52:54:00:00:09:01"}, Site: "paris",
		Power: &api.PowerSpec{Driver: "ipmi", Address: "10.0.9.1", Credentials: "rack1"}}
	_, err := d.CreateTarget(ctx, spec)
	wantErr(t, err, ErrUnprocessable, "rack1")
	c := must[api.Credential](t)(d.PutCredential(ctx, Credential{Credential: api.Credential{Name: "rack1", Username: "admin"}, Sealed: []byte("sealed")}))
	if c.Name != "rack1" || c.Created.IsZero() {
		t.Fatalf("put %+v", c)
	}
	tg := must[api.Target](t)(d.CreateTarget(ctx, spec))
	if tg.Power == nil || tg.Power.Credentials != "rack1" {
		t.Fatalf("target power %+v", tg.Power)
	}
	l := must[[]api.Credential](t)(d.ListCredentials(ctx))
	if len(l) != 1 || l[0].Username != "admin" {
		t.Fatalf("list %+v", l)
	}
	if got := must[Credential](t)(d.GetCredential(ctx, "rack1")); string(got.Sealed) != "sealed" {
		t.Fatalf("get %+v", got)
	}
	wantErr(t, d.DeleteCredential(ctx, "rack1"), ErrInUse, "n1")
	// Invalid specs are refused by driver.
	for _, p := range []*api.PowerSpec{{Driver: "smoke-signals"}, {Driver: "ipmi", Address: "10.0.9.1"},
		{Driver: "libvirt"}, {Driver: "wol"}, {Driver: "ipmi", Address: "-x", Credentials: "rack1"}} {
		_, err := d.UpdateTarget(ctx, tg.ID, api.TargetPatch{Power: p})
		wantErr(t, err, ErrInvalid)
	}
	// Driver "" removes the spec; then the credential can go.
	tg = must[api.Target](t)(d.UpdateTarget(ctx, tg.ID, api.TargetPatch{Power: &api.PowerSpec{}}))
	if tg.Power != nil {
		t.Fatalf("power not removed: %+v", tg.Power)
	}
	if err := d.DeleteCredential(ctx, "rack1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, d.DeleteCredential(ctx, "rack1"), ErrNotFound)
	_, err = d.PutCredential(ctx, Credential{Credential: api.Credential{Name: "bad name", Username: "a"}, Sealed: []byte("x")})
	wantErr(t, err, ErrInvalid)
}

// A power request's result is an event on the target and on its live
// order; a lease that runs out gives the request to the next claim.
func TestPowerRequestsAreLeasedAndTheirResultIsOnTheTargetAndItsOrder(t *testing.T) {
	d, _ := openTest(t)
	ctx := context.Background()
	tg := must[api.Target](t)(d.CreateTarget(ctx, api.TargetSpec{Hostname: "vm1", MACs: []string{"52:54:00:00:0e:01"}, Site: "paris",
		Power: &api.PowerSpec{Driver: "libvirt", Domain: "vm1"}}))
	img := osImage(t, d, "deb")
	res := must[OrderResult](t)(d.PlaceOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID}, OrderOptions{}))
	pr := must[api.PowerRequest](t)(d.CreatePowerRequest(ctx, tg.ID, api.PowerActionRequest{Action: "cycle", NetworkBoot: true}, "tok-x"))
	if pending, _, _ := d.PowerPending(ctx, "paris"); !pending {
		t.Fatal("not pending")
	}
	got := must[[]api.PowerRequest](t)(d.ClaimPower(ctx, "bs-1", "paris", time.Minute, 16))
	if len(got) != 1 || got[0].ID != pr.ID || got[0].Attempt != 1 {
		t.Fatalf("claim %+v", got)
	}
	if again := must[[]api.PowerRequest](t)(d.ClaimPower(ctx, "bs-2", "paris", time.Minute, 16)); len(again) != 0 {
		t.Fatalf("a leased request was claimed again: %+v", again)
	}
	if _, err := d.FinishPower(ctx, "bs-2", pr.ID, api.PowerResult{OK: true}); err == nil {
		t.Fatal("another boot server finished the request")
	}
	done := must[api.PowerRequest](t)(d.FinishPower(ctx, "bs-1", pr.ID, api.PowerResult{OK: false, Message: "virsh: domain not found"}))
	if done.State != api.PowerFailed {
		t.Fatalf("finished %+v", done)
	}
	evs := must[[]api.Event](t)(d.ListEvents(ctx, EventQuery{Type: api.EventPower}))
	if len(evs) != 1 || evs[0].Target != tg.ID || evs[0].Order != res.Orders[0].ID || evs[0].Message != "virsh: domain not found" {
		t.Fatalf("power events %+v", evs)
	}
	if pending, _, _ := d.PowerPending(ctx, "paris"); pending {
		t.Fatal("a finished request is still queued")
	}
}

// A target's requests are listed from its own index, newest first; the
// retention deletes finished requests last updated before its cut-off,
// never a pending one, and the queue goes on.
func TestPowerRequestsByTargetAndTheirRetention(t *testing.T) {
	d, _ := openTest(t)
	ctx := context.Background()
	var ts []api.Target
	for i, name := range []string{"vm1", "vm2"} {
		ts = append(ts, must[api.Target](t)(d.CreateTarget(ctx, api.TargetSpec{Hostname: name, MACs: []string{mac(0xe10 + i)}, Site: "paris",
			Power: &api.PowerSpec{Driver: "libvirt", Domain: name}})))
	}
	var ids []string
	for _, a := range []string{"on", "off", "cycle"} {
		ids = append(ids, must[api.PowerRequest](t)(d.CreatePowerRequest(ctx, ts[0].ID, api.PowerActionRequest{Action: a}, "tok-x")).ID)
	}
	must[api.PowerRequest](t)(d.CreatePowerRequest(ctx, ts[1].ID, api.PowerActionRequest{Action: "on"}, "tok-x"))
	l := must[[]api.PowerRequest](t)(d.ListPowerRequests(ctx, ts[0].ID))
	if len(l) != 3 || l[0].Target != ts[0].ID || l[2].Target != ts[0].ID {
		t.Fatalf("vm1's requests: %+v", l)
	}
	claimed := must[[]api.PowerRequest](t)(d.ClaimPower(ctx, "bs1", "paris", time.Minute, 2))
	for _, p := range claimed {
		must[api.PowerRequest](t)(d.FinishPower(ctx, "bs1", p.ID, api.PowerResult{OK: true}))
	}
	n := must[int](t)(d.DropPowerRequests(ctx, d.opts.Clock.Now().Add(time.Second)))
	if n != 2 {
		t.Fatalf("dropped %d, want the 2 finished", n)
	}
	left := len(must[[]api.PowerRequest](t)(d.ListPowerRequests(ctx, ts[0].ID))) + len(must[[]api.PowerRequest](t)(d.ListPowerRequests(ctx, ts[1].ID)))
	if left != 2 {
		t.Fatalf("%d requests left, want the 2 pending", left)
	}
	for _, id := range ids {
		if p, err := d.GetPowerRequest(ctx, id); err == nil && p.State != api.PowerPending {
			t.Errorf("kept %s, which is %s", id, p.State)
		}
	}
	if again := must[[]api.PowerRequest](t)(d.ClaimPower(ctx, "bs1", "paris", time.Minute, 5)); len(again) != 2 {
		t.Fatalf("the queue after the retention: %d claimed, want 2", len(again))
	}
	if n := must[int](t)(d.DropPowerRequests(ctx, d.opts.Clock.Now().Add(time.Second))); n != 0 {
		t.Fatalf("dropped %d running requests", n)
	}
}
