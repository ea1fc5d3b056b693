package manager

import (
	"strings"
	"testing"

	"osim/controlplane/api"
)

// TestSecretDefaultsAreMaskedForUsersButNotForBootServers: viewers,
// operators and admins see "(secret)"; a boot server (which renders plans
// with it) sees the value.
func TestSecretDefaultsAreMaskedForUsersButNotForBootServers(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	op := e.client(api.RoleOperator)
	kernel := e.uploadImageFile("vmlinuz", api.RoleKernel, []byte("kernel"))
	img, err := op.CreateImage(ctx, api.ImageSpec{Name: "deb", Version: "12", Kind: "os", Files: []api.ImageFile{kernel},
		Cmdline:    `console=ttyS0 lang={{param "lang"}}`,
		Parameters: []api.Parameter{{Name: "lang", Default: "en"}, {Name: "root_password", Secret: true, Default: "s3cr3t-default"}}})
	if err != nil {
		t.Fatal(err)
	}
	if img.Defaults["root_password"] != api.SecretMask || img.Parameters[1].Default != api.SecretMask || img.Defaults["lang"] != "en" {
		t.Errorf("registration answered %v %+v", img.Defaults, img.Parameters)
	}
	for _, role := range []string{api.RoleViewer, api.RoleOperator, api.RoleAdmin, api.RoleBootServer} {
		c := e.client(role)
		got, err := c.GetImage(ctx, img.ID)
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		list, err := c.ListImages(ctx)
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		want := api.SecretMask
		if role == api.RoleBootServer {
			want = "s3cr3t-default"
		}
		if got.Defaults["root_password"] != want || got.Parameters[1].Default != want || list[0].Defaults["root_password"] != want {
			t.Errorf("%s sees %q / %q / %q, want %q", role, got.Defaults["root_password"], got.Parameters[1].Default, list[0].Defaults["root_password"], want)
		}
	}
}

func TestOrderParamsAreRefusedWith422NamingTheParameter(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	op := e.client(api.RoleOperator)
	kernel := e.uploadImageFile("vmlinuz", api.RoleKernel, []byte("kernel"))
	img, err := op.CreateImage(ctx, api.ImageSpec{Name: "deb", Version: "12", Kind: "os", Files: []api.ImageFile{kernel},
		Parameters: []api.Parameter{{Name: "host", Required: true}, {Name: "cpus", Type: api.ParamInt}}})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: "p1", Site: "s1", Arch: "bios", MACs: []string{"02:00:00:00:0a:01"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		params map[string]string
		dry    bool
		says   string
	}{
		{nil, false, "params.host: required"},
		{nil, true, "params.host: required"},
		{map[string]string{"host": "a", "cpus": "many"}, false, `params.cpus: parameter cpus: "many" is not an int`},
		{map[string]string{"host": "a", "colour": "red"}, true, "params.colour: no image of the order declares it"},
	} {
		_, err := op.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: img.ID, Params: c.params, DryRun: c.dry})
		if ae, ok := err.(*api.Error); !ok || ae.Code != 422 || !strings.Contains(ae.Message, c.says) {
			t.Errorf("%v (dry run %v): %v, want 422 saying %q", c.params, c.dry, err, c.says)
		}
	}
	_, err = op.CreateImage(ctx, api.ImageSpec{Name: "deb", Version: "13", Kind: "os", Files: []api.ImageFile{kernel},
		Cmdline: `x={{param "undeclared"}}`, Parameters: []api.Parameter{{Name: "host"}}})
	if ae, ok := err.(*api.Error); !ok || ae.Code != 422 || !strings.Contains(ae.Message, `parameter "undeclared" is not declared`) {
		t.Errorf("a template naming an undeclared parameter: %v, want 422", err)
	}
}
