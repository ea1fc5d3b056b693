package mass

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"

	"osim/controlplane/api"
	"osim/internal/promtext"
	"osim/internal/pxeclient"
)

// ErrImageRefused: the manager would not register a disk-format OS image
// (a manager from before issue 13); the image mode is skipped.
var ErrImageRefused = errors.New("the manager refused a disk-format os image")

// ImageFigures is what the image mode (Options.ImageSize) measured.
type ImageFigures struct {
	Bytes int64 `json:"image_bytes"` // the disk file, as served
	// Installed counts the installers' final reports (done, failed).
	Installed map[string]int `json:"installed"`
	// EgressBytes is the boot server's HTTP response bytes over the boot
	// window (osim_httpboot_response_bytes_total, every route); EgressMBps
	// is that over the window's wall time (10^6 B/s).
	EgressBytes float64 `json:"egress_bytes"`
	EgressMBps  float64 `json:"egress_mb_per_s"`
	// WriteMBps is each installer's rate of writing the image to its sink
	// (bytes served over its streaming time); AggregateMBps is every
	// installer's bytes over the span from the first stream's start to
	// the last one's end.
	WriteMBps     Dist    `json:"write_mb_per_s"`
	AggregateMBps float64 `json:"aggregate_write_mb_per_s"`
}

// registerDiskImages registers the boot image (the NBPs, kernel and
// initrd of today's runs) and a disk-format os image holding one random
// disk file of size bytes (seeded: the same bytes every run).
func registerDiskImages(ctx context.Context, c *api.Client, o Options) (osImg, bootImg api.Image, err error) {
	rng := rand.NewChaCha8([32]byte{'o', 's', 'i', 'm', 'k'})
	nbps := rand.NewChaCha8([32]byte{'o', 's', 'i', 'm', 'b'}) // writeNBPs' bytes
	boot := api.ImageSpec{Name: "bench-boot", Version: "1", Kind: api.KindBoot}
	for _, f := range []struct {
		name, role, arch string
		n                int
		src              *rand.ChaCha8
	}{
		{"undionly.kpxe", api.RoleNBP, "bios", o.NBP, nbps}, {"snponly.efi", api.RoleNBP, "efi-x64", o.NBP, nbps},
		{"vmlinuz", api.RoleKernel, "", o.Kernel, rng}, {"initrd.img", api.RoleInitrd, "", o.Initrd, rng},
	} {
		file, err := uploadRandom(ctx, c, f.src, f.name, f.n)
		if err != nil {
			return osImg, bootImg, err
		}
		file.Role, file.Arch = f.role, f.arch
		boot.Files = append(boot.Files, file)
	}
	if bootImg, err = c.CreateImage(ctx, boot); err != nil {
		return osImg, bootImg, fmt.Errorf("mass: boot image: %w", err)
	}
	disk, err := uploadRandom(ctx, c, rng, "disk.img", int(o.ImageSize))
	if err != nil {
		return osImg, bootImg, err
	}
	disk.Role = api.RoleDisk
	spec := api.ImageSpec{Name: "bench-disk", Version: "1", Kind: api.KindOS, Format: api.FormatDisk, Files: []api.ImageFile{disk}}
	if osImg, err = c.CreateImage(ctx, spec); err != nil {
		return osImg, bootImg, fmt.Errorf("%w: %w", ErrImageRefused, err)
	}
	return osImg, bootImg, nil
}

func uploadRandom(ctx context.Context, c *api.Client, rng *rand.ChaCha8, name string, n int) (api.ImageFile, error) {
	b := make([]byte, n)
	rng.Read(b)
	sum := sha256.Sum256(b)
	sha := hex.EncodeToString(sum[:])
	if _, err := c.UploadBlob(ctx, sha, int64(n), bytes.NewReader(b), 8<<20); err != nil {
		return api.ImageFile{}, fmt.Errorf("mass: uploading %s: %w", name, err)
	}
	return api.ImageFile{Name: name, SHA256: sha, Size: int64(n)}, nil
}

// imageFigures sums the installers' image results and the boot server's
// egress between two /metrics readings.
func imageFigures(ts []*target, size int64, before, after promtext.Samples, bootSecs float64) *ImageFigures {
	f := &ImageFigures{Bytes: size, Installed: map[string]int{}}
	f.EgressBytes = after.Sum("osim_httpboot_response_bytes_total") - before.Sum("osim_httpboot_response_bytes_total")
	if bootSecs > 0 {
		f.EgressMBps = f.EgressBytes / 1e6 / bootSecs
	}
	var rates []float64
	var w window
	var served int64
	for _, t := range ts {
		if t.res == nil || t.res.Image == nil {
			continue
		}
		if t.res.Installed != "" {
			f.Installed[t.res.Installed]++
		}
		im := t.res.Image
		if im.Stream > 0 && im.Served > 0 {
			rates = append(rates, float64(im.Served)/1e6/im.Stream.Seconds())
		}
		served += im.Served
		at := t.start
		for _, p := range t.res.Phases {
			if p.Phase == pxeclient.PhaseImage {
				w.add(at, at.Add(p.Duration))
			}
			if p.Phase != pxeclient.PhaseInstall { // install holds the image phases
				at = at.Add(p.Duration)
			}
		}
	}
	f.WriteMBps = dist(rates)
	if w.secs() > 0 {
		f.AggregateMBps = float64(served) / 1e6 / w.secs()
	}
	return f
}
