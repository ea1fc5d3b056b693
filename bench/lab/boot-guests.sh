#!/usr/bin/env bash
# Boots real PXE firmware against osim-bootd serve in an isolated namespace:
# a legacy BIOS guest (iPXE's PXE ROM on e1000) and a UEFI guest (OVMF's own
# PXE client on virtio-net, chainloading snponly.efi). Each must boot Debian's
# kernel with a busybox initramfs whose init prints a marker on the serial
# console and powers off. MODE=proxy (default) runs dnsmasq next to it giving
# addresses only, the site DHCP server osim-bootd must not disturb.
#
#   bash bench/lab/boot-guests.sh [OUTDIR]     GUESTS="bios uefi" BOOT_SECS=150
# Needs root and Debian's qemu-system-x86 ipxe-qemu ipxe ovmf linux-image-amd64
# busybox-static cpio dnsmasq-base ethtool; bin/osim-bootd built (make build).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$repo/bench/lab/out}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
ns="osimlab-$$"
work="$(mktemp -d)"
boot_secs="${BOOT_SECS:-150}"
guests="${GUESTS:-bios uefi}"
marker="OSIM-LAB-BOOTED"

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

kernel="$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)"
[ -n "$kernel" ] || { echo "no kernel in /boot: apt-get install linux-image-amd64" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "no /bin/busybox: apt-get install busybox-static" >&2; exit 1; }
bootd="${OSIM_BOOTD:-$repo/bin/osim-bootd}"
[ -x "$bootd" ] || { echo "build first: make build (or set OSIM_BOOTD)" >&2; exit 1; }

# The initramfs: busybox and an init that says it booted and powers off.
mkdir -p "$work/initramfs/bin" "$work/initramfs/dev" "$work/tftp" "$work/files"
# The kernel gives init /dev/console only if the initramfs has the node.
mknod -m 600 "$work/initramfs/dev/console" c 5 1
cp /bin/busybox "$work/initramfs/bin/busybox"
ln -s busybox "$work/initramfs/bin/sh"
cat > "$work/initramfs/init" <<INIT
#!/bin/sh
/bin/busybox mkdir -p /proc
/bin/busybox mount -t proc proc /proc
echo "$marker \$(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
INIT
chmod +x "$work/initramfs/init"
(cd "$work/initramfs" && find . | cpio -o -H newc --quiet | gzip -1 > "$work/files/initrd.gz")
cp "$kernel" "$work/files/vmlinuz"
cp /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/snponly.efi "$work/tftp/"
chmod -R a+rX "$work"

cat > "$work/serve.yaml" <<CFG
address: 10.77.0.1
dhcp:
  mode: ${MODE:-proxy}
  pools: [{network: 10.77.0.0/24, start: 10.77.0.100, end: 10.77.0.200, router: 10.77.0.1, lease_time: 1h}]
data_dir: $work/data
tftp: {root: $work/tftp}
http: {files: $work/files}
boot: {arches: [bios, efi-x64], boot_files: {bios: undionly.kpxe, efi-x64: snponly.efi}, unknown: ignore}
images:
  lab: {kernel: vmlinuz, initrds: [initrd.gz], cmdline: "console=ttyS0 panic=-1 osim.order={{.Order}}"}
targets:
  - {mac: "52:54:00:77:00:01", image: lab, order: lab-bios, token: t1}
  - {mac: "52:54:00:77:00:02", image: lab, order: lab-uefi, token: t2}
CFG

lab_up

if [ "${MODE:-proxy}" = proxy ]; then
	# The site's DHCP server, addresses only and no boot options, is another
	# host on the segment: its own namespace, a veth into the bridge.
	ip netns add "$ns-site"
	ip -n "$ns" link add site0 type veth peer name eth0 netns "$ns-site"
	ip -n "$ns" link set site0 master br0 up
	ip -n "$ns-site" link set lo up
	ip -n "$ns-site" addr add 10.77.0.2/24 dev eth0
	ip -n "$ns-site" link set eth0 up
	ip netns exec "$ns-site" ethtool -K eth0 tx off >/dev/null
	ip netns exec "$ns-site" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --bind-interfaces --interface=eth0 \
		--dhcp-range=10.77.0.100,10.77.0.200,1h --log-facility="$out/site-dhcp.log" &
fi
ip netns exec "$ns" "$bootd" serve --config "$work/serve.yaml" --log-level debug 2> "$out/osim-bootd.log" &
sleep 1

rc=0
guest() { # name, qemu args...
	local name="$1"; shift
	lab_tap "$name"
	local start=$SECONDS
	timeout "$boot_secs" ip netns exec "$ns" qemu-system-x86_64 -accel tcg -m 512 -display none -no-reboot \
		-serial "file:$out/$name.serial" \
		-netdev "tap,id=n0,ifname=tap-$name,script=no,downscript=no" "$@" || true
	lab_untap "$name"
	if grep -aq "$marker" "$out/$name.serial"; then
		echo "PASS $name: booted in $((SECONDS - start)) s: $(grep -a "$marker" "$out/$name.serial" | tr -d '\r')"
	else
		echo "FAIL $name: no marker within ${boot_secs}s; serial tail:"; tail -c 600 "$out/$name.serial" | tr -d '\r'; echo
		rc=1
	fi
}
for g in $guests; do
	case "$g" in
	bios) guest bios -device e1000,netdev=n0,mac=52:54:00:77:00:01,romfile=/usr/lib/ipxe/qemu/pxe-e1000.rom -boot n ;;
	uefi) guest uefi -bios /usr/share/ovmf/OVMF.fd -device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:02,romfile= -boot n ;;
	esac
done
echo "logs in $out"
exit $rc
