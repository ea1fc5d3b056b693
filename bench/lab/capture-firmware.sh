#!/usr/bin/env bash
# Boots QEMU guests (legacy BIOS with iPXE's PXE ROM; UEFI with OVMF's own
# PXE client) on an isolated bridge inside a network namespace of its own,
# with dnsmasq answering DHCP + TFTP, and records what each firmware sends
# (DHCP options, TFTP requests) with tcpdump. Needs root and Debian's
# qemu-system-x86 ipxe-qemu ipxe ovmf dnsmasq-base tcpdump. Nothing leaves
# the namespace: the bridge has no uplink.
#
#   bash bench/lab/capture-firmware.sh [OUTDIR]   (default bench/lab/out)
#   GUESTS="bios" BOOT_SECS=40 ... to run one guest for a given time; with socat
#   installed the guest's screen is saved as OUTDIR/NAME.ppm at the end.
set -euo pipefail
out="${1:-$(dirname "$0")/out}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
ns="osimlab-$$"
work="$(mktemp -d)"
boot_secs="${BOOT_SECS:-60}"

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

for bin in qemu-system-x86_64 dnsmasq tcpdump ethtool; do
	command -v "$bin" >/dev/null || { echo "missing $bin: apt-get install qemu-system-x86 ipxe-qemu ipxe ovmf dnsmasq-base tcpdump ethtool" >&2; exit 1; }
done

mkdir -p "$work/tftp"
cp /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/snponly.efi "$work/tftp/"
# The captured iPXE stage ends here: a script that just stops.
printf '#!ipxe\necho osim-lab: ipxe reached its script\npoweroff\n' > "$work/tftp/stop.ipxe"
chmod -R a+rX "$work"

lab_up

guest() { # name, qemu args...
	local name="$1"; shift
	lab_tap "$name"
	ip netns exec "$ns" tcpdump -i br0 -n -s 0 -w "$out/$name.pcap" 'udp and (port 67 or port 68 or port 69 or portrange 30000-30999)' >/dev/null 2>&1 &
	local tcpd=$!
	sleep 1
	local mon="$work/$name.mon"
	ip netns exec "$ns" qemu-system-x86_64 -accel tcg -m 256 -display none -serial "file:$out/$name.serial" \
		-monitor "unix:$mon,server,nowait" \
		-netdev "tap,id=n0,ifname=tap-$name,script=no,downscript=no" "$@" &
	local qemu=$!
	sleep "$boot_secs"
	# The screen tells what a VGA-only firmware (legacy BIOS) was doing.
	if command -v socat >/dev/null; then
		echo "screendump $out/$name.ppm" | socat - "UNIX-CONNECT:$mon" >/dev/null 2>&1 || true
		sleep 1
	fi
	kill "$qemu" 2>/dev/null; wait "$qemu" 2>/dev/null || true
	sleep 1
	kill "$tcpd" 2>/dev/null; wait "$tcpd" 2>/dev/null || true
	lab_untap "$name"
	tcpdump -r "$out/$name.pcap" -n -vvv > "$out/$name.txt" 2>/dev/null || true
	echo "== $name: $(grep -c 'BOOTP/DHCP' "$out/$name.txt" || true) DHCP packets, TFTP requests:"
	grep -Eo 'RRQ "[^"]*" [^)]*' "$out/$name.txt" | sort | uniq -c || true
}

ip netns exec "$ns" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --bind-interfaces --interface=br0 \
	--dhcp-range=10.77.0.100,10.77.0.200,1h --enable-tftp --tftp-root="$work/tftp" --tftp-port-range=30000,30999 \
	--dhcp-match=set:ipxe,175 --dhcp-userclass=set:ipxe2,iPXE \
	--dhcp-match=set:efi64,option:client-arch,7 --dhcp-match=set:efi64,option:client-arch,9 \
	--dhcp-boot=tag:!ipxe,tag:!ipxe2,tag:!efi64,undionly.kpxe --dhcp-boot=tag:!ipxe,tag:!ipxe2,tag:efi64,snponly.efi \
	--dhcp-boot=tag:ipxe2,stop.ipxe --log-dhcp --log-facility="$out/dnsmasq.log" &
sleep 1

guests="${GUESTS:-bios uefi}"
[[ " $guests " == *" bios "* ]] && guest bios -device e1000,netdev=n0,mac=52:54:00:77:00:01,romfile=/usr/lib/ipxe/qemu/pxe-e1000.rom -boot n
[[ " $guests " == *" uefi "* ]] && guest uefi -bios /usr/share/ovmf/OVMF.fd -device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:02,romfile= -boot n
echo "captures in $out"
