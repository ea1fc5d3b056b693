package manager

import (
	"strings"
	"testing"

	"osim/controlplane/api"
)

// TestOrderParamsThatBreakTheCmdlineAreRefused: an order's parameters are
// rendered into the image's command line at every boot; a value that
// makes it too long or unsafe is refused at creation (422 naming params),
// not left to fail each boot with a 500.
func TestOrderParamsThatBreakTheCmdlineAreRefused(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	op := e.client(api.RoleOperator)
	kernel := e.uploadImageFile("vmlinuz", api.RoleKernel, []byte("kernel"))
	img, err := op.CreateImage(ctx, api.ImageSpec{Name: "deb", Version: "12", Kind: "os", Files: []api.ImageFile{kernel},
		Cmdline: "console=ttyS0 root={{.Params.disk}}", Defaults: map[string]string{"disk": "sda"}})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: "p1", Site: "s1", Arch: "bios", MACs: []string{"02:00:00:00:0a:01"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{strings.Repeat("x", 5000), "sda\nchain http://evil/"} {
		_, err := op.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID, Params: map[string]string{"disk": bad}})
		if ae, ok := err.(*api.Error); !ok || ae.Code != 422 || !strings.Contains(ae.Message, "params:") {
			t.Errorf("disk=%.20q...: %v, want 422 naming params", bad, err)
		}
	}
	if _, err := op.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID, Params: map[string]string{"disk": "nvme0n1"}}); err != nil {
		t.Fatalf("a fine parameter: %v", err)
	}
}
