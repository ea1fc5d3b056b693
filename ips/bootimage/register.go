package bootimage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"osim/controlplane/api"
)

// Register uploads every file of the boot image in dir (as its manifest
// lists them; resumable, what osimctl does) and registers a boot image
// named name, version at the manager.
func Register(ctx context.Context, c *api.Client, dir, name, version string) (api.Image, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return api.Image{}, err
	}
	if name == "" || version == "" {
		return api.Image{}, fmt.Errorf("bootimage: registering needs a name and a version")
	}
	for _, f := range m.Files {
		if err := upload(ctx, c, filepath.Join(dir, f.Name), f); err != nil {
			return api.Image{}, err
		}
	}
	img, err := c.CreateImage(ctx, api.ImageSpec{Name: name, Version: version, Kind: api.KindBoot, Files: m.Files, Cmdline: m.Cmdline})
	if err != nil {
		return img, fmt.Errorf("bootimage: registering %s %s: %w", name, version, err)
	}
	return img, nil
}

func upload(ctx context.Context, c *api.Client, path string, f api.ImageFile) error {
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("bootimage: %w", err)
	}
	defer r.Close()
	st, err := c.UploadBlob(ctx, f.SHA256, f.Size, r, 0)
	if err != nil {
		return fmt.Errorf("bootimage: uploading %s: %w", path, err)
	}
	if !st.Complete {
		return fmt.Errorf("bootimage: uploading %s: the manager holds %d of %d bytes and does not call the blob complete", path, st.Received, st.Size)
	}
	return nil
}
