package mdb

import (
	"context"
	"testing"

	"osim/controlplane/api"
)

func TestASiteNeverHasTwoTargetsOfOneHostname(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	web := func(host, site string, i int) api.TargetSpec {
		return api.TargetSpec{Hostname: host, MACs: []string{mac(i)}, Site: site}
	}
	a := must[api.Target](t)(d.CreateTarget(ctx, web("web1", "paris", 1)))
	_, err := d.CreateTarget(ctx, web("Web1", "paris", 2))
	wantErr(t, err, ErrConflict, "hostname Web1: site paris already has target "+a.ID)
	_, err = d.CreateTargets(ctx, []api.TargetSpec{web("db1", "lyon", 3), web("db1", "lyon", 4)})
	wantErr(t, err, ErrConflict, "specs[1]: hostname db1 is also in specs[0]")
	other := must[api.Target](t)(d.CreateTarget(ctx, web("web1", "lyon", 5))) // another site: fine

	// Renaming onto a taken name, or moving into a site that has it, is
	// refused; renaming frees the old name.
	taken := "web1"
	_, err = d.UpdateTarget(ctx, other.ID, api.TargetPatch{Site: ptr("paris")})
	wantErr(t, err, ErrConflict, "site paris already has target "+a.ID)
	b := must[api.Target](t)(d.CreateTarget(ctx, web("web2", "paris", 6)))
	_, err = d.UpdateTarget(ctx, b.ID, api.TargetPatch{Hostname: &taken})
	wantErr(t, err, ErrConflict)
	must[api.Target](t)(d.UpdateTarget(ctx, a.ID, api.TargetPatch{Hostname: ptr("web9")}))
	must[api.Target](t)(d.UpdateTarget(ctx, b.ID, api.TargetPatch{Hostname: &taken}))
	must[api.Target](t)(d.UpdateTarget(ctx, b.ID, api.TargetPatch{Labels: &map[string]string{"x": "y"}})) // itself: no conflict

	// Deleting frees the name.
	if err := d.DeleteTarget(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	must[api.Target](t)(d.CreateTarget(ctx, web("web1", "paris", 7)))
}

func ptr[T any](v T) *T { return &v }
