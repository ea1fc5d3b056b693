package recipe

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"osim/controlplane/api"
)

// files makes the inputs the recipes below name, in a fresh folder.
func files(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"disk.img", "vmlinuz", "initrd.gz", "preseed.cfg", "osim-installer", "root.tar.gz", "post.sh"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "rootdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mistakes(t *testing.T, err error) []string {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a recipe.Error", err)
	}
	return e.Mistakes
}

func TestExampleRecipesOfEveryKindAreValid(t *testing.T) {
	dir := files(t)
	for kind, y := range map[string]string{
		KindDebian: `kind: debian
name: deb12
version: "1"
debian: {suite: bookworm, mirror: "http://archive.example/debian", packages: [openssh-server, curl], kernel: linux-image-amd64, locale: C.UTF-8, timezone: Etc/UTC}
image:
  cmdline: 'console=ttyS0,115200 {{if param "debug"}}debug{{end}}'
  parameters:
    - {name: debug, type: bool, default: "false"}
    - {name: ssh_key, type: string, required: true, description: the admin key}
    - {name: root_password, type: string, secret: true, default: s3cret}
    - {name: swap_mb, type: int, default: 512}
  procedures:
    - {name: motd, when: firstboot, script: "echo hi > /etc/motd"}
    - {name: post, when: post, file: post.sh}
  install: {disk: {min_size: 4G, max_size: 2T}, grow_last_partition: true, on_failure: poweroff, finish: reboot}
  disk: {size: 2G, esp_size: 64M}
`,
		KindRootfs: "kind: rootfs\nname: r\nversion: 1.0\nrootfs: {tarball: root.tar.gz, kernel: /boot/vmlinuz, initrd: /boot/initrd.img}\nimage: {disk: {root_size: 100M}}\n",
		KindDisk:   "kind: disk\nname: d\nversion: 2\ndisk: {path: disk.img, format: qcow2}\nimage: {install: {disk: {path: /dev/vda}}}\n",
		KindInstaller: "kind: installer\nname: di\nversion: 12\ninstaller: {kernel: vmlinuz, initrds: [initrd.gz], answer: {flavor: preseed, template: preseed.cfg}}\n" +
			"image: {cmdline: 'auto=true url={{.BaseURL}}/answer/{{.Order}}'}\n",
		KindBoot: "kind: boot\nname: osim-installer\nversion: 1\nboot: {installer: osim-installer, nbps: true, modules: [virtio_blk], compression: zstd}\n",
	} {
		r, err := Parse([]byte(y), dir)
		if err != nil {
			t.Errorf("%s: %v", kind, err)
			continue
		}
		if r.Kind != kind || r.Arch != "amd64" {
			t.Errorf("%s: read kind %q arch %q", kind, r.Kind, r.Arch)
		}
	}
}

