package mdb

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"osim/controlplane/api"
)

func TestBlobUploadResumes(t *testing.T) {
	ctx := context.Background()
	d, dir := openTest(t)
	data := bytes.Repeat([]byte("0123456789"), 1000)
	sha := shaOf(data)
	half := int64(len(data) / 2)
	_, err := d.BlobStatus(ctx, sha)
	wantErr(t, err, ErrNotFound)
	st := must[api.BlobStatus](t)(d.WriteBlob(ctx, sha, int64(len(data)), 0, bytes.NewReader(data[:half])))
	if st.Received != half || st.Complete {
		t.Fatalf("first half %+v", st)
	}
	if st := must[api.BlobStatus](t)(d.BlobStatus(ctx, sha)); st.Received != half || st.Size != int64(len(data)) {
		t.Fatalf("status %+v", st)
	}
	if _, err := d.OpenBlob(ctx, sha); err == nil {
		t.Fatal("opened an incomplete blob")
	}
	st, err = d.WriteBlob(ctx, sha, int64(len(data)), 10, bytes.NewReader(data[10:]))
	wantErr(t, err, ErrConflict, "resume at 5000")
	if st.Received != half {
		t.Fatalf("conflict status %+v", st)
	}
	_, err = d.WriteBlob(ctx, sha, 7, 0, bytes.NewReader(data))
	wantErr(t, err, ErrConflict, "10000") // another size for the same upload
	st = must[api.BlobStatus](t)(d.WriteBlob(ctx, sha, int64(len(data)), half, bytes.NewReader(data[half:])))
	if !st.Complete || st.Received != int64(len(data)) {
		t.Fatalf("complete %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", sha[:2], sha)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", "partial", sha)); !os.IsNotExist(err) {
		t.Fatalf("partial left behind: %v", err)
	}
	b := must[Blob](t)(d.OpenBlob(ctx, sha))
	got, _ := io.ReadAll(b)
	b.Close()
	if !bytes.Equal(got, data) || b.Size() != int64(len(data)) {
		t.Fatal("blob content differs")
	}
	// Again: a no-op.
	if st := must[api.BlobStatus](t)(d.WriteBlob(ctx, sha, int64(len(data)), 0, bytes.NewReader(data))); !st.Complete {
		t.Fatal("re-upload")
	}
}

func TestBlobWrongContentIsDiscarded(t *testing.T) {
	ctx := context.Background()
	d, dir := openTest(t)
	sha := shaOf([]byte("right"))
	_, err := d.WriteBlob(ctx, sha, 5, 0, strings.NewReader("wrong"))
	wantErr(t, err, ErrChecksum, sha)
	if _, err := os.Stat(filepath.Join(dir, "blobs", "partial", sha)); !os.IsNotExist(err) {
		t.Fatalf("partial kept: %v", err)
	}
	_, err = d.BlobStatus(ctx, sha)
	wantErr(t, err, ErrNotFound)
	_, err = d.WriteBlob(ctx, sha, 3, 0, strings.NewReader("toolong"))
	wantErr(t, err, ErrInvalid, "more than")
	st := must[api.BlobStatus](t)(d.BlobStatus(ctx, sha))
	if st.Received != 0 {
		t.Fatalf("over-long upload kept %d bytes", st.Received)
	}
	_, err = d.WriteBlob(ctx, "ABC", 3, 0, strings.NewReader("abc"))
	wantErr(t, err, ErrInvalid, "sha256")
	_, err = d.OpenBlob(ctx, shaOf([]byte("nothing")))
	wantErr(t, err, ErrNotFound)
}

