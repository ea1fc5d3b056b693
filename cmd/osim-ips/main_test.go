package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %q is not readable: apt-get install %s", path, pkg)
	}
	t.Skipf("%q not readable (Debian package %s): skipped", path, pkg)
	return ""
}