func TestEveryKeyMistakeIsNamedByItsKeyPath(t *testing.T) {
	dir := files(t)
	const disk = "kind: disk\nname: d\nversion: 1\ndisk: {path: disk.img}\n"
	for _, c := range []struct{ yaml, want string }{
		{"", "(top): the recipe is empty"},
		{"- a\n", "(top): want a mapping of keys, got a list"},
		{"name: d\nversion: 1\n", "kind: required: one of debian, rootfs, disk, installer, boot"},
		{"kind: vm\nname: d\nversion: 1\n", `kind: "vm": want one of debian, rootfs, disk, installer, boot`},
		{"kind: debian\nversion: 1\n", "name: required"},
		{"kind: debian\nname: ../x\nversion: 1\n", `name: "../x": 1-63 letters`},
		{"kind: debian\nname: d\n", "version: required"},
		{"kind: debian\nname: d\nversion: 1 2\n", `version: "1 2": 1-63 letters`},
		{"kind: debian\nname: d\nversion: 1\narch: arm64\n", `arch: "arm64": want amd64`},
		{"kind: debian\nname: d\nversion: 1\ncolour: red\n", "colour: unknown key (want one of arch, boot, debian, disk, image, installer, kind, name, rootfs, version)"},
		{"kind: debian\nkind: disk\nname: d\nversion: 1\n", "kind: given twice"},
		{"kind: debian\nname: d\nversion: 1\ndebian: [a]\n", "debian: want a mapping of keys, got a list"},
		{"kind: debian\nname: d\nversion: 1\ndebian: {suite: Book Worm}\n", `debian.suite: "Book Worm" is not a suite name`},
		{"kind: debian\nname: d\nversion: 1\ndebian: {mirror: ftp.example}\n", `debian.mirror: "ftp.example" is not an http(s):// or file:// URL`},
		{"kind: debian\nname: d\nversion: 1\ndebian: {packages: [ok, Not_OK]}\n", `debian.packages[1]: "Not_OK" is not a Debian package name`},
		{"kind: debian\nname: d\nversion: 1\ndebian: {packages: curl}\n", `debian.packages: want a list, got "curl"`},
		{"kind: debian\nname: d\nversion: 1\ndebian: {kernel: Linux}\n", `debian.kernel: "Linux" is not a Debian package name`},
		{"kind: debian\nname: d\nversion: 1\ndebian: {locale: en US}\n", `debian.locale: "en US" is not a locale`},
		{"kind: debian\nname: d\nversion: 1\ndebian: {timezone: ../../etc/passwd}\n", `debian.timezone: "../../etc/passwd" is not a time zone`},
		{"kind: debian\nname: d\nversion: 1\ndebian: {release: x}\n", "debian.release: unknown key"},
		{"kind: debian\nname: d\nversion: 1\ndisk: {path: disk.img}\n", "disk: a disk section in a recipe of kind debian"},
		{"kind: rootfs\nname: d\nversion: 1\n", "rootfs: required for kind rootfs"},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {kernel: /boot/k}\n", "rootfs: give dir or tarball"},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {dir: rootdir, tarball: root.tar.gz}\n", "rootfs: give dir or tarball, not both"},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {dir: nowhere}\n", `rootfs.dir: "nowhere": no such file or directory`},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {dir: disk.img}\n", `rootfs.dir: "disk.img" is not a folder`},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {tarball: disk.img}\n", `rootfs.tarball: "disk.img": want a .tar, .tar.gz, .tgz or .tar.zst`},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {tarball: gone.tar}\n", `rootfs.tarball: "gone.tar": no such file or directory`},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {dir: rootdir, kernel: boot/vmlinuz}\n", `rootfs.kernel: "boot/vmlinuz": want an absolute path inside the root`},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {dir: rootdir, initrd: /boot/../../x}\n", `rootfs.initrd: "/boot/../../x": want an absolute path inside the root`},
		{"kind: disk\nname: d\nversion: 1\ndisk: {format: raw}\n", "disk.path: required"},
		{"kind: disk\nname: d\nversion: 1\ndisk: {path: disk.img, format: vmdk}\n", `disk.format: "vmdk": want raw or qcow2`},
		{"kind: disk\nname: d\nversion: 1\ndisk: {path: rootdir}\n", `disk.path: "rootdir" is not a regular file`},
		{"kind: installer\nname: d\nversion: 1\ninstaller: {initrds: [initrd.gz], answer: {flavor: preseed, template: preseed.cfg}}\n", "installer.kernel: required"},
		{"kind: installer\nname: d\nversion: 1\ninstaller: {kernel: vmlinuz, answer: {flavor: preseed, template: preseed.cfg}}\n", "installer.initrds: required"},
		{"kind: installer\nname: d\nversion: 1\ninstaller: {kernel: vmlinuz, initrds: [initrd.gz, nope.gz], answer: {flavor: preseed, template: preseed.cfg}}\n", `installer.initrds[1]: "nope.gz": no such file`},
		{"kind: installer\nname: d\nversion: 1\ninstaller: {kernel: vmlinuz, initrds: [initrd.gz], answer: {flavor: jumpstart, template: preseed.cfg}}\n", `installer.answer.flavor: "jumpstart": want preseed or kickstart or autoinstall`},
		{"kind: installer\nname: d\nversion: 1\ninstaller: {kernel: vmlinuz, initrds: [initrd.gz], answer: {flavor: preseed}}\n", "installer.answer.template: required"},
		{"kind: installer\nname: d\nversion: 1\ninstaller: {kernel: vmlinuz, initrds: [initrd.gz], answer: {flavor: preseed, template: preseed.cfg, url: x}}\n", "installer.answer.url: unknown key"},
		{"kind: boot\nname: d\nversion: 1\nboot: {nbps: true}\n", "boot.installer: required"},
		{"kind: boot\nname: d\nversion: 1\nboot: {installer: osim-installer, nbps: yes}\n", `boot.nbps: "yes" is not true or false`},
		{"kind: boot\nname: d\nversion: 1\nboot: {installer: osim-installer, compression: xz}\n", `boot.compression: "xz": want gzip or zstd`},
		{"kind: boot\nname: d\nversion: 1\nboot: {installer: osim-installer, kernel: nokernel}\n", `boot.kernel: "nokernel": no such file`},
		{"kind: boot\nname: d\nversion: 1\nboot: {installer: osim-installer}\nimage: {parameters: [{name: a}]}\n", "image.parameters: a boot image takes no parameters"},
		{"kind: boot\nname: d\nversion: 1\nboot: {installer: osim-installer}\nimage: {procedures: [{name: a, when: pre, script: x}]}\n", "image.procedures: a boot image runs no procedures"},
		{disk + "image: {cmdline: '{{.Nope}}'}\n", "image.cmdline: "},
		{disk + "image: {kernel: x}\n", "image.kernel: unknown key"},
		{disk + "image: {parameters: [{type: int}]}\n", "image.parameters[0].name: required"},
		{disk + "image: {parameters: [{name: _x}]}\n", `image.parameters[0].name: "_x": 1-63 letters`},
		{disk + "image: {procedures: [{name: a b, when: pre, script: x}]}\n", `image.procedures[0].name: "a b": 1-63 letters`},
		{disk + "image: {procedures: [{name: a, when: pre, script: '" + strings.Repeat("x", MaxScript+1) + "'}]}\n", "image.procedures[0].script: 65537 bytes, at most 65536"},
		{"kind: installer\nname: d\nversion: 1\ninstaller: {kernel: vmlinuz, initrds: [initrd.gz], answer: {flavor: preseed, template: preseed.cfg}}\nimage: {procedures: [{name: a, when: firstboot, script: x}]}\n", "image.procedures[0].when: firstboot is for disk images"},
		{disk + "image: {parameters: [{name: a}, {name: a}]}\n", `image.parameters[1].name: "a" is given twice`},
		{disk + "image: {parameters: [{name: a, type: float}]}\n", `image.parameters[0].type: "float": want string or int or bool`},
		{disk + "image: {parameters: [{name: a, type: int, default: ten}]}\n", `image.parameters[0].default: "ten" is not an int`},
		{disk + "image: {parameters: [{name: a, type: bool, default: maybe}]}\n", `image.parameters[0].default: "maybe" is not true or false`},
		{disk + "image: {parameters: [{name: a, required: true, default: x}]}\n", "image.parameters[0].required: a required parameter with a default is never missing"},
		{disk + "image: {parameters: [{name: a, secret: 1}]}\n", `image.parameters[0].secret: "1" is not true or false`},
		{disk + "image: {parameters: [{name: a, hint: x}]}\n", "image.parameters[0].hint: unknown key"},
		{disk + "image: {parameters: {name: a}}\n", "image.parameters: want a list, got a mapping"},
		{disk + "image: {procedures: [{when: pre, script: x}]}\n", "image.procedures[0].name: required"},
		{disk + "image: {procedures: [{name: a, script: x}]}\n", "image.procedures[0].when: required"},
		{disk + "image: {procedures: [{name: a, when: later, script: x}]}\n", `image.procedures[0].when: "later": want pre or post or firstboot`},
		{disk + "image: {procedures: [{name: a, when: pre}]}\n", "image.procedures[0]: give script or file"},
		{disk + "image: {procedures: [{name: a, when: pre, script: x, file: post.sh}]}\n", "image.procedures[0]: give script or file, not both"},
		{disk + "image: {procedures: [{name: a, when: pre, file: gone.sh}]}\n", `image.procedures[0].file: "gone.sh": no such file`},
		{disk + "image: {procedures: [{name: a, when: pre, script: x}, {name: a, when: post, script: y}]}\n", `image.procedures[1].name: "a" is given twice`},
		{disk + "image: {install: {disk: {path: sda}}}\n", `image.install.disk.path: "sda" is not a /dev path`},
		{disk + "image: {install: {disk: {min_size: lots}}}\n", `image.install.disk.min_size: "lots" is not a size`},
		{disk + "image: {install: {disk: {min_size: 2T, max_size: 1T}}}\n", "image.install.disk: min_size 2199023255552 is above max_size 1099511627776"},
		{disk + "image: {install: {disk: {wwn: x}}}\n", "image.install.disk.wwn: unknown key"},
		{disk + "image: {install: {grow_last_partition: sure}}\n", `image.install.grow_last_partition: "sure" is not true or false`},
		{disk + "image: {install: {on_failure: retry}}\n", `image.install.on_failure: "retry": want wait or poweroff`},
		{disk + "image: {install: {finish: halt}}\n", `image.install.finish: "halt": want reboot or kexec or poweroff`},
		{"kind: installer\nname: d\nversion: 1\ninstaller: {kernel: vmlinuz, initrds: [initrd.gz], answer: {flavor: preseed, template: preseed.cfg}}\nimage: {install: {finish: reboot}}\n", "image.install: only disk images"},
		{disk + "image: {disk: {size: 1G}}\n", "image.disk: only debian and rootfs recipes assemble a disk"},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {dir: rootdir}\nimage: {disk: {size: 1G, root_size: 500M}}\n", "image.disk: give size (the root takes the rest) or root_size, not both"},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {dir: rootdir}\nimage: {disk: {esp_size: 1M}}\n", "image.disk.esp_size: 1048576 bytes: at least 32M"},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {dir: rootdir}\nimage: {disk: {size: 80M}}\n", "image.disk.size: 83886080 bytes leave less than 32M for the root"},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {dir: rootdir}\nimage: {disk: {root_size: -1}}\n", `image.disk.root_size: "-1" is not a size`},
		{"kind: rootfs\nname: d\nversion: 1\nrootfs: {dir: rootdir}\nimage: {disk: {sectors: 9}}\n", "image.disk.sectors: unknown key"},
	} {
		_, err := Parse([]byte(c.yaml), dir)
		if err == nil {
			t.Errorf("accepted:\n%s\nwant %q", c.yaml, c.want)
			continue
		}
		m := mistakes(t, err)
		if !slices.ContainsFunc(m, func(s string) bool { return strings.HasPrefix(s, c.want) }) {
			t.Errorf("recipe:\n%s\nmistakes %q\nwant one starting %q", c.yaml, m, c.want)
		}
	}
}

