package debian

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// osimCloudCfg makes cloud-init read the NoCloud seed the osim installer
// writes (/var/lib/cloud/seed/nocloud/{meta-data,user-data}) and nothing
// else: no network datasource is probed, so no boot waits on one. Root
// takes the order's SSH keys (no default user); the host name is the
// MDB's whole name (an FQDN stays one); the network is
// systemd-networkd's (below), not cloud-init's.
const osimCloudCfg = `# osim: the NoCloud seed only (written by the osim installer)
datasource_list: [ NoCloud, None ]
disable_root: false
users: []
network: {config: disabled}
ssh_pwauth: false
ssh_deletekeys: true
ssh_genkeytypes: [rsa, ecdsa, ed25519]
preserve_hostname: false
prefer_fqdn_over_hostname: true
resize_rootfs: true
growpart: {mode: auto, devices: ["/"]}
`

// dhcpNetwork: every Ethernet NIC (eth*, net.ifnames=0) by DHCP.
const dhcpNetwork = `[Match]
Name=eth* en*

[Network]
DHCP=ipv4
`

// sshHostKeys: the image carries no host keys (clones must differ);
// cloud-init makes them at first boot, and ssh-keygen -A covers a boot
// without cloud-init, before Debian's own check (sshd -t) that fails
// without keys.
const sshHostKeys = `[Unit]
After=cloud-init.service

[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
`

// initramfsConf: the drivers for any disk (virtio, SATA, NVMe, SCSI),
// not the build machine's (MODULES=dep would look at the host).
const initramfsConf = `MODULES=most
RESUME=none
`

// initramfsModules are loaded early whatever udev finds.
var initramfsModules = []string{"virtio_pci", "virtio_blk", "virtio_scsi", "ahci", "sd_mod", "nvme", "ext4"}

// configure turns the debootstrapped tree into a system that boots from
// any disk into multi-user with cloud-init and SSH, and that clones
// cleanly: no host keys, no machine id, no root password.
func configure(ctx context.Context, o Options, root string) error {
	steps := []struct {
		name string
		fn   func() error
	}{
		{"hostname", func() error { return writeHostname(root, o.Hostname) }},
		{"fstab", func() error {
			return write(root, "etc/fstab", "# osim: the root by label (ips/diskimage)\nLABEL="+RootLabel+" / ext4 errors=remount-ro 0 1\n", 0o644)
		}},
		{"apt sources", func() error { return writeSources(o, root) }},
		{"locale", func() error { return setLocale(ctx, root, o.Locale) }},
		{"timezone", func() error { return setTimezone(root, o.Timezone) }},
		{"cloud-init", func() error {
			return write(root, "etc/cloud/cloud.cfg.d/90_osim.cfg", osimCloudCfg, 0o644)
		}},
		{"network", func() error {
			if err := write(root, "etc/systemd/network/80-osim-dhcp.network", dhcpNetwork, 0o644); err != nil {
				return err
			}
			// resolv.conf was the build machine's (debootstrap copies it in)
			if err := write(root, "etc/resolv.conf", "", 0o644); err != nil {
				return err
			}
			_, err := inChroot(ctx, root, "systemctl", "enable", "systemd-networkd.service")
			return err
		}},
		{"ssh", func() error {
			if err := write(root, "etc/systemd/system/ssh.service.d/osim-host-keys.conf", sshHostKeys, 0o644); err != nil {
				return err
			}
			return removeGlob(root, "etc/ssh/ssh_host_*")
		}},
		{"machine id", func() error {
			// empty: systemd makes a new one at first boot
			if err := write(root, "etc/machine-id", "", 0o444); err != nil {
				return err
			}
			return removeGlob(root, "var/lib/dbus/machine-id")
		}},
		{"root password", func() error {
			_, err := inChroot(ctx, root, "usermod", "-p", "*", "root")
			return err
		}},
		{"initramfs", func() error { return initramfs(ctx, root) }},
		{"clean", func() error { return clean(root) }},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("debian: interrupted before %s: %w", s.name, err)
		}
		o.Log.Info("configure", "step", s.name)
		if err := s.fn(); err != nil {
			return fmt.Errorf("debian: configure %s: %w", s.name, err)
		}
	}
	return nil
}

// write puts content at root/rel, replacing a file or a symlink there.
func write(root, rel, content string, mode os.FileMode) error {
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

func removeGlob(root, pattern string) error {
	m, err := filepath.Glob(filepath.Join(root, pattern))
	if err != nil {
		return err
	}
	for _, p := range m {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

func writeHostname(root, name string) error {
	if err := write(root, "etc/hostname", name+"\n", 0o644); err != nil {
		return err
	}
	short, _, _ := strings.Cut(name, ".")
	return write(root, "etc/hosts", fmt.Sprintf("127.0.0.1\tlocalhost\n127.0.1.1\t%s %s\n::1\tlocalhost ip6-localhost ip6-loopback\n", name, short), 0o644)
}

// writeSources points apt at the archive the image was built from, plus
// the suite's -updates and -security entries of the machine's apt
// configuration where it has them.
func writeSources(o Options, root string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "deb %s %s main\n", o.Mirror, o.Suite)
	for _, s := range []string{o.Suite + "-updates", o.Suite + "-security"} {
		if m, err := FindMirror(o.AptDir, s); err == nil {
			fmt.Fprintf(&b, "deb %s %s main\n", m, s)
		}
	}
	return write(root, "etc/apt/sources.list", b.String(), 0o644)
}

// setLocale sets LANG; a locale other than C.UTF-8 (built in) is
// generated in the chroot.
func setLocale(ctx context.Context, root, locale string) error {
	if err := write(root, "etc/default/locale", "LANG="+locale+"\n", 0o644); err != nil {
		return err
	}
	if locale == "C.UTF-8" || locale == "C" || locale == "POSIX" {
		return nil
	}
	charset := "UTF-8"
	if _, cs, ok := strings.Cut(locale, "."); ok {
		charset = strings.Split(cs, "@")[0]
	}
	if err := write(root, "etc/locale.gen", locale+" "+charset+"\n", 0o644); err != nil {
		return err
	}
	_, err := inChroot(ctx, root, "locale-gen")
	return err
}

func setTimezone(root, tz string) error {
	zone := filepath.Join("/usr/share/zoneinfo", tz)
	if fi, err := os.Stat(filepath.Join(root, zone)); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("timezone %q: no %s in the image (tzdata)", tz, zone)
	}
	if err := write(root, "etc/timezone", tz+"\n", 0o644); err != nil {
		return err
	}
	p := filepath.Join(root, "etc/localtime")
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Symlink(zone, p)
}

// initramfs regenerates every installed kernel's initramfs with the
// drivers for any disk (see initramfsConf).
func initramfs(ctx context.Context, root string) error {
	if err := write(root, "etc/initramfs-tools/conf.d/osim.conf", initramfsConf, 0o644); err != nil {
		return err
	}
	if err := write(root, "etc/initramfs-tools/modules", "# osim: any disk\n"+strings.Join(initramfsModules, "\n")+"\n", 0o644); err != nil {
		return err
	}
	_, err := inChroot(ctx, root, "update-initramfs", "-u", "-k", "all")
	return err
}

// clean drops what only the build needed: downloaded packages, package
// lists, debootstrap's logs, the no-daemons policy.
func clean(root string) error {
	for _, g := range []string{"var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*",
		"var/log/bootstrap.log", "var/log/apt/*", "var/log/dpkg.log", "usr/sbin/policy-rc.d", "root/.bash_history"} {
		if err := removeGlob(root, g); err != nil {
			return err
		}
	}
	return nil
}
