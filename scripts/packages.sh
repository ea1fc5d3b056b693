#!/usr/bin/env bash
# The Debian packages `make run` and `make test` need, installed when
# missing: idempotent, and silent and quick (one dpkg-query) when all are
# there; `apt-get update` only when something is missing. Run as root or
# with sudo; without either it names what is missing and goes on (the
# tests that need it skip, or fail under CI=true).
set -euo pipefail

cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO="sudo"
	else
		SUDO="none"
	fi
fi

# Packages: clients for the interop tests (tftp-hpa, atftp, curl), iproute2
# for namespace tests, the benchmark's peer servers (tftpd-hpa, dnsmasq-base),
# which must be installable but never left running, the QEMU lab (real
# BIOS/iPXE and OVMF firmware booting Debian's kernel with a busybox initramfs),
# clang/llvm to regenerate the XDP program (bpf/), and mkfs.ext4 and mount
# for the disk-full tests (they mount a tmpfs and ext4 on a loop device),
# kea-admin for perfdhcp (the random-MAC DHCP flood test), and what osim-ips
# assembles disk images with (dosfstools, mtools, syslinux for BIOS,
# systemd-boot for UEFI, zstd to check its output) for the install lab;
# qemu-img for osim-ips build's disk kind; debootstrap, Debian's netboot
# installer and ssh for the long labs (make lab-reimage, OSIM_LAB_FULL=1);
# Debian's python3 modules cloud-init imports, for the autoinstall seed test
# (cloud-init itself is unpacked below, not installed); Chromium for the
# console's browser test; OpenIPMI's ipmi_sim and ipmitool for the power
# drivers' test against a real BMC; libvirt for the libvirt driver's test
# (it starts libvirtd itself when none runs); Node.js to run redocly, the
# OpenAPI linter (installed below; npm comes with it or is added there);
# systemd for systemd-analyze and systemd-sysusers, which the packaging
# test (deploy/debian) runs on the .debs it installs into a tree, and
# shellcheck for its maintainer scripts and scripts/package.sh.
# (promtool, for the alert rules, is unpacked below, not installed.)
packages=(tftp-hpa atftp curl iproute2 tftpd-hpa dnsmasq-base
	qemu-system-x86 ipxe-qemu ipxe ovmf linux-image-amd64 busybox-static cpio ethtool
	clang llvm libbpf-dev e2fsprogs mount kea-admin
	dosfstools mtools syslinux syslinux-common syslinux-efi systemd-boot-efi zstd fdisk
	qemu-utils debootstrap debian-installer-12-netboot-amd64 openssh-client
	python3 python3-requests python3-yaml python3-configobj python3-jinja2 python3-jsonpatch
	python3-jsonschema python3-oauthlib python3-netifaces
	chromium openipmi ipmitool libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu vagrant vagrant-libvirt
	groff-base nodejs systemd shellcheck)

missing=()
installed="$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null | awk '$4 == "installed" {print $1}' || true)"
for p in "${packages[@]}"; do
	if ! grep -qx "$p" <<<"$installed"; then
		missing+=("$p")
	fi
done

if [ "$SUDO" = none ]; then
	# Not root: nothing below may be done (installing, stopping services).
	if [ "${#missing[@]}" -gt 0 ]; then
		echo "packages: missing ${missing[*]}; run as root (or with sudo) to install them" >&2
	fi
	exit 0
fi

if [ "${#missing[@]}" -gt 0 ]; then
	echo "packages: installing ${missing[*]}"
	# Keep maintainer scripts from starting daemons (tftpd-hpa ships an init
	# script): invoke-rc.d consults policy-rc.d, and 101 means "not allowed".
	policy=/usr/sbin/policy-rc.d
	own_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
		$SUDO chmod 755 "$policy"
		own_policy=1
	fi
	cleanup_policy() {
		if [ "$own_policy" -eq 1 ]; then
			$SUDO rm -f "$policy"
		fi
	}
	trap cleanup_policy EXIT
	$SUDO apt-get update
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
	cleanup_policy
	trap - EXIT
fi

# Whatever installed them, no TFTP or DHCP daemon may run as a service: the
# tests and the benchmark start their own peers on their own ports. Keep the
# packaged services from starting at boot...
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	for svc in tftpd-hpa atftpd dnsmasq; do
		$SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
	done
