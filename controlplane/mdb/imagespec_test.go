package mdb

import (
	"context"
	"strings"
	"testing"

	"osim/controlplane/api"
)

// diskSpec is a valid disk image spec over an uploaded blob.
func diskSpec(t *testing.T, d *DB) api.ImageSpec {
	f := upload(t, d, "a whole disk, zstd")
	f.Name, f.Role, f.Compression, f.RawSize = "disk.raw.zst", api.RoleDisk, api.CompressionZstd, 1<<30
	return api.ImageSpec{Name: "debian-disk", Version: "12", Kind: api.KindOS, Format: api.FormatDisk,
		Files: []api.ImageFile{f},
		Install: &api.InstallSettings{Disk: api.DiskRule{Path: "/dev/vda", MinSize: 1 << 30, MaxSize: 1 << 40},
			OnFailure: api.OnFailurePowerOff, Finish: api.FinishKexec},
		Procedures: []api.Procedure{{Name: "motd", When: api.WhenPost, Script: "echo hi"}, {Name: "fb", When: api.WhenFirstBoot, Script: "true"}}}
}

// installerBootSpec is a boot image carrying the osim installer only.
func installerBootSpec(t *testing.T, d *DB, name string) api.ImageSpec {
	k := upload(t, d, "installer kernel of "+name)
	k.Name, k.Role = "vmlinuz", api.RoleKernel
	in := upload(t, d, "installer initramfs of "+name)
	in.Name, in.Role = "initrd.img", api.RoleInitrd
	return api.ImageSpec{Name: name, Version: "1", Kind: api.KindBoot, Files: []api.ImageFile{k, in}, Cmdline: "console=ttyS0"}
}

func TestDiskImageSpecsAreValidatedFieldByField(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	k := upload(t, d, "kernel")
	k.Name, k.Role = "vmlinuz", api.RoleKernel
	good := diskSpec(t, d)
	for i, c := range []struct {
		mod  func(*api.ImageSpec)
		says string
	}{
		{func(s *api.ImageSpec) { s.Format = "iso" }, `format: "iso"`},
		{func(s *api.ImageSpec) { s.Files[0].Compression = "xz" }, `files[0].compression: "xz": want gzip or zstd`},
		{func(s *api.ImageSpec) { s.Files[0].RawSize = -1 }, "files[0].raw_size: -1"},
		{func(s *api.ImageSpec) { s.Files[0].Compression, s.Files[0].RawSize = "", 5 }, "files[0].raw_size: 5"},
		{func(s *api.ImageSpec) { s.Files = nil }, "exactly one file of role disk, not 0"},
		{func(s *api.ImageSpec) { s.Files = append(s.Files, s.Files[0]); s.Files[1].Name = "b" }, "exactly one file of role disk, not 2"},
		{func(s *api.ImageSpec) { s.Files = append(s.Files, k) }, "no kernel file"},
		{func(s *api.ImageSpec) { k2 := k; k2.Compression = "gzip"; s.Format = ""; s.Files = []api.ImageFile{k2} }, "files[0].compression: only a disk file"},
		{func(s *api.ImageSpec) { s.Install.OnFailure = "reboot" }, `install.on_failure: "reboot"`},
		{func(s *api.ImageSpec) { s.Install.Finish = "halt" }, `install.finish: "halt"`},
		{func(s *api.ImageSpec) { s.Install.Disk.MinSize = -1 }, "install.disk.min_size: -1"},
		{func(s *api.ImageSpec) { s.Install.Disk.MaxSize = -1 }, "install.disk.max_size: -1"},
		{func(s *api.ImageSpec) { s.Install.Disk.MinSize = 2 << 40 }, "install.disk.min_size: 2199023255552 is more than max_size"},
		{func(s *api.ImageSpec) { s.Install.Disk.Path = "vda" }, `install.disk.path: "vda"`},
		{func(s *api.ImageSpec) { s.Install.Disk.Path = "/dev/../etc/passwd" }, "install.disk.path"},
		{func(s *api.ImageSpec) { s.Install.Disk.Path = "/tmp/disk" }, "install.disk.path"},
		{func(s *api.ImageSpec) { s.Procedures[0].When = "during" }, `procedures[0].when: "during"`},
		{func(s *api.ImageSpec) { s.Procedures[0].Name = "a b" }, "procedures[0].name"},
		{func(s *api.ImageSpec) { s.Procedures[1].Name = "motd" }, "procedures[1].name: \"motd\" is procedures[0] again"},
		{func(s *api.ImageSpec) { s.Procedures[0].Script = "" }, "procedures[0].script: empty"},
		{func(s *api.ImageSpec) { s.Procedures[0].Script = strings.Repeat("x", MaxProcedureScript+1) }, "procedures[0].script: 65537 bytes"},
		{func(s *api.ImageSpec) { s.Format = api.FormatInstaller; s.Files = []api.ImageFile{k} }, "install: only a disk image"},
		{func(s *api.ImageSpec) {
			s.Format, s.Install, s.Files, s.Procedures = api.FormatInstaller, nil, []api.ImageFile{k}, s.Procedures[1:]
		}, "procedures[0].when: firstboot is for disk images only"},
		{func(s *api.ImageSpec) { s.Kind, s.Install, s.Procedures = api.KindBoot, nil, nil }, "format: \"disk\": a boot image has no format"},
		{func(s *api.ImageSpec) { s.Kind, s.Format, s.Install, s.Procedures = api.KindBoot, "", nil, nil }, "a boot image has no disk file"},
	} {
		s := good
		s.Files = append([]api.ImageFile(nil), good.Files...)
		s.Procedures = append([]api.Procedure(nil), good.Procedures...)
		in := *good.Install
		s.Install = &in
		c.mod(&s)
		_, err := d.CreateImage(ctx, s)
		if err == nil {
			t.Errorf("case %d (%s): accepted", i, c.says)
			continue
		}
		wantErr(t, err, ErrUnprocessable, c.says)
	}
	im := must[api.Image](t)(d.CreateImage(ctx, good))
	if im.Format != api.FormatDisk || im.Install == nil || *im.Install != *good.Install || im.Files[0].Compression != api.CompressionZstd || im.Files[0].RawSize != 1<<30 {
		t.Fatalf("stored %+v", im)
	}
	// An installer image without a format keeps working.
	old := must[api.Image](t)(d.CreateImage(ctx, api.ImageSpec{Name: "old", Version: "1", Kind: api.KindOS, Files: []api.ImageFile{k}}))
	if old.Format != "" {
		t.Errorf("old image format %q", old.Format)
	}
}

func TestABootImageMayCarryTheInstallerWithoutNBPs(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	spec := installerBootSpec(t, d, "osim-installer")
	im := must[api.Image](t)(d.CreateImage(ctx, spec))
	if len(im.Files) != 2 {
		t.Fatalf("files %+v", im.Files)
	}
	noKernel := spec
	noKernel.Name, noKernel.Files = "initrd-only", spec.Files[1:]
	_, err := d.CreateImage(ctx, noKernel)
	wantErr(t, err, ErrUnprocessable, "initrd files without a kernel file")
}
