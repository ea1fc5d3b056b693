package console

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"osim/controlplane/api"
)

// seedTargets registers n targets in site s1 (rack r1 for the even ones,
// r2 for the odd) in the MDB.
func seedTargets(t testing.TB, e *env, n int) []api.Target {
	t.Helper()
	specs := make([]api.TargetSpec, n)
	for i := range specs {
		specs[i] = api.TargetSpec{Hostname: fmt.Sprintf("node-%05d", i), MACs: []string{fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)},
			Arch: "efi-x64", Site: "s1", Labels: map[string]string{"rack": fmt.Sprintf("r%d", 1+i%2)}}
	}
	var out []api.Target
	for start := 0; start < n; start += 1000 {
		ts, err := e.store.CreateTargets(t.Context(), specs[start:min(start+1000, n)])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ts...)
	}
	return out
}

// seedImage registers an installer-format OS image with a kernel and an
// initrd, and a required parameter.
func seedImage(t testing.TB, e *env) api.Image {
	t.Helper()
	var files []api.ImageFile
	for _, f := range []struct{ name, role string }{{"vmlinuz", api.RoleKernel}, {"initrd.img", api.RoleInitrd}} {
		data := []byte("content of " + f.name)
		s := sha256.Sum256(data)
		sum := hex.EncodeToString(s[:])
		if _, err := e.admin.UploadBlob(t.Context(), sum, int64(len(data)), bytes.NewReader(data), 1<<20); err != nil {
			t.Fatal(err)
		}
		files = append(files, api.ImageFile{Name: f.name, SHA256: sum, Size: int64(len(data)), Role: f.role})
	}
	img, err := e.admin.CreateImage(t.Context(), api.ImageSpec{Name: "debian", Version: "12", Kind: api.KindOS,
		Format: api.FormatInstaller, Files: files, Cmdline: "console=ttyS0 status={{.StatusURL}} token={{.Token}}",
		Parameters: []api.Parameter{{Name: "root_password_hash", Type: "string", Secret: true, Default: "$6$x$secretdefault"},
			{Name: "locale", Type: "string", Default: "en_US.UTF-8", Description: "the system locale"}}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}
