package bootimage

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"osim/controlplane/api"
	"osim/internal/mgrtest"
	"osim/ips/initramfs"
	"osim/ips/internal/iptest"
	"osim/ips/kernel"
	"osim/ips/kmod"
)

// debian returns options over the installed Debian kernel, with busybox
// (static, like the installer must be) standing in for the installer.
func debian(t *testing.T) Options {
	t.Helper()
	return Options{
		Out:       t.TempDir(),
		Kernel:    iptest.Kernel(t),
		Installer: iptest.File(t, "/bin/busybox", "busybox-static"),
		Busybox:   "/bin/busybox",
	}
}

// unpack reads the gzip initramfs of dir into name → record and contents.
func unpack(t *testing.T, path string) (map[string]cpio.Record, map[string][]byte, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	rr := cpio.Newc.Reader(bytes.NewReader(raw))
	recs, data := map[string]cpio.Record{}, map[string][]byte{}
	var order []string
	for {
		r, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) || r.Name == cpio.Trailer {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		recs[r.Name] = r
		order = append(order, r.Name)
		if r.FileSize > 0 {
			b := make([]byte, r.FileSize)
			r.ReadAt(b, 0)
			data[r.Name] = b
		}
	}
	return recs, data, order
}

func TestBootImageHoldsTheInstallerAShellAndModulesDependenciesFirst(t *testing.T) {
	o := debian(t)
	m, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	recs, data, _ := unpack(t, filepath.Join(o.Out, InitrdBase+".gz"))
	inst, _ := os.ReadFile(o.Installer)
	if !bytes.Equal(data["init"], inst) || recs["init"].Mode&0o111 == 0 {
		t.Error("/init is not the installer, executable")
	}
	if string(data["bin/sh"]) != "busybox" || recs["bin/sh"].Mode&cpio.S_IFMT != cpio.S_IFLNK {
		t.Errorf("/bin/sh is not a link to busybox: %q", data["bin/sh"])
	}
	if c := recs["dev/console"]; c.Mode&cpio.S_IFMT != cpio.S_IFCHR || c.Rmajor != 5 || c.Rminor != 1 {
		t.Errorf("/dev/console: %+v", c.Info)
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "mnt"} {
		if recs[d].Mode&cpio.S_IFMT != cpio.S_IFDIR {
			t.Errorf("/%s is not a directory", d)
		}
	}
	list := strings.Fields(string(data[ModulesList]))
	if !slices.Equal(list, m.Modules) || len(list) == 0 {
		t.Fatalf("%s lists %v, the manifest %v", ModulesList, list, m.Modules)
	}
	tree, err := kmod.Open(kernel.ModulesDir(m.KernelRelease))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for i, f := range list {
		if _, ok := recs["lib/modules/"+m.KernelRelease+"/"+f]; !ok {
			t.Errorf("listed module %s is not in the initramfs", f)
		}
		// Every module's whole closure loads before it.
		for _, dep := range tree.Resolve([]string{kmod.Name(f)}).Files {
			if j := slices.Index(list, dep); j > i {
				t.Errorf("%s loads at %d, after %s at %d that needs it", dep, j, f, i)
			}
		}
		names[kmod.Name(f)] = true
	}
	for _, want := range []string{"virtio_net", "virtio_blk", "ext4", "nvme", "crc32c_generic", "jbd2", "virtio"} {
		if !names[want] {
			t.Errorf("module %s missing (have %v)", want, list)
		}
	}
}

