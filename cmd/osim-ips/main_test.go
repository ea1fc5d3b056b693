package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"osim/controlplane/api"
	"osim/internal/manpage"
	"osim/internal/mgrtest"
	"osim/internal/testlab"
	"osim/ips/bootimage"
	"osim/ips/kernel"
)

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"boot-image"}, {"boot-image", "--out", "x", "--register"}, {"test-image", "--out", "x", "extra"}} {
		var out, errb bytes.Buffer
		if code := run(t.Context(), args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %s)", args, code, errb.String())
		}
	}
}

func TestBootImageWritesFilesAndPrintsTheManifest(t *testing.T) {
	k, _ := kernel.Newest("/boot")
	k = need(t, k, "linux-image-amd64")
	bb := need(t, "/bin/busybox", "busybox-static")
	out := filepath.Join(t.TempDir(), "boot")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"boot-image", "--out", out, "--kernel", k, "--installer", bb, "--modules", "virtio_blk,nonexistent_mod"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var m bootimage.Manifest
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
		t.Fatalf("stdout is not the manifest: %v\n%s", err, stdout.String())
	}
	if len(m.ModulesMissing) != 1 || m.ModulesMissing[0] != "nonexistent_mod" || len(m.Modules) < 3 {
		t.Errorf("modules %v missing %v", m.Modules, m.ModulesMissing)
	}
	for _, f := range m.Files {
		if _, err := os.Stat(filepath.Join(out, f.Name)); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(stderr.String(), "component=ips") {
		t.Errorf("log lacks the component: %s", stderr.String())
	}
}

// need skips (fails under CI=true) without a readable path.
func need(t *testing.T, path, pkg string) string {
	t.Helper()
	if f, err := os.Open(path); err == nil {
		f.Close()
		return path
	}
	testlab.Unavailable(t, "%q is not readable: apt-get install %s", path, pkg)
	return ""
}

// TestBuildNeverShowsASecretAndRegisters builds a disk recipe with a
// secret parameter, registers it at a real manager, and looks for the
// secret's default everywhere: stdout, stderr, every output file and the
// registered image.
func TestBuildNeverShowsASecretAndRegisters(t *testing.T) {
	const secret = "S3cret-NEVER-SHOWN-4711"
	dir := t.TempDir()
	disk := make([]byte, 1<<20)
	disk[510], disk[511] = 0x55, 0xAA // an MBR signature
	if err := os.WriteFile(filepath.Join(dir, "disk.img"), disk, 0o644); err != nil {
		t.Fatal(err)
	}
	y := "kind: disk\nname: sec\nversion: 1\ndisk: {path: disk.img}\nimage:\n  cmdline: 'x={{param \"user\"}}'\n  parameters:\n" +
		"    - {name: user, default: admin}\n    - {name: password, secret: true, default: " + secret + ", description: the root password}\n"
	rp := filepath.Join(dir, "sec.yaml")
	if err := os.WriteFile(rp, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	c, url, tok := mgrtest.Start(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	// The recipe may come before the flags.
	code := run(t.Context(), []string{"build", rp, "--out", out, "--register", "--manager", url, "--token", tok}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Fields(stdout.String())
	if len(lines) != 2 || !strings.HasPrefix(filepath.Base(lines[0]), "sec-1-") {
		t.Fatalf("stdout %q: want the folder and the image id", stdout.String())
	}
	img, err := c.GetImage(t.Context(), lines[1])
	if err != nil {
		t.Fatal(err)
	}
	if img.Defaults["user"] != "admin" || img.Format != api.FormatDisk {
		t.Errorf("registered %+v", img)
	}
	registered, _ := json.Marshal(img)
	for what, b := range map[string][]byte{"stdout": stdout.Bytes(), "stderr": stderr.Bytes(), "registered image": registered} {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the secret is in %s", what)
		}
	}
	if !strings.Contains(stderr.String(), "parameter=password") {
		t.Errorf("the log does not name the secret parameter whose default was dropped: %s", stderr.String())
	}
	err = filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the secret is in %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBuildNamesEveryRecipeMistake(t *testing.T) {
	rp := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(rp, []byte("kind: disk\nname: a b\nversion: 1\ndisk: {path: nowhere.img, format: vhd}\n"), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"build", "--out", t.TempDir(), rp}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, key := range []string{"name: ", "disk.path: ", "disk.format: "} {
		if !strings.Contains(stderr.String(), "\n  "+key) {
			t.Errorf("stderr lacks %q:\n%s", key, stderr.String())
		}
	}
	for _, args := range [][]string{{"build"}, {"build", rp, rp}, {"build", rp, "--register"}} {
		if code := run(t.Context(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// osim-ips man: its usage as a man page groff formats without a warning.
func TestManPage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"man"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d %s", code, errb.String())
	}
	if text := manpage.Check(t, out.Bytes()); !strings.Contains(text, "osim-ips build RECIPE.yaml") {
		t.Errorf("the page lacks the usage:\n%s", text)
	}
}
