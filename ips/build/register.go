package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"osim/controlplane/api"
	"osim/ips/recipe"
)

// Register uploads every file of the output folder dir (as its manifest
// lists them; resumable, as osimctl and ips/bootimage do) and registers
// the image at the manager: kind os with format disk or installer, or
// kind boot, with the command line, defaults, procedures and install
// settings of the manifest.
func Register(ctx context.Context, c *api.Client, dir string, p *Progress) (api.Image, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return api.Image{}, err
	}
	for _, f := range m.Files {
		if err := upload(ctx, c, filepath.Join(dir, f.Name), f, p); err != nil {
			return api.Image{}, err
		}
	}
	img, err := c.CreateImage(ctx, Spec(m))
	if err != nil {
		return img, fmt.Errorf("build: registering %s %s: %w", m.Name, m.Version, err)
	}
	return img, nil
}

// Spec is the image spec a manifest registers as. Secret parameters'
// defaults are not in the manifest, so not here either.
func Spec(m Manifest) api.ImageSpec {
	return api.ImageSpec{
		Name: m.Name, Version: m.Version, Kind: m.Kind, Format: m.Format, Install: m.Install,
		Files: m.Files, Cmdline: m.Cmdline, Defaults: m.Defaults, Procedures: m.Procedures,
		Parameters: apiParameters(m.Parameters),
	}
}

// apiParameters converts the recipe's typed parameters, field for field.
func apiParameters(ps []recipe.Parameter) []api.Parameter {
	var out []api.Parameter
	for _, p := range ps {
		out = append(out, api.Parameter(p))
	}
	return out
}

func upload(ctx context.Context, c *api.Client, path string, f api.ImageFile, p *Progress) error {
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	defer r.Close()
	step := p.Step("upload "+f.Name, f.Size)
	var rs io.ReadSeeker = r
	if step != nil {
		rs = reader{r: r, s: step}
	}
	st, err := c.UploadBlob(ctx, f.SHA256, f.Size, rs, 0)
	if err == nil && !st.Complete {
		err = fmt.Errorf("the manager holds %d of %d bytes and does not call the blob complete", st.Received, st.Size)
	}
	step.Done(err)
	if err != nil {
		return fmt.Errorf("build: uploading %s: %w", path, err)
	}
	return nil
}
