package mdb

import (
	"context"
	"testing"

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
