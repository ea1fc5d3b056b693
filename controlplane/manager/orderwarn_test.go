package manager

import (
	"slices"
	"strings"
	"testing"

	"osim/controlplane/api"
)

// The audit's silent orders: one for an efi-arm64 target whose boot
// server has no efi-arm64 boot file, one for a site with no boot server.
// Both are created, and both say why they will not boot, in the answer
// and as an event.
func TestOrdersThatCannotBootAreCreatedWithAWarningAndAnEvent(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.client(api.RoleBootServer).Heartbeat(ctx, api.Heartbeat{BootArches: []string{"bios", "efi-x64"}}); err != nil {
		t.Fatal(err)
	}
	x64, img := e.seed("s1", 1, nil, 1) // one efi-x64 target: its boot server has the file
	op := e.client(api.RoleOperator)
	target := func(host, arch, site, mac string) api.Target {
		return must[api.Target](t)(op.CreateTarget(ctx, api.TargetSpec{Hostname: host, MACs: []string{mac}, Arch: arch, Site: site}))
	}
	arm := target("arm1", "efi-arm64", "s1", "52:54:00:aa:00:01")
	lone := target("lone1", "bios", "nobs", "52:54:00:aa:00:02")

	for _, c := range []struct {
		target string
		want   string // "" for no warning
	}{
		{x64[0].ID, ""},
		{arm.ID, "1 new orders for efi-arm64 targets of site s1 will not boot: no boot server of the site has a efi-arm64 boot file"},
		{lone.ID, "site nobs has no boot server: its 1 new orders stay pending"},
	} {
		l, err := op.PlaceOrders(ctx, api.OrderRequest{Target: c.target, Image: img.ID})
		if err != nil {
			t.Fatal(err)
		}
		checkWarnings(t, c.target, l.Warnings, c.want)
	}
	ev, err := e.client(api.RoleViewer).ListEvents(ctx, 0, api.EventFilter{Type: api.EventOrderWarning})
	if err != nil {
		t.Fatal(err)
	}
	var sites []string
	for _, x := range ev.Events {
		sites = append(sites, x.Data["site"]+"/"+x.Data["arch"])
	}
	slices.Sort(sites)
	if !slices.Equal(sites, []string{"nobs/", "s1/efi-arm64"}) {
		t.Fatalf("order.warning events for %v, want nobs and s1/efi-arm64", sites)
	}
}

func checkWarnings(t *testing.T, target string, got []string, want string) {
	t.Helper()
	switch {
	case want == "" && len(got) != 0:
		t.Errorf("order for %s: warnings %q, want none", target, got)
	case want != "" && (len(got) != 1 || !strings.Contains(got[0], want)):
		t.Errorf("order for %s: warnings %q, want one saying %q", target, got, want)
	}
}

func TestABootImageWithTheArchNBPSilencesTheWarning(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	_, img := e.seed("s1", 1, nil, 1)
	op := e.client(api.RoleOperator)
	nbp := e.uploadImageFile("snp.efi", api.RoleNBP, []byte("arm nbp"))
	nbp.Arch = "efi-arm64"
	boot := must[api.Image](t)(op.CreateImage(ctx, api.ImageSpec{Name: "ipxe", Version: "1", Kind: api.KindBoot, Files: []api.ImageFile{nbp}}))
	arm := must[api.Target](t)(op.CreateTarget(ctx, api.TargetSpec{Hostname: "arm1", MACs: []string{"52:54:00:aa:00:01"}, Arch: "efi-arm64", Site: "s1"}))
	l, err := op.PlaceOrders(ctx, api.OrderRequest{Target: arm.ID, Image: img.ID, BootImage: boot.ID})
	if err != nil {
		t.Fatal(err)
	}
	checkWarnings(t, arm.ID, l.Warnings, "")
}

func TestDuplicateHostnamesInASiteAreRefused(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	op := e.client(api.RoleOperator)
	must[api.Target](t)(op.CreateTarget(ctx, api.TargetSpec{Hostname: "web1", MACs: []string{"52:54:00:aa:00:01"}, Site: "s1"}))
	_, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: "WEB1", MACs: []string{"52:54:00:aa:00:02"}, Site: "s1"})
	mustStatus(t, err, 409)
	if !strings.Contains(err.Error(), "site s1 already has target") {
		t.Fatalf("409 without the reason: %v", err)
	}
	must[api.Target](t)(op.CreateTarget(ctx, api.TargetSpec{Hostname: "web1", MACs: []string{"52:54:00:aa:00:03"}, Site: "s2"}))
}
