package mdb

import (
	"context"
	"testing"

	"osim/controlplane/api"
)

func TestAnInstallerImageCarriesOneAnswerTemplateWithItsFlavor(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	k := upload(t, d, "vendor installer kernel")
	k.Name, k.Role = "linux", api.RoleKernel
	a := upload(t, d, "d-i debian-installer/locale string en_US\n")
	a.Name, a.Role, a.Flavor = "answer.tmpl", api.RoleAnswer, api.FlavorPreseed
	good := api.ImageSpec{Name: "debian-installer", Version: "12", Kind: api.KindOS, Format: api.FormatInstaller,
		Files: []api.ImageFile{k, a}}
	for i, c := range []struct {
		mod  func(*api.ImageSpec)
		says string
	}{
		{func(s *api.ImageSpec) { s.Files[1].Flavor = "" }, `files[1].flavor: "": want preseed, kickstart, autoinstall`},
		{func(s *api.ImageSpec) { s.Files[1].Flavor = "cloud-init" }, `files[1].flavor: "cloud-init"`},
		{func(s *api.ImageSpec) { s.Files[0].Flavor = api.FlavorPreseed }, "files[0].flavor: only an answer file"},
		{func(s *api.ImageSpec) {
			b := s.Files[1]
			b.Name = "second.tmpl"
			s.Files = append(s.Files, b)
		}, "files: 2 answer files"},
		{func(s *api.ImageSpec) { s.Format = api.FormatDisk }, "files[1] answer.tmpl: an answer file belongs to an os image of format installer"},
		{func(s *api.ImageSpec) { s.Kind, s.Format = api.KindBoot, "" }, "files[1] answer.tmpl: an answer file belongs to an os image of format installer"},
	} {
		s := good
		s.Files = append([]api.ImageFile(nil), good.Files...)
		c.mod(&s)
		if _, err := d.CreateImage(ctx, s); err == nil {
			t.Errorf("case %d (%s): accepted", i, c.says)
		} else {
			wantErr(t, err, ErrUnprocessable, c.says)
		}
	}
	im := must[api.Image](t)(d.CreateImage(ctx, good))
	if im.Files[1].Role != api.RoleAnswer || im.Files[1].Flavor != api.FlavorPreseed {
		t.Fatalf("stored %+v", im.Files)
	}
	// The format may be left out: an os image is an installer image then.
	noFormat := good
	noFormat.Name, noFormat.Format = "debian-installer-2", ""
	must[api.Image](t)(d.CreateImage(ctx, noFormat))
}