func TestImagesValidateAndDelete(t *testing.T) {
	ctx := context.Background()
	d, dir := openTest(t)
	k := upload(t, d, "kernel")
	k.Name, k.Role = "vmlinuz", api.RoleKernel
	nbp := upload(t, d, "nbp")
	nbp.Name, nbp.Role, nbp.Arch = "ipxe.efi", api.RoleNBP, "efi-x64"
	partial := shaOf([]byte("partial data"))
	must[api.BlobStatus](t)(d.WriteBlob(ctx, partial, 12, 0, strings.NewReader("part")))
	good := api.ImageSpec{Name: "deb", Version: "12", Kind: api.KindOS, Files: []api.ImageFile{k}}
	bad := []struct {
		mod  func(*api.ImageSpec)
		want error
		word string
	}{
		{func(s *api.ImageSpec) { s.Name = "" }, ErrInvalid, "name"},
		{func(s *api.ImageSpec) { s.Version = "a b" }, ErrInvalid, "version"},
		{func(s *api.ImageSpec) { s.Kind = "iso" }, ErrInvalid, "kind"},
		{func(s *api.ImageSpec) { s.Files = nil }, ErrInvalid, "kernel"},
		{func(s *api.ImageSpec) { s.Kind, s.Files = api.KindBoot, nil }, ErrInvalid, "nbp"},
		{func(s *api.ImageSpec) { s.Files = []api.ImageFile{k, k} }, ErrInvalid, "files[1]"},
		{func(s *api.ImageSpec) { s.Files = []api.ImageFile{k, {Name: "x/y", SHA256: k.SHA256, Size: k.Size}} }, ErrInvalid, "files[1]"},
		{func(s *api.ImageSpec) {
			s.Files = []api.ImageFile{k, {Name: "n", Role: api.RoleNBP, SHA256: k.SHA256, Size: k.Size}}
		}, ErrInvalid, "arch"},
		{func(s *api.ImageSpec) { s.Files = []api.ImageFile{k, {Name: "i", SHA256: partial, Size: 12}} }, ErrIncomplete, "files[1]"},
		{func(s *api.ImageSpec) { s.Files = []api.ImageFile{k, {Name: "i", SHA256: k.SHA256, Size: 99}} }, ErrIncomplete, "99"},
		{func(s *api.ImageSpec) { s.Procedures = []api.Procedure{{Name: "p", When: "during"}} }, ErrInvalid, "procedures[0]"},
	}
	for i, c := range bad {
		s := good
		s.Files = append([]api.ImageFile(nil), good.Files...)
		c.mod(&s)
		_, err := d.CreateImage(ctx, s)
		if err == nil {
			t.Fatalf("case %d: no error", i)
		}
		wantErr(t, err, c.want, c.word)
	}
	if rev(t, d) != 0 {
		t.Fatal("bad images bumped the revision")
	}
	im := must[api.Image](t)(d.CreateImage(ctx, good))
	if !strings.HasPrefix(im.ID, "img-") || im.Revision != 1 {
		t.Fatalf("image %+v", im)
	}
	_, err := d.CreateImage(ctx, good)
	wantErr(t, err, ErrConflict, "deb", im.ID)
	shared := good
	shared.Version = "13"
	im2 := must[api.Image](t)(d.CreateImage(ctx, shared))
	boot := must[api.Image](t)(d.CreateImage(ctx, api.ImageSpec{Name: "ipxe", Version: "1", Kind: api.KindBoot, Files: []api.ImageFile{nbp}}))
	list, _, _ := d.ListImages(ctx, Page{Limit: 2})
	if len(list) != 2 {
		t.Fatalf("listed %d", len(list))
	}
	if got := must[api.Image](t)(d.GetImage(ctx, boot.ID)); got.Files[0].Arch != "efi-x64" {
		t.Fatalf("boot image %+v", got)
	}
	_, err = d.GetImage(ctx, "img-nope")
	wantErr(t, err, ErrNotFound)

	tg := mustTargets(t, d, "paris", 0, 1)[0]
	o := must[[]api.Order](t)(d.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: im.ID, BootImage: boot.ID}))[0]
	wantErr(t, d.DeleteImage(ctx, im.ID), ErrInUse, o.ID)
	wantErr(t, d.DeleteImage(ctx, boot.ID), ErrInUse, o.ID)
	must[api.Order](t)(d.Transition(ctx, o.ID, api.OrderCancelled, ""))
	if err := d.DeleteImage(ctx, im.ID); err != nil {
		t.Fatal(err)
	}
	kernelPath := filepath.Join(dir, "blobs", "sha256", k.SHA256[:2], k.SHA256)
	if _, err := os.Stat(kernelPath); err != nil {
		t.Fatal("blob still used by im2 was removed")
	}
	if err := d.DeleteImage(ctx, im2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kernelPath); !os.IsNotExist(err) {
		t.Fatalf("unused blob kept: %v", err)
	}
	wantErr(t, d.DeleteImage(ctx, im.ID), ErrNotFound)
	// The name is free again.
	upload(t, d, "kernel")
	must[api.Image](t)(d.CreateImage(ctx, good))
}
