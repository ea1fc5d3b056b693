package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"osim/controlplane/api"
	"osim/internal/mgrtest"
	"osim/internal/testlab"
	"osim/ips/debian"
	"osim/ips/gpt"
	"osim/ips/internal/iptest"
	"osim/ips/recipe"
	"osim/ips/testimage"
)

// gptDisk writes a raw 8 MiB GPT disk with one partition holding some
// bytes, and returns its path.
func gptDisk(t *testing.T, dir string) string {
	t.Helper()
	const sectors = 8 << 20 / gpt.SectorSize
	p := filepath.Join(dir, "src.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(sectors * gpt.SectorSize); err != nil {
		t.Fatal(err)
	}
	tab := gpt.Table{DiskGUID: gpt.DerivedGUID("build-test"), Sectors: sectors, Partitions: []gpt.Partition{
		{Type: gpt.TypeLinuxRootX64, GUID: gpt.DerivedGUID("build-test/root"), FirstLBA: 2048, LastLBA: 2048 + 4095, Name: "root"}}}
	if err := tab.Write(f); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte("osim disk kind "), 10000), 2048*gpt.SectorSize); err != nil {
		t.Fatal(err)
	}
	return p
}

func parse(t *testing.T, dir, y string) *recipe.Recipe {
	t.Helper()
	r, err := recipe.Parse([]byte(y), dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func unzstd(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const diskRecipe = `kind: disk
name: vendor-disk
version: "3"
disk: {path: src.qcow2, format: qcow2}
image:
  cmdline: 'console=ttyS0,115200 {{param "extra"}}'
  parameters:
    - {name: extra, default: quiet}
    - {name: root_password, secret: true, default: Pa55-NEVER-SHOWN}
    - {name: ssh_key, required: true}
  procedures:
    - {name: hello, when: firstboot, script: "echo hello"}
  install: {disk: {min_size: 4M}, grow_last_partition: true, finish: poweroff}
`

// qcow2 makes src.qcow2 from src.img with qemu-img.
func qcow2(t *testing.T, dir string) []byte {
	t.Helper()
	raw := gptDisk(t, dir)
	qi := testlab.RequireTool(t, "qemu-img", "qemu-utils")
	if out, err := exec.Command(qi, "convert", "-f", "raw", "-O", "qcow2", raw, filepath.Join(dir, "src.qcow2")).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDiskKindFromQcow2GivesTheRawBytesAndTheSameDigestTwice(t *testing.T) {
	dir := t.TempDir()
	want := qcow2(t, dir)
	r := parse(t, dir, diskRecipe)
	var res [2]Result
	for i := range res {
		var err error
		if res[i], err = Build(t.Context(), r, Options{Out: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
	}
	m := res[0].Manifest
	if m.Digest != res[1].Manifest.Digest || filepath.Base(res[0].Dir) != filepath.Base(res[1].Dir) {
		t.Fatalf("two builds: %s and %s", res[0].Dir, res[1].Dir)
	}
	if base := filepath.Base(res[0].Dir); base != "vendor-disk-3-"+m.Digest[:12] {
		t.Errorf("folder %s is not name-version-digest", base)
	}
	if len(m.Files) != 1 || m.Files[0].Role != api.RoleDisk || m.Files[0].Compression != api.CompressionZstd || m.Files[0].RawSize != int64(len(want)) {
		t.Fatalf("files %+v", m.Files)
	}
	got := unzstd(t, filepath.Join(res[0].Dir, m.Files[0].Name))
	if !bytes.Equal(got, want) {
		t.Fatalf("the image holds %d bytes, not the %d of the raw disk", len(got), len(want))
	}
	if sha, _, _ := hashFile(filepath.Join(res[0].Dir, m.Files[0].Name)); sha != m.Files[0].SHA256 {
		t.Error("the manifest's sha256 is not the file's")
	}
	if m.Kind != api.KindOS || m.Format != api.FormatDisk || m.PartitionTable != "gpt" || m.Tools["qemu-utils"] == "" {
		t.Errorf("manifest kind %q format %q table %q tools %v", m.Kind, m.Format, m.PartitionTable, m.Tools)
	}
	if m.Defaults["extra"] != "quiet" || len(m.Defaults) != 1 || len(m.Procedures) != 1 || m.Install == nil || !m.Install.GrowLastPartition {
		t.Errorf("customization: defaults %v procedures %v install %+v", m.Defaults, m.Procedures, m.Install)
	}
	if len(m.Inputs) != 1 || m.Inputs[0].Name != "disk.path" || m.Inputs[0].Path != "src.qcow2" {
		t.Errorf("inputs %+v", m.Inputs)
	}
	if d, err := m.digest(); err != nil || d != m.Digest {
		t.Errorf("digest %s, recomputed %s (%v)", m.Digest, d, err)
	}
	// The manifest on disk is the one returned.
	if on, err := ReadManifest(res[0].Dir); err != nil || on.Digest != m.Digest {
		t.Errorf("manifest.json: %v %v", on.Digest, err)
	}
}

func TestDiskWithoutAPartitionTableIsKeptWithAWarning(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "blank.img"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "odd.img"), make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	res, err := Build(t.Context(), parse(t, dir, "kind: disk\nname: blank\nversion: 1\ndisk: {path: blank.img}\n"),
		Options{Out: t.TempDir(), Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.PartitionTable != "none" || !strings.Contains(log.String(), "neither a GPT nor an MBR") {
		t.Errorf("table %q, log %s", res.Manifest.PartitionTable, log.String())
	}
	_, err = Build(t.Context(), parse(t, dir, "kind: disk\nname: odd\nversion: 1\ndisk: {path: odd.img}\n"), Options{Out: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "disk.path odd.img: 1000 bytes is not a whole number") {
		t.Errorf("odd size: %v", err)
	}
}

func TestInstallerKindCopiesItsFilesAndChecksTheTemplate(t *testing.T) {
	dir := t.TempDir()
	for f, s := range map[string]string{"linux": "kernel", "initrd.gz": "initrd", "firmware.cpio.gz": "fw", "preseed.cfg": "d-i debian-installer/locale string en_US\n"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := parse(t, dir, `kind: installer
name: debian-installer
version: "12"
installer: {kernel: linux, initrds: [initrd.gz, firmware.cpio.gz], answer: {flavor: preseed, template: preseed.cfg}}
image: {cmdline: 'auto=true priority=critical url={{.BaseURL}}/answer/{{.Order}}'}
`)
	var checked string
	ok := func(flavor, tmpl string) error { checked = flavor + ":" + tmpl; return nil }
	res, err := Build(t.Context(), r, Options{Out: t.TempDir(), CheckAnswer: ok})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(checked, "preseed:d-i ") {
		t.Errorf("the checker saw %q", checked)
	}
	roles := map[string]string{}
	for _, f := range res.Manifest.Files {
		roles[f.Name] = f.Role
	}
	want := map[string]string{"linux": api.RoleKernel, "initrd.gz": api.RoleInitrd, "firmware.cpio.gz": api.RoleInitrd, AnswerFile: RoleAnswer}
	if len(roles) != len(want) {
		t.Errorf("files %v", roles)
	}
	for n, role := range want {
		if roles[n] != role {
			t.Errorf("%s: role %q, want %q", n, roles[n], role)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(res.Dir, AnswerFile)); !bytes.HasPrefix(b, []byte("d-i ")) {
		t.Errorf("%s holds %q: the template is copied, not rendered", AnswerFile, b)
	}
	if res.Manifest.Format != api.FormatInstaller {
		t.Errorf("format %q", res.Manifest.Format)
	}
	bad := func(string, string) error { return errors.New("line 1: unknown directive") }
	out := t.TempDir()
	if _, err := Build(t.Context(), r, Options{Out: out, CheckAnswer: bad}); err == nil || !strings.Contains(err.Error(), "installer.answer.template preseed.cfg (preseed): line 1") {
		t.Errorf("a bad template: %v", err)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("a failed build left %d entries in the output folder", len(left))
	}
}

// tarball writes entries (name → content; a "->" prefix makes a
// symlink, a trailing / a folder) as a .tar.gz.
func tarball(t *testing.T, path string, entries []struct{ name, body string }) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		switch {
		case strings.HasSuffix(e.name, "/"):
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case strings.HasPrefix(e.body, "->"):
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.body[2:], 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	gz.Close()
}

func TestTarballEntriesCannotLeaveTheRoot(t *testing.T) {
	type e = struct{ name, body string }
	for name, entries := range map[string][]e{
		"dot-dot":           {{"../escape", "x"}},
		"through a symlink": {{"etc", "->/tmp"}, {"etc/passwd", "x"}},
		"hard link out":     {{"x", "->"}},
	} {
		dir := t.TempDir()
		p := filepath.Join(dir, "r.tar.gz")
		if name == "hard link out" {
			f, _ := os.Create(p)
			gz := gzip.NewWriter(f)
			tw := tar.NewWriter(gz)
			tw.WriteHeader(&tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"})
			tw.Close()
			gz.Close()
			f.Close()
		} else {
			tarball(t, p, entries)
		}
		root := filepath.Join(dir, "root")
		os.Mkdir(root, 0o755)
		if _, err := extract(p, "gzip", root); !errors.Is(err, ErrUnsafeTar) {
			t.Errorf("%s: %v, want ErrUnsafeTar", name, err)
		}
	}
	if _, err := os.Stat("/tmp/passwd"); err == nil {
		t.Error("/tmp/passwd exists")
	}
}

func TestRootfsKernelAndInitrdAreFoundInsideTheRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	for _, f := range []string{"vmlinuz-6.1.0-9-amd64", "initrd.img-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64", "initrd.img-6.1.0-10-amd64"} {
		os.WriteFile(filepath.Join(root, "boot", f), []byte(f), 0o644)
	}
	os.Symlink("boot/vmlinuz-6.1.0-9-amd64", filepath.Join(root, "vmlinuz"))
	os.Symlink("/etc/shadow", filepath.Join(root, "evil"))
	k, i, err := bootFiles(root, "", "")
	if err != nil || filepath.Base(k) != "vmlinuz-6.1.0-10-amd64" || filepath.Base(i) != "initrd.img-6.1.0-10-amd64" {
		t.Errorf("newest: %s %s %v", k, i, err)
	}
	k, _, err = bootFiles(root, "/vmlinuz", "/boot/initrd.img-6.1.0-9-amd64")
	if err != nil || k != filepath.Join(root, "boot/vmlinuz-6.1.0-9-amd64") {
		t.Errorf("named through a symlink: %s %v", k, err)
	}
	if _, _, err := bootFiles(root, "/evil", "/boot/initrd.img-6.1.0-9-amd64"); !errors.Is(err, errNoBoot) {
		t.Errorf("a symlink to the build machine's /etc/shadow: %v", err)
	}
	if _, _, err := bootFiles(t.TempDir(), "", ""); !errors.Is(err, errNoBoot) || !strings.Contains(err.Error(), "rootfs.kernel") {
		t.Errorf("an empty root: %v", err)
	}
}

// rootfsTarball makes the test OS's root (ips/testimage: busybox, an
// initramfs that mounts LABEL=osimroot and prints a marker) with Debian's
// kernel and that initramfs under /boot, as a .tar.gz.
func rootfsTarball(t *testing.T, dir string) string {
	t.Helper()
	iptest.Tools(t)
	k := iptest.Kernel(t)
	ti := filepath.Join(dir, "testimage")
	res, err := testimage.Build(t.Context(), testimage.Options{Out: ti, Kernel: k, Busybox: iptest.File(t, "/bin/busybox", "busybox-static")})
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(ti, "root")
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	copyFile(k, filepath.Join(root, "boot", "vmlinuz-"+res.Release))
	copyFile(filepath.Join(ti, "initrd.img"), filepath.Join(root, "boot", "initrd.img-"+res.Release))
	p := filepath.Join(dir, "root.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		fi, _ := d.Info()
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(path)
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name, _ = filepath.Rel(root, path)
		h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime = 0, 0, "", "", time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(path)
			_, err = tw.Write(b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	gz.Close()
	return p
}

// TestRootfsTarballBecomesADiskThatBootsUnderBIOSAndUEFI: a tarball of a
// small root with its kernel and initrd under /boot, built twice (same
// digest), boots from its own disk under SeaBIOS and OVMF.
func TestRootfsTarballBecomesADiskThatBootsUnderBIOSAndUEFI(t *testing.T) {
	dir := t.TempDir()
	rootfsTarball(t, dir)
	ovmf := iptest.File(t, "/usr/share/ovmf/OVMF.fd", "ovmf")
	r := parse(t, dir, "kind: rootfs\nname: busybox-os\nversion: 1\nrootfs: {tarball: root.tar.gz, cmdline: '"+testimage.Cmdline+"'}\nimage: {disk: {root_size: 40M}}\n")
	var res [2]Result
	for i := range res {
		var err error
		if res[i], err = Build(t.Context(), r, Options{Out: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
	}
	m := res[0].Manifest
	if m.Digest != res[1].Manifest.Digest || m.Files[0].SHA256 != res[1].Manifest.Files[0].SHA256 {
		t.Fatalf("two builds differ: %s %s", res[0].Dir, res[1].Dir)
	}
	if m.KernelRelease == "" || m.PartitionTable != "gpt" || m.Tools["e2fsprogs"] == "" {
		t.Errorf("manifest: release %q table %q tools %v", m.KernelRelease, m.PartitionTable, m.Tools)
	}
	raw := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(raw, unzstd(t, filepath.Join(res[0].Dir, m.Files[0].Name)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, fw := range []struct{ name, bios string }{{"bios", ""}, {"uefi", ovmf}} {
		t.Run(fw.name, func(t *testing.T) {
			b := iptest.BootQEMU(t, raw, fw.bios, testimage.Marker, 5*time.Minute)
			if want := testimage.Marker + " hostname=? seed=missing"; b.Line != want {
				tail := b.Console
				if len(tail) > 3000 {
					tail = tail[len(tail)-3000:]
				}
				t.Fatalf("console line %q, want %q; tail:\n%s", b.Line, want, tail)
			}
			t.Logf("%s: marker after %v", fw.name, b.Elapsed.Round(100*time.Millisecond))
		})
	}
}

func TestRegisterUploadsTheFilesAndCreatesTheImage(t *testing.T) {
	dir := t.TempDir()
	qcow2(t, dir)
	res, err := Build(t.Context(), parse(t, dir, diskRecipe), Options{Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := mgrtest.Start(t)
	var prog bytes.Buffer
	img, err := Register(t.Context(), c, res.Dir, NewProgress(&prog, false))
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	if img.ID == "" || img.Kind != api.KindOS || img.Format != api.FormatDisk || img.Cmdline != m.Cmdline ||
		img.Defaults["extra"] != "quiet" || len(img.Procedures) != 1 || img.Install == nil || img.Install.Finish != api.FinishPowerOff {
		t.Fatalf("registered %+v", img)
	}
	if _, ok := img.Defaults["root_password"]; ok {
		t.Error("the secret's default was registered")
	}
	var buf bytes.Buffer
	if _, err := c.DownloadBlob(t.Context(), m.Files[0].SHA256, 0, &buf); err != nil {
		t.Fatal(err)
	}
	if h := sha256.Sum256(buf.Bytes()); hex.EncodeToString(h[:]) != m.Files[0].SHA256 {
		t.Error("the manager holds other bytes")
	}
	if !strings.Contains(prog.String(), "upload vendor-disk.img.zst: done") {
		t.Errorf("progress %q", prog.String())
	}
	// Again: the blob is there, the name and version are taken.
	if _, err := Register(t.Context(), c, res.Dir, nil); err == nil {
		t.Error("the same name and version registered twice")
	}
}

func TestProgressDrawsABarOnATerminalAndOneLineOtherwise(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	var plain, tty bytes.Buffer
	for _, c := range []struct {
		buf *bytes.Buffer
		tty bool
	}{{&plain, false}, {&tty, true}} {
		p := NewProgress(c.buf, c.tty)
		p.Now = clock
		s := p.Step("compress", 4<<20)
		now = now.Add(time.Second)
		s.Add(2 << 20)
		now = now.Add(time.Second)
		s.Add(2 << 20)
		s.Done(nil)
	}
	if plain.String() != "compress: done in 2s, 4.0 MiB\n" {
		t.Errorf("plain %q", plain.String())
	}
	if !strings.Contains(tty.String(), "compress [###############               ]  50% 2.0 MiB of 4.0 MiB") || !strings.HasSuffix(tty.String(), "\r\x1b[Kcompress: done in 2s, 4.0 MiB\n") {
		t.Errorf("tty %q", tty.String())
	}
	var nilp *Progress
	nilp.Step("x", 1).Done(nil) // shows nothing, does not crash
}

// TestDebianKindAssemblesWhatTheDebianBuilderMade: the debian builder's
// root, kernel, initrd and command line go into the disk; its package
// list into the manifest. (The builder itself is ips/debian's; here a
// stand-in returns the test OS's root.)
func TestDebianKindAssemblesWhatTheDebianBuilderMade(t *testing.T) {
	iptest.Tools(t)
	k := iptest.Kernel(t)
	ti := t.TempDir()
	if _, err := testimage.Build(t.Context(), testimage.Options{Out: ti, Kernel: k, Busybox: iptest.File(t, "/bin/busybox", "busybox-static")}); err != nil {
		t.Fatal(err)
	}
	var got debian.Options
	fake := func(_ context.Context, o debian.Options) (debian.Result, error) {
		got = o
		return debian.Result{Root: filepath.Join(ti, "root"), Kernel: k, Initrd: filepath.Join(ti, "initrd.img"),
			Cmdline: "root=LABEL=osimroot ro", Packages: []string{"base-files=12.4", "busybox=1.35"}}, nil
	}
	r := parse(t, t.TempDir(), "kind: debian\nname: deb\nversion: 12\ndebian: {suite: bookworm, packages: [curl], timezone: Europe/Berlin}\nimage: {disk: {size: 128M}}\n")
	var prog bytes.Buffer
	res, err := Build(t.Context(), r, Options{Out: t.TempDir(), Debian: fake, Progress: NewProgress(&prog, false)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Suite != "bookworm" || len(got.Packages) != 1 || got.Timezone != "Europe/Berlin" {
		t.Errorf("debian options %+v", got)
	}
	m := res.Manifest
	if len(m.Packages) != 2 || m.Files[0].RawSize != 128<<20 || m.Tools["debootstrap"] == "" {
		t.Errorf("packages %v raw size %d tools %v", m.Packages, m.Files[0].RawSize, m.Tools)
	}
	for _, step := range []string{"debootstrap: done", "assemble disk: done", "compress: done"} {
		if !strings.Contains(prog.String(), step) {
			t.Errorf("progress lacks %q: %s", step, prog.String())
		}
	}
	errMirror := errors.New("debootstrap: mirror unreachable")
	failing := func(context.Context, debian.Options) (debian.Result, error) { return debian.Result{}, errMirror }
	if _, err := Build(t.Context(), r, Options{Out: t.TempDir(), Debian: failing}); !errors.Is(err, errMirror) {
		t.Errorf("a failing debian builder: %v", err)
	}
}

func TestBootKindIsTheInstallerBootImage(t *testing.T) {
	dir := t.TempDir()
	k := iptest.Kernel(t)
	bb := iptest.File(t, "/bin/busybox", "busybox-static")
	// busybox (static) stands in for the installer.
	r := parse(t, dir, "kind: boot\nname: osim-installer\nversion: 1\nboot: {installer: "+bb+", kernel: "+k+", modules: [virtio_blk], compression: zstd}\n")
	res, err := Build(t.Context(), r, Options{Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	if m.Kind != api.KindBoot || m.Format != "" || m.Cmdline == "" || m.KernelRelease == "" || len(m.Files) != 2 {
		t.Fatalf("manifest %+v", m)
	}
	for _, f := range m.Files {
		if sha, _, err := hashFile(filepath.Join(res.Dir, f.Name)); err != nil || sha != f.SHA256 {
			t.Errorf("%s: %v", f.Name, err)
		}
	}
	if len(m.Inputs) != 2 {
		t.Errorf("inputs %+v", m.Inputs)
	}
}