func TestAllMistakesAreReportedAtOnce(t *testing.T) {
	y := `kind: rootfs
name: bad name
version: ""
arch: riscv64
rootfs: {dir: nowhere, colour: red}
image:
  parameters: [{name: a, type: int, default: x}]
  procedures: [{name: p, when: sometime}]
`
	_, err := Parse([]byte(y), t.TempDir())
	m := mistakes(t, err)
	for _, key := range []string{"name:", "version:", "arch:", "rootfs.colour:", "rootfs.dir:", "image.parameters[0].default:", "image.procedures[0].when:", "image.procedures[0]:"} {
		if !slices.ContainsFunc(m, func(s string) bool { return strings.HasPrefix(s, key+" ") }) {
			t.Errorf("no mistake for %s in %q", key, m)
		}
	}
	if !strings.Contains(err.Error(), "has 8 mistake(s)") {
		t.Errorf("error %q does not count the 8 mistakes", err)
	}
}

func TestASecretDefaultStaysOutOfErrorsDefaultsAndThePublicRecipe(t *testing.T) {
	const secret = "Hunter2-NotAnInt"
	y := "kind: disk\nname: d\nversion: 1\ndisk: {path: disk.img}\nimage: {parameters: [{name: pw, type: int, secret: true, default: " + secret + "}]}\n"
	_, err := Parse([]byte(y), files(t))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("error %v shows the secret (or none)", err)
	}
	y = "kind: disk\nname: d\nversion: 1\ndisk: {path: disk.img}\nimage: {parameters: [{name: pw, secret: true, default: " + secret + "}, {name: user, default: root}]}\n"
	r, err := Parse([]byte(y), files(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Defaults(); d["pw"] != "" || d["user"] != "root" {
		t.Errorf("defaults %v", d)
	}
	pub := r.Public()
	if pub.Image.Parameters[0].Default != "" || r.Image.Parameters[0].Default != secret {
		t.Errorf("public %+v, recipe %+v", pub.Image.Parameters, r.Image.Parameters)
	}
}

func TestDiskLayoutSizeLeavesTheRestToTheRoot(t *testing.T) {
	esp, root := DiskLayout{Size: 1 << 30}.Sizes()
	if esp != DefaultESP || esp+root+2<<20 != 1<<30 {
		t.Errorf("esp %d root %d", esp, root)
	}
	r, err := Parse([]byte("kind: disk\nname: d\nversion: 1\ndisk: {path: disk.img}\nimage: {install: {disk: {min_size: 1G}, finish: poweroff}}\n"), files(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := (api.InstallSettings{Disk: api.DiskRule{MinSize: 1 << 30}, Finish: api.FinishPowerOff}); *r.Image.Install != want {
		t.Errorf("install %+v", *r.Image.Install)
	}
}

func TestLoadResolvesPathsAgainstTheRecipesFolder(t *testing.T) {
	dir := files(t)
	p := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(p, []byte("kind: disk\nname: d\nversion: 1\ndisk: {path: disk.img}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Resolve(r.Disk.Path); got != filepath.Join(dir, "disk.img") {
		t.Errorf("resolved %q", got)
	}
	if err := os.WriteFile(p, []byte("kind: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("error %v does not name the file", err)
	}
}

// TestExampleRecipesHaveNoMistakes: the examples of the docs are valid
// recipes, but for input files this machine may lack.
func TestExampleRecipesHaveNoMistakes(t *testing.T) {
	ex, _ := filepath.Glob("testdata/*.yaml")
	kinds := map[string]bool{}
	for _, p := range ex {
		r, err := Load(p)
		if err == nil {
			kinds[r.Kind] = true
			continue
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: %v", p, err)
		}
		for _, m := range e.Mistakes {
			if !strings.HasSuffix(m, "no such file or directory") {
				t.Errorf("%s: %s", p, m)
			}
		}
	}
	if len(ex) != len(Kinds) {
		t.Errorf("%d examples for %d kinds", len(ex), len(Kinds))
	}
	t.Logf("valid here: %v", kinds)
}
