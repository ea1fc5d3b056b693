package manager

import (
	"strings"
	"testing"

	"osim/controlplane/api"
)

func TestSitesAPISetsTheDefaultBootImageThatDiskOrdersUse(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	op := e.client(api.RoleOperator)
	ts, _ := e.seed("s1", 1, nil, 1)
	df := e.uploadImageFile("disk.raw.gz", api.RoleDisk, testData(3000))
	df.Compression = api.CompressionGzip
	disk := must[api.Image](t)(op.CreateImage(ctx, api.ImageSpec{Name: "disk", Version: "1", Kind: api.KindOS, Format: api.FormatDisk, Files: []api.ImageFile{df}}))
	k := e.uploadImageFile("vmlinuz", api.RoleKernel, testData(1200))
	inst := must[api.Image](t)(op.CreateImage(ctx, api.ImageSpec{Name: "osim-installer", Version: "1", Kind: api.KindBoot, Files: []api.ImageFile{k}}))

	// A bad image spec is 422 naming the field.
	bad := `{"name":"d2","version":"1","kind":"os","format":"disk","files":[{"name":"x","sha256":"` + df.SHA256 + `","size":3000,"role":"disk","compression":"xz"}]}`
	wantError(t, e.as(api.RoleOperator, "POST", "/api/v1/images", bad), 422, `files[0].compression: "xz"`)

	// No default yet: the order is refused, saying how to fix it.
	_, err := op.CreateOrders(ctx, api.OrderRequest{Target: ts[0].ID, Image: disk.ID})
	mustStatus(t, err, 422)
	if !strings.Contains(err.Error(), "osimctl sites set s1 --default-boot-image") {
		t.Errorf("refusal %q does not say how to fix it", err)
	}
	wantError(t, e.as(api.RoleViewer, "GET", "/api/v1/sites/s1", ""), 404, "s1")
	wantError(t, e.as(api.RoleViewer, "PUT", "/api/v1/sites/s1", `{"default_boot_image":"`+inst.ID+`"}`), 403, "")
	wantError(t, e.as(api.RoleOperator, "PUT", "/api/v1/sites/s1", `{"default_boot_image":"`+disk.ID+`"}`), 422, "default_boot_image")
	wantError(t, e.as(api.RoleOperator, "PUT", "/api/v1/sites/s1", `{"name":"s2"}`), 422, "name")
	s := must[api.Site](t)(op.PutSite(ctx, "s1", api.Site{DefaultBootImage: inst.ID}))
	if s.Name != "s1" || s.DefaultBootImage != inst.ID || s.Revision == 0 {
		t.Fatalf("site %+v", s)
	}
	if got := must[api.Site](t)(e.client(api.RoleViewer).GetSite(ctx, "s1")); got.DefaultBootImage != inst.ID {
		t.Errorf("get %+v", got)
	}
	if l := must[[]api.Site](t)(e.client(api.RoleViewer).ListSites(ctx)); len(l) != 1 {
		t.Errorf("list %+v", l)
	}
	os := must[[]api.Order](t)(op.CreateOrders(ctx, api.OrderRequest{Target: ts[0].ID, Image: disk.ID}))
	if os[0].BootImage != inst.ID {
		t.Errorf("order boots %q, want the site's default %s", os[0].BootImage, inst.ID)
	}
}
