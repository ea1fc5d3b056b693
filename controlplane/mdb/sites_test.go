package mdb

import (
	"context"
	"testing"

	"osim/controlplane/api"
)

func TestSiteDefaultBootImageIsCheckedAndKeptFromDeletion(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	inst := must[api.Image](t)(d.CreateImage(ctx, installerBootSpec(t, d, "osim-installer")))
	nbpOnly := bootImage(t, d, "ipxe")
	osImg := osImage(t, d, "deb")
	_, err := d.GetSite(ctx, "paris")
	wantErr(t, err, ErrNotFound, "paris")
	for _, c := range []struct {
		s    api.Site
		says string
	}{
		{api.Site{Name: "a b"}, "name"},
		{api.Site{Name: "paris", DefaultBootImage: "img-nope"}, "default_boot_image"},
		{api.Site{Name: "paris", DefaultBootImage: osImg.ID}, "is a os image, want boot"},
		{api.Site{Name: "paris", DefaultBootImage: nbpOnly.ID}, "has no kernel file"},
	} {
		_, err := d.PutSite(ctx, c.s)
		wantErr(t, err, ErrUnprocessable, c.says)
	}
	before := rev(t, d)
	s := must[api.Site](t)(d.PutSite(ctx, api.Site{Name: "paris", DefaultBootImage: inst.ID}))
	if s.Revision <= before || s.DefaultBootImage != inst.ID {
		t.Fatalf("site %+v (revision before %d)", s, before)
	}
	if got := must[api.Site](t)(d.GetSite(ctx, "paris")); got != s {
		t.Errorf("read %+v, wrote %+v", got, s)
	}
	if l := must[[]api.Site](t)(d.ListSites(ctx)); len(l) != 1 || l[0].Name != "paris" {
		t.Errorf("list %+v", l)
	}
	wantErr(t, d.DeleteImage(ctx, inst.ID), ErrInUse, "default boot image of site paris")
}

func TestDiskOrdersGetTheirSitesDefaultBootImageOrAreRefused(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	disk := must[api.Image](t)(d.CreateImage(ctx, diskSpec(t, d)))
	inst := must[api.Image](t)(d.CreateImage(ctx, installerBootSpec(t, d, "osim-installer")))
	other := must[api.Image](t)(d.CreateImage(ctx, installerBootSpec(t, d, "other-installer")))
	nbpOnly := bootImage(t, d, "ipxe")
	paris := mustTargets(t, d, "paris", 0, 2)
	lyon := mustTargets(t, d, "lyon", 2, 1)
	must[api.Site](t)(d.PutSite(ctx, api.Site{Name: "paris", DefaultBootImage: inst.ID}))

	// A request over both sites is refused whole: lyon has no default.
	before := rev(t, d)
	_, err := d.CreateOrders(ctx, api.OrderRequest{Targets: []string{paris[0].ID, lyon[0].ID}, Image: disk.ID})
	wantErr(t, err, ErrUnprocessable, `site "lyon"`, "osimctl sites set lyon --default-boot-image")
	_, err = d.CreateOrders(ctx, api.OrderRequest{Selector: "rack", Image: disk.ID, All: true})
	wantErr(t, err, ErrUnprocessable, `site "lyon"`)
	if rev(t, d) != before {
		t.Fatal("a refused request wrote something")
	}
	// The named boot image must boot the installer.
	_, err = d.CreateOrders(ctx, api.OrderRequest{Target: lyon[0].ID, Image: disk.ID, BootImage: nbpOnly.ID})
	wantErr(t, err, ErrUnprocessable, "boot_image", "no kernel file")

	// Single and list: the site's default; an explicit one wins.
	os := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Targets: []string{paris[0].ID}, Image: disk.ID}))
	if os[0].BootImage != inst.ID {
		t.Errorf("order of paris boots %q, want the site's default %s", os[0].BootImage, inst.ID)
	}
	os = must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: lyon[0].ID, Image: disk.ID, BootImage: other.ID}))
	if os[0].BootImage != other.ID {
		t.Errorf("order of lyon boots %q, want the named %s", os[0].BootImage, other.ID)
	}
	// Selector: each target its own site's default.
	must[api.Site](t)(d.PutSite(ctx, api.Site{Name: "lyon", DefaultBootImage: other.ID}))
	lyon2 := mustTargets(t, d, "lyon", 3, 1)
	os = must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Targets: []string{paris[1].ID, lyon2[0].ID}, Image: disk.ID}))
	for _, o := range os {
		want := map[string]string{"paris": inst.ID, "lyon": other.ID}[o.Site]
		if o.BootImage != want {
			t.Errorf("order %s of %s boots %q, want %s", o.ID, o.Site, o.BootImage, want)
		}
	}
	// An installer-format order is as before: no boot image needed.
	k := upload(t, d, "kernel")
	k.Name, k.Role = "vmlinuz", api.RoleKernel
	inImg := must[api.Image](t)(d.CreateImage(ctx, api.ImageSpec{Name: "inst", Version: "1", Kind: api.KindOS, Files: []api.ImageFile{k}}))
	lyon3 := mustTargets(t, d, "lyon", 4, 1)
	os = must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: lyon3[0].ID, Image: inImg.ID}))
	if os[0].BootImage != "" {
		t.Errorf("installer order boots %q, want none", os[0].BootImage)
	}
}
