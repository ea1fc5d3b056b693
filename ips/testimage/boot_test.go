package testimage

import (
	"strings"
	"testing"
	"time"

	"osim/ips/initramfs"
	"osim/ips/internal/iptest"
)

// TestDiskBootsUnderBIOSAndUEFIAndPrintsItsSeed is the proof of the disk
// assembly: the test OS boots from its own GPT disk (virtio-blk) under
// SeaBIOS (gptmbr.bin → syslinux) and OVMF (systemd-boot), finds its
// root and prints the hostname and SSH key of the seed written into it.
func TestDiskBootsUnderBIOSAndUEFIAndPrintsItsSeed(t *testing.T) {
	iptest.Tools(t)
	k := iptest.Kernel(t)
	bb := iptest.File(t, "/bin/busybox", "busybox-static")
	ovmf := iptest.File(t, "/usr/share/ovmf/OVMF.fd", "ovmf")
	seed := &Seed{Hostname: "tgt-042", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOsimTestKey osim@lab", "ssh-rsa AAAAB3second"}}
	res, err := Build(t.Context(), Options{Out: t.TempDir(), Kernel: k, Busybox: bb, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("disk: %d bytes raw (sha256 %s), %d bytes zstd; %d modules for %s", res.Disk.Raw.Size, res.Disk.Raw.SHA256, res.Disk.Compressed.Size, len(res.Modules), res.Release)
	want := "OSIM-INSTALLED hostname=tgt-042 ssh_key=" + seed.SSHKeys[0]
	for _, fw := range []struct{ name, bios string }{{"bios", ""}, {"uefi", ovmf}} {
		t.Run(fw.name, func(t *testing.T) {
			b := iptest.BootQEMU(t, res.Disk.Raw.Path, fw.bios, Marker, 5*time.Minute)
			if b.Line != want {
				tail := b.Console
				if len(tail) > 4000 {
					tail = tail[len(tail)-4000:]
				}
				t.Fatalf("%s: console line %q, want %q; console tail:\n%s", fw.name, b.Line, want, tail)
			}
			if strings.Contains(b.Console, "OSIM-ERROR") {
				t.Fatalf("%s: the test OS reported an error", fw.name)
			}
			t.Logf("%s: marker after %v", fw.name, b.Elapsed.Round(100*time.Millisecond))
		})
	}
}

// TestWithoutASeedItSaysSo: the image as built for the lab (no seed; the
// installer writes one) boots and reports the seed missing. Its initramfs
// is zstd, so this also proves Debian's kernel unpacks what we compress.
func TestWithoutASeedItSaysSo(t *testing.T) {
	iptest.Tools(t)
	res, err := Build(t.Context(), Options{Out: t.TempDir(), Kernel: iptest.Kernel(t), Busybox: iptest.File(t, "/bin/busybox", "busybox-static"), Compression: initramfs.Zstd})
	if err != nil {
		t.Fatal(err)
	}
	b := iptest.BootQEMU(t, res.Disk.Raw.Path, "", Marker, 5*time.Minute)
	if want := "OSIM-INSTALLED hostname=? seed=missing"; b.Line != want {
		t.Fatalf("console line %q, want %q; console:\n%s", b.Line, want, b.Console)
	}
	t.Logf("bios: marker after %v", b.Elapsed.Round(100*time.Millisecond))
}

func TestSeedIsCloudInitNoCloud(t *testing.T) {
	s := Seed{Hostname: "h1", SSHKeys: []string{"ssh-ed25519 AAA a@b"}}
	if md := s.MetaData(); !strings.Contains(md, "local-hostname: h1\n") || !strings.Contains(md, "instance-id: ") {
		t.Errorf("meta-data %q", md)
	}
	if ud := s.UserData(); !strings.HasPrefix(ud, "#cloud-config\n") || !strings.Contains(ud, "ssh_authorized_keys:\n  - ssh-ed25519 AAA a@b\n") {
		t.Errorf("user-data %q", ud)
	}
}
