package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"osim/controlplane/api"
)

func TestImagesRegisterADiskImageWithItsInstallSettings(t *testing.T) {
	clearEnv(t)
	f, url := newFake(t)
	dir := t.TempDir()
	disk := bytes.Repeat([]byte("zstd frame "), 500)
	dp, ip := filepath.Join(dir, "debian.raw.zst"), filepath.Join(dir, "install.yaml")
	settings := "disk:\n  serial: S3Z9\n  min_size: 1073741824\nfinish: poweroff\n"
	for p, b := range map[string][]byte{dp: disk, ip: []byte(settings)} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, errOut, code := runCmd(t, "--server", url, "images", "register", "--name", "debian-disk", "--version", "12",
		"--kind", "os", "--format", "disk", "--disk", dp, "--raw-size", "4G", "--install", ip,
		"--install-disk-max-size", "2T", "--install-grow", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.created) != 1 {
		t.Fatalf("%d images created", len(f.created))
	}
	s := f.created[0]
	want := api.ImageFile{Name: "debian.raw.zst", SHA256: sha(disk), Size: int64(len(disk)), Role: api.RoleDisk,
		Compression: api.CompressionZstd, RawSize: 4 << 30}
	if s.Format != api.FormatDisk || len(s.Files) != 1 || s.Files[0] != want {
		t.Fatalf("spec format %q files %+v, want %+v", s.Format, s.Files, want)
	}
	wantIn := api.InstallSettings{Disk: api.DiskRule{Serial: "S3Z9", MinSize: 1 << 30, MaxSize: 2 << 40}, GrowLastPartition: true, Finish: api.FinishPowerOff}
	if s.Install == nil || *s.Install != wantIn {
		t.Fatalf("install %+v, want %+v (the file, then the flags over it)", s.Install, wantIn)
	}
}

func TestImagesRegisterRefusesDiskFlagsThatDoNotFit(t *testing.T) {
	clearEnv(t)
	_, url := newFake(t)
	dir := t.TempDir()
	dp := filepath.Join(dir, "d.raw")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(dp, []byte("raw"), 0o644)
	os.WriteFile(bad, []byte("disk:\n  size: 5\n"), 0o644)
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--kind", "os", "--format", "disk"}, "needs --disk"},
		{[]string{"--kind", "os", "--disk", dp}, "are for --format disk"},
		{[]string{"--kind", "os", "--format", "disk", "--disk", dp, "--compression", "xz"}, `--compression "xz"`},
		{[]string{"--kind", "os", "--format", "disk", "--disk", dp, "--raw-size", "lots"}, "--raw-size"},
		{[]string{"--kind", "os", "--format", "disk", "--disk", dp, "--install", bad}, `unknown field "size"`},
		{[]string{"--kind", "os", "--format", "disk", "--disk", dp, "--install-disk-min-size", "1X"}, "--install-disk-min-size"},
	} {
		args := append([]string{"--server", url, "images", "register", "--name", "d", "--version", "1"}, c.args...)
		_, errOut, code := runCmd(t, args...)
		if code == 0 || !strings.Contains(errOut, c.says) {
			t.Errorf("%v: exit %d, stderr %q; want a refusal saying %q", c.args, code, errOut, c.says)
		}
	}
}