func TestManifestDescribesTheFilesAndTheirInputs(t *testing.T) {
	o := debian(t)
	o.NBPs = []NBP{{Arch: "bios", Path: iptest.File(t, "/usr/lib/ipxe/undionly.kpxe", "ipxe")}}
	o.ToolVersion = "v-test"
	m, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	read, err := ReadManifest(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	if read.ToolVersion != "v-test" || read.Kind != api.KindBoot || read.Cmdline != DefaultCmdline || !strings.HasSuffix(o.Kernel, read.KernelRelease) {
		t.Errorf("manifest %+v", read)
	}
	if h := sha(t, o.Installer); read.Installer.SHA256 != h {
		t.Errorf("installer sha256 %s, file has %s", read.Installer.SHA256, h)
	}
	roles := map[string]string{}
	for _, f := range read.Files {
		if h := sha(t, filepath.Join(o.Out, f.Name)); h != f.SHA256 {
			t.Errorf("%s: manifest says sha256 %s, file has %s", f.Name, f.SHA256, h)
		}
		if fi, _ := os.Stat(filepath.Join(o.Out, f.Name)); fi.Size() != f.Size {
			t.Errorf("%s: manifest says %d bytes, file has %d", f.Name, f.Size, fi.Size())
		}
		roles[f.Role] += f.Name + f.Arch
	}
	if roles[api.RoleKernel] != KernelName || roles[api.RoleInitrd] != InitrdBase+".gz" || roles[api.RoleNBP] != "undionly.kpxebios" {
		t.Errorf("files by role %v", roles)
	}
	if !slices.Equal(m.Modules, read.Modules) {
		t.Error("manifest on disk differs from the one returned")
	}
}

func TestTwoBuildsGiveTheSameBytes(t *testing.T) {
	for _, c := range initramfs.Compressions {
		a, b := debian(t), debian(t)
		a.Compression, b.Compression = c, c
		ma, err := Build(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
		mb, err := Build(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ma.Files {
			if ma.Files[i] != mb.Files[i] {
				t.Errorf("%s: %+v and %+v", c, ma.Files[i], mb.Files[i])
			}
		}
	}
}

func TestBadInputsAreRefusedWithTheReason(t *testing.T) {
	o := debian(t)
	cfg := filepath.Join(t.TempDir(), "config")
	os.WriteFile(cfg, []byte("CONFIG_RD_GZIP=y\n"), 0o644)
	cases := map[string]struct {
		mod  func(*Options)
		want string
	}{
		"dynamic installer": {func(o *Options) { o.Installer = iptest.File(t, "/bin/ls", "coreutils") }, "dynamic loader"},
		"missing installer": {func(o *Options) { o.Installer = "/nonexistent/osim-installer" }, "/nonexistent/osim-installer"},
		"zstd unsupported":  {func(o *Options) { o.Compression = initramfs.Zstd; o.KernelConfig = cfg }, "CONFIG_RD_ZSTD"},
		"not a kernel":      {func(o *Options) { o.Kernel = cfg }, "bzImage"},
		"no modules tree":   {func(o *Options) { o.ModulesDir = t.TempDir() }, "modules.dep"},
	}
	for name, c := range cases {
		x := o
		c.mod(&x)
		if _, err := Build(context.Background(), x); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, c.want)
		}
	}
}

// TestRegisterUploadsEveryFileAndCreatesABootImage runs against the real
// manager on a temporary MDB.
func TestRegisterUploadsEveryFileAndCreatesABootImage(t *testing.T) {
	o := debian(t)
	o.NBPs = []NBP{{Arch: "bios", Path: iptest.File(t, "/usr/lib/ipxe/undionly.kpxe", "ipxe")},
		{Arch: "efi-x64", Path: iptest.File(t, "/usr/lib/ipxe/snponly.efi", "ipxe")}}
	m, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := mgrtest.Start(t)
	img, err := Register(t.Context(), c, o.Out, "osim-installer", "1")
	if err != nil {
		t.Fatal(err)
	}
	if img.Kind != api.KindBoot || img.Cmdline != m.Cmdline || len(img.Files) != 4 {
		t.Fatalf("registered %+v", img)
	}
	for _, f := range m.Files {
		var buf bytes.Buffer
		if _, err := c.DownloadBlob(t.Context(), f.SHA256, 0, &buf); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if h := sha256.Sum256(buf.Bytes()); hex.EncodeToString(h[:]) != f.SHA256 {
			t.Errorf("%s: the manager holds other bytes", f.Name)
		}
	}
	// Registering again uploads nothing new and names the duplicate.
	if _, err := Register(t.Context(), c, o.Out, "osim-installer", "1"); err == nil {
		t.Error("the same name and version registered twice")
	}
}

func sha(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