elif command -v update-rc.d >/dev/null 2>&1; then
	for svc in tftpd-hpa atftpd dnsmasq; do
		if [ -e "/etc/init.d/$svc" ]; then
			$SUDO update-rc.d "$svc" disable >/dev/null 2>&1 || true
		fi
	done
fi
# ...and stop one already running. The init script's "stop" kills every
# in.tftpd by name (benchmark peers included), so instead stop exactly the
# process holding the service ports: TFTP 69, DHCP 67, proxyDHCP 4011.
if command -v ss >/dev/null 2>&1; then
	for port in 69 67 4011; do
		for pid in $($SUDO ss -Hulpn "sport = :$port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
			exe="$(basename "$($SUDO readlink "/proc/$pid/exe" 2>/dev/null || true)")"
			case "$exe" in
			in.tftpd | atftpd | dnsmasq)
				echo "packages: stopping service $exe (pid $pid) on UDP port $port"
				$SUDO kill "$pid" || true
				;;
			esac
		done
	done
fi

# cloud-init's own code reads the NoCloud seed in the autoinstall test
# (controlplane/agent/cloudinit_test.go). Unpacked, not installed: an
# installed cloud-init would configure this machine at its next boot.
cloudinit_dir=/opt/osim-test/cloud-init
if [ ! -d "$cloudinit_dir/usr/lib/python3/dist-packages/cloudinit" ]; then
	tmp="$(mktemp -d)"
	(cd "$tmp" && apt-get download cloud-init >/dev/null 2>&1) ||
		{ $SUDO apt-get update >/dev/null && (cd "$tmp" && apt-get download cloud-init); }
	$SUDO mkdir -p "$cloudinit_dir"
	$SUDO dpkg-deb -x "$tmp"/cloud-init_*.deb "$cloudinit_dir"
	rm -rf "$tmp"
	echo "packages: unpacked cloud-init into $cloudinit_dir"
fi

# promtool checks and unit-tests the alert rules and parses the dashboards'
# queries (deploy/deploy_test.go). Unpacked from Debian's prometheus
# package, not installed: installed, it is a Prometheus server (and the
# node exporter it recommends) running as a service on this machine.
# promtool needs no library but libc, so it runs from the unpacked tree.
prometheus_dir=/opt/osim-test/prometheus
if [ ! -x "$prometheus_dir/usr/bin/promtool" ]; then
	tmp="$(mktemp -d)"
	(cd "$tmp" && apt-get download prometheus >/dev/null 2>&1) ||
		{ $SUDO apt-get update >/dev/null && (cd "$tmp" && apt-get download prometheus); }
	$SUDO mkdir -p "$prometheus_dir"
	$SUDO dpkg-deb -x "$tmp"/prometheus_*.deb "$prometheus_dir"
	rm -rf "$tmp"
	echo "packages: unpacked prometheus (promtool) into $prometheus_dir"
fi

# redocly lints the manager's OpenAPI document (controlplane/manager/
# openapi_lint_test.go): this version, in this prefix, installed when the
# prefix holds another or none (replacing it whole). npm is part of
# NodeSource's Node.js build (which conflicts with Debian's npm package) and
# Debian's npm package otherwise. redocly 1.x, which runs on Node.js 18.17
# or later, so on Debian 12's own nodejs (18.19; 2.x needs 20.19): 1.34.20,
# as 1.34.21 depends on a @redocly/respect-core 1.34.21 never published.
redocly_version=1.34.20
redocly_dir=/opt/osim-test/redocly
if ! grep -qs "\"version\": \"$redocly_version\"" "$redocly_dir/node_modules/@redocly/cli/package.json"; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "packages: installing npm"
		$SUDO apt-get update >/dev/null
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends npm
	fi
	echo "packages: installing @redocly/cli@$redocly_version into $redocly_dir"
	$SUDO rm -rf "$redocly_dir"
	$SUDO mkdir -p "$redocly_dir"
	$SUDO npm install --prefix "$redocly_dir" --no-audit --no-fund --no-update-notifier --loglevel=error \
		"@redocly/cli@$redocly_version" >/dev/null
fi

# libvirt's packaged "default" network (a bridge with its own DHCP) must
# never start on this machine: the tests make their own networks.
$SUDO rm -f /etc/libvirt/qemu/networks/autostart/default.xml

