package mdb

import (
	"context"
	"maps"
	"slices"
	"testing"

	"osim/controlplane/api"
)

// paramSpec is an os image with one parameter of each kind.
func paramSpec(t *testing.T, d *DB, name string) api.ImageSpec {
	k := upload(t, d, "kernel of "+name)
	k.Name, k.Role = "vmlinuz", api.RoleKernel
	return api.ImageSpec{Name: name, Version: "1", Kind: api.KindOS, Files: []api.ImageFile{k},
		Cmdline: `console=ttyS0 hostname={{param "host"}} {{if .Params.debug}}debug{{end}}`,
		Parameters: []api.Parameter{
			{Name: "host", Required: true, Description: "the host name"},
			{Name: "cpus", Type: api.ParamInt, Default: "2"},
			{Name: "debug", Type: api.ParamBool, Default: "false"},
			{Name: "root_password", Secret: true, Default: "hunter2"},
		}}
}

func TestImageParametersAreValidatedAtRegistration(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	for i, c := range []struct {
		mod  func(*api.ImageSpec)
		says string
	}{
		{func(s *api.ImageSpec) { s.Parameters[1].Name = "a b" }, `parameters[1].name: "a b"`},
		{func(s *api.ImageSpec) { s.Parameters[2].Name = "cpus" }, `parameters[2].name: "cpus" is parameters[1] again`},
		{func(s *api.ImageSpec) { s.Parameters[1].Type = "float" }, `parameters[1].type: "float"`},
		{func(s *api.ImageSpec) { s.Parameters[1].Default = "two" }, `parameters[1].default: parameter cpus: "two" is not an int`},
		{func(s *api.ImageSpec) { s.Parameters[2].Default = "yes" }, `parameters[2].default: parameter debug: "yes" is not a bool`},
		{func(s *api.ImageSpec) { s.Parameters[0].Default = "h1" }, "parameters[0] host: required with a default"},
		{func(s *api.ImageSpec) { s.Defaults = map[string]string{"cpus": "4"} }, "defaults.cpus: disagrees with parameters"},
		{func(s *api.ImageSpec) { s.Cmdline += ` x={{param "nope"}}` }, `cmdline: parameter "nope" is not declared`},
		{func(s *api.ImageSpec) { s.Cmdline += ` x={{.Params.nope}}` }, `cmdline: parameter "nope" is not declared`},
		{func(s *api.ImageSpec) { s.Cmdline += ` pw={{param "root_password"}}` }, `cmdline: parameter "root_password" is secret`},
	} {
		s := paramSpec(t, d, "img")
		s.Version = string(rune('a' + i))
		c.mod(&s)
		_, err := d.CreateImage(ctx, s)
		wantErr(t, err, ErrUnprocessable, c.says)
	}
}

func TestImageParametersDeriveDefaultsAndKeepOldImagesWorking(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	s := paramSpec(t, d, "img")
	s.Parameters[1].Type = "" // spelled out as string
	im := must[api.Image](t)(d.CreateImage(ctx, s))
	if want := map[string]string{"cpus": "2", "debug": "false", "root_password": "hunter2"}; !maps.Equal(im.Defaults, want) {
		t.Errorf("defaults = %v, want %v (every non-empty default, secrets too)", im.Defaults, want)
	}
	if im.Parameters[1].Type != api.ParamString {
		t.Errorf("type \"\" stored as %q, want string", im.Parameters[1].Type)
	}
	same := paramSpec(t, d, "img")
	same.Version, same.Defaults = "2", map[string]string{"cpus": "2", "debug": "false", "root_password": "hunter2"}
	must[api.Image](t)(d.CreateImage(ctx, same))
	old := paramSpec(t, d, "old")
	old.Parameters, old.Cmdline, old.Defaults = nil, "x={{param \"anything\"}}", map[string]string{"a": "1"}
	must[api.Image](t)(d.CreateImage(ctx, old))
}

func TestOrderParamsAreCheckedAgainstTheImageParameters(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	im := must[api.Image](t)(d.CreateImage(ctx, paramSpec(t, d, "img")))
	old := osImage(t, d, "old")
	tg := mustTargets(t, d, "s1", 0, 1)[0]
	for _, c := range []struct {
		name   string
		params map[string]string
		says   string
	}{
		{"missing required", map[string]string{"cpus": "4"}, "params.host: required by image " + im.ID},
		{"wrong int", map[string]string{"host": "h", "cpus": "four"}, `params.cpus: parameter cpus: "four" is not an int`},
		{"wrong bool", map[string]string{"host": "h", "debug": "1"}, `params.debug: parameter debug: "1" is not a bool`},
		{"unknown key", map[string]string{"host": "h", "colour": "red"}, "params.colour: no image of the order declares it"},
	} {
		for _, dry := range []bool{false, true} {
			_, err := d.PlaceOrders(ctx, api.OrderRequest{Target: tg.ID, Image: im.ID, Params: c.params, DryRun: dry}, OrderOptions{})
			if err == nil {
				t.Fatalf("%s (dry run %v): accepted", c.name, dry)
			}
			wantErr(t, err, ErrUnprocessable, c.says)
		}
	}
	if _, err := d.PlaceOrders(ctx, api.OrderRequest{Targets: []string{tg.ID}, Image: old.ID, Params: map[string]string{"colour": "red"}}, OrderOptions{}); err != nil {
		t.Fatalf("an image that declares no parameters takes any key (old behaviour): %v", err)
	}
	tg = must[api.Target](t)(d.GetTarget(ctx, tg.ID))
	must[api.Order](t)(d.Transition(ctx, tg.CurrentOrder, api.OrderCancelled, "t"))
	os := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: im.ID,
		Params: map[string]string{"host": "h1", "cpus": "-3", "debug": "true", "root_password": "s3cret", "disk.path": "/dev/vda", "ssh_authorized_keys": "ssh-ed25519 AAAA"}}))
	if got := os[0].SecretParams; !slices.Equal(got, []string{"root_password"}) {
		t.Errorf("order secret params = %v, want [root_password]", got)
	}
}
