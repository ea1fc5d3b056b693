package console

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"osim/controlplane/api"
	"osim/ips/build"
	"osim/ips/recipe"
)

// buildOutput is an osim-ips output folder as files: its manifest (the
// real ips/build.Manifest type) and two files.
func buildOutput(t *testing.T, version string) (manifest []byte, files map[string][]byte) {
	t.Helper()
	files = map[string][]byte{"vmlinuz": bytes.Repeat([]byte("kernel "), 40000), "initrd.img": bytes.Repeat([]byte("initrd "), 90000)}
	m := build.Manifest{Tool: "osim-ips", ToolVersion: "test", Name: "ips-built", Version: version, Kind: api.KindOS,
		Format: api.FormatInstaller, Cmdline: "console=ttyS0",
		Parameters: []recipe.Parameter{{Name: "locale", Type: "string", Default: "en_US.UTF-8", Description: "the locale"}},
		Defaults:   map[string]string{"locale": "en_US.UTF-8"}, Digest: "0123"}
	for _, name := range []string{"vmlinuz", "initrd.img"} {
		s := sha256.Sum256(files[name])
		role := api.RoleKernel
		if name == "initrd.img" {
			role = api.RoleInitrd
		}
		m.Files = append(m.Files, api.ImageFile{Name: name, SHA256: hex.EncodeToString(s[:]), Size: int64(len(files[name])), Role: role})
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b, files
}

// registerForm is the images page's form as a browser sends it.
func registerForm(t *testing.T, csrf string, manifest []byte, files map[string][]byte, order []string) (string, []byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if csrf != "" {
		mw.WriteField("csrf", csrf)
	}
	fw, _ := mw.CreateFormFile("manifest", "manifest.json")
	fw.Write(manifest)
	for _, name := range order {
		fw, _ := mw.CreateFormFile("files", name)
		fw.Write(files[name])
	}
	mw.Close()
	return mw.FormDataContentType(), body.Bytes()
}

func (b *browser) postMultipart(path, ctype string, body []byte) answer {
	b.e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.e.ts.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Origin", b.e.ts.URL)
	return b.do(req)
}

func TestRegisteringAnIPSBuildOutputUploadsChecksAndRegisters(t *testing.T) {
	e := newEnv(t)
	op := e.browser()
	op.signIn(api.RoleOperator)
	csrf := op.csrf()
	manifest, files := buildOutput(t, "1")

	// Refused before anything is written: no CSRF first, a viewer.
	ct, body := registerForm(t, "", manifest, files, []string{"vmlinuz", "initrd.img"})
	if a := op.postMultipart("/ui/images/register", ct, body); a.code != http.StatusForbidden {
		t.Errorf("without CSRF: %d", a.code)
	}
	viewer := e.browser()
	viewer.signIn(api.RoleViewer)
	ct, body = registerForm(t, viewer.csrf(), manifest, files, []string{"vmlinuz", "initrd.img"})
	if a := viewer.postMultipart("/ui/images/register", ct, body); a.code != http.StatusForbidden || !strings.Contains(a.body, "needs role") {
		t.Errorf("viewer: %d, want the API's 403", a.code)
	}
	// A file whose bytes differ from the manifest, a missing file, a
	// file the manifest does not name.
	bad := map[string][]byte{"vmlinuz": bytes.Repeat([]byte("KERNEL "), 40000), "initrd.img": files["initrd.img"]}
	for _, c := range []struct {
		name  string
		files map[string][]byte
		order []string
		want  string
	}{
		{"other bytes", bad, []string{"vmlinuz"}, "checksum mismatch"},
		{"a missing file", files, []string{"vmlinuz"}, "initrd.img"},
		{"a stranger", map[string][]byte{"evil.bin": []byte("x")}, []string{"evil.bin"}, "not a file of this build"},
	} {
		ct, body := registerForm(t, csrf, manifest, c.files, c.order)
		a := op.postMultipart("/ui/images/register", ct, body)
		if a.code != http.StatusUnprocessableEntity || !strings.Contains(a.body, c.want) {
			t.Errorf("%s: %d, want 422 saying %q:\n%s", c.name, a.code, c.want, a.body)
		}
	}
	// A manifest whose sha256 is not 64 hex digits (it would be pasted
	// into an API path) or whose file name is a path.
	var m map[string]any
	json.Unmarshal(manifest, &m)
	for _, bad := range []func(f map[string]any){
		func(f map[string]any) { f["sha256"] = f["sha256"].(string) + "#" },
		func(f map[string]any) { f["sha256"] = "abc" },
		func(f map[string]any) { f["name"] = "../vmlinuz" },
	} {
		var mm map[string]any
		json.Unmarshal(manifest, &mm)
		bad(mm["files"].([]any)[0].(map[string]any))
		raw, _ := json.Marshal(mm)
		ct, body := registerForm(t, csrf, raw, files, []string{"vmlinuz", "initrd.img"})
		if a := op.postMultipart("/ui/images/register", ct, body); a.code != http.StatusUnprocessableEntity || !strings.Contains(a.body, "files[0]") {
			t.Errorf("bad manifest file %v: %d", mm["files"].([]any)[0], a.code)
		}
	}
	if imgs, _ := e.admin.ListImages(t.Context()); len(imgs) != 0 {
		t.Fatalf("a refused registration registered %d images", len(imgs))
	}
	// The whole folder (manifest.json chosen among the files too).
	files["manifest.json"] = manifest
	ct, body = registerForm(t, csrf, manifest, files, []string{"initrd.img", "manifest.json", "vmlinuz"})
	a := op.postMultipart("/ui/images/register", ct, body)
	if a.code != http.StatusSeeOther || !strings.HasPrefix(a.header.Get("Location"), "/ui/images/img-") {
		t.Fatalf("register: %d %s\n%s", a.code, a.header.Get("Location"), a.body)
	}
	imgs, err := e.admin.ListImages(t.Context())
	if err != nil || len(imgs) != 1 {
		t.Fatalf("images %v %v", imgs, err)
	}
	img := imgs[0]
	if img.Name != "ips-built" || len(img.Files) != 2 || len(img.Parameters) != 1 || img.Defaults["locale"] != "en_US.UTF-8" {
		t.Errorf("registered %+v", img)
	}
	// A second version sharing the blobs: they are not stored twice.
	manifest2, _ := buildOutput(t, "2")
	ct, body = registerForm(t, csrf, manifest2, files, []string{"vmlinuz", "initrd.img"})
	if a := op.postMultipart("/ui/images/register", ct, body); a.code != http.StatusSeeOther {
		t.Fatalf("second version: %d %s", a.code, a.body)
	}
}
