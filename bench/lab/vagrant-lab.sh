#!/usr/bin/env bash
# `make lab-vagrant`: the Vagrant lab from nothing to reimaged VMs (README.md,
# "Lab with Vagrant"). vagrant up makes the top-level Vagrantfile's box-less
# PXE targets on an isolated libvirt network; osim-manager and osim-bootd
# (full DHCP on that network's bridge) run here; a boot image and the test
# OS image are built and registered, the targets registered with their
# libvirt power spec, and a rollout started: osim powers the VMs on through
# virsh, they PXE boot, the osim installer writes the image, and each
# installed system prints OSIM-INSTALLED on its serial console and powers
# off. Then the manager stays up until Ctrl-C, and everything is removed.
#
# usage: bench/lab/vagrant-lab.sh [up|down]
#   up    (default) a fresh lab (what an earlier run left is removed first)
#   down  remove a lab kept with OSIM_LAB_KEEP=1: VMs, disks, network, files
#
# Needs root (osim-bootd serves DHCP and TFTP on ports 67 and 69), a
# libvirtd answering at qemu:///system, and Debian's vagrant,
# vagrant-libvirt, qemu-system-x86, ovmf, ipxe, linux-image-amd64,
# busybox-static, dosfstools, mtools, syslinux, syslinux-common,
# systemd-boot-efi, e2fsprogs, curl.
#
# Environment: the Vagrantfile's (OSIM_LAB_N=2, OSIM_LAB_MEMORY=768,
# OSIM_LAB_FIRMWARE=bios|uefi, OSIM_LAB_DISK=1G, OSIM_LAB_NET=10.78.0), and
#   OSIM_LAB_DIR=bin/lab-vagrant  manager and boot server data, logs, the
#                                 serial consoles, vagrant's machine state
#   OSIM_LAB_POOL_DIR=/var/lib/libvirt/images/osim-lab   the VMs' disks
#   OSIM_LAB_WAVE=N               targets per rollout wave (default: all at once)
#   OSIM_LAB_TIMEOUT=1200         seconds to wait for every installed system
#   OSIM_LAB_EXIT=1               exit once reimaged instead of staying up
#   OSIM_LAB_KEEP=1               keep the VMs at exit (remove them with `down`)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$repo/bin"
cmd="${1:-up}"
n="${OSIM_LAB_N:-2}"
firmware="${OSIM_LAB_FIRMWARE:-bios}"
net="${OSIM_LAB_NET:-10.78.0}"
dir="${OSIM_LAB_DIR:-$repo/bin/lab-vagrant}"
pool_dir="${OSIM_LAB_POOL_DIR:-/var/lib/libvirt/images/osim-lab}"
wave="${OSIM_LAB_WAVE:-$n}"
timeout="${OSIM_LAB_TIMEOUT:-1200}"
virsh=(virsh -c qemu:///system)
site=vagrant
url=http://127.0.0.1:9780

# The Vagrantfile reads these; vagrant keeps its machine state in $dir,
# not in the checkout, and makes no update check.
export OSIM_LAB_N="$n" OSIM_LAB_FIRMWARE="$firmware" OSIM_LAB_NET="$net"
export OSIM_LAB_NETWORK=osim-lab OSIM_LAB_POOL=osim-lab OSIM_LAB_PREFIX=osim-lab-
export OSIM_LAB_SERIAL_DIR="$dir/serial"
export VAGRANT_DOTFILE_PATH="$dir/vagrant" VAGRANT_DEFAULT_PROVIDER=libvirt VAGRANT_CHECKPOINT_DISABLE=1
cd "$repo"

say() { printf '\n== %s\n' "$*"; }
die() {
	echo "lab-vagrant: $*" >&2
	exit 1
}

# remove_vms removes the VMs (and with them their disks and the network
# vagrant made) and the disks' pool; the lab's files and logs stay.
remove_vms() {
	if [ -d "$VAGRANT_DOTFILE_PATH" ]; then
		vagrant destroy -f || true
	fi
	# Whatever vagrant no longer knows (its state gone, another OSIM_LAB_N).
	for d in $("${virsh[@]}" list --all --name | grep '^osim-lab-target' || true); do
		"${virsh[@]}" destroy "$d" >/dev/null 2>&1 || true
		"${virsh[@]}" undefine "$d" >/dev/null 2>&1 || true
	done
	"${virsh[@]}" net-destroy osim-lab >/dev/null 2>&1 || true
	"${virsh[@]}" net-undefine osim-lab >/dev/null 2>&1 || true
	"${virsh[@]}" pool-destroy osim-lab >/dev/null 2>&1 || true
	rm -rf "$pool_dir"
}

if [ "$(id -u)" -ne 0 ]; then
	die "needs root: osim-bootd serves DHCP (port 67) and TFTP (port 69) on the lab network, and libvirt's qemu:///system"
fi
command -v vagrant >/dev/null || die "no vagrant (apt-get install vagrant vagrant-libvirt)"
"${virsh[@]}" version >/dev/null 2>&1 ||
	die "no libvirtd answers at qemu:///system (apt-get install libvirt-daemon-system; systemctl start libvirtd)"
case "$cmd" in
down)
	remove_vms
	rm -rf "$dir"
	echo "lab removed"
	exit 0
	;;
up) ;;
*) die "usage: $0 [up|down]" ;;
esac

vagrant plugin list | grep -q vagrant-libvirt || die "vagrant has no libvirt provider (apt-get install vagrant-libvirt)"
for f in osim-manager osim-bootd osimctl osim-ips osim-installer; do
	[ -x "$bin/$f" ] || die "no $bin/$f: run make build"
done
for f in /usr/bin/qemu-system-x86_64 /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/snponly.efi /bin/busybox \
	/usr/lib/SYSLINUX/gptmbr.bin /usr/lib/systemd/boot/efi/systemd-bootx64.efi /sbin/mkfs.vfat /usr/bin/mcopy; do
	[ -e "$f" ] || die "needs $f (apt-get install qemu-system-x86 ipxe busybox-static syslinux-common systemd-boot-efi dosfstools mtools)"
done
if [ "$firmware" = uefi ] && [ ! -e /usr/share/ovmf/OVMF.fd ]; then
	die "OSIM_LAB_FIRMWARE=uefi needs /usr/share/ovmf/OVMF.fd (apt-get install ovmf)"
fi
arch=bios
[ "$firmware" = uefi ] && arch=efi-x64

say "a fresh lab in $dir (disks in $pool_dir)"
remove_vms
rm -rf "$dir"
mkdir -p "$dir/serial" "$dir/manager" "$dir/bootd/tftp" "$pool_dir"
chmod 755 "$pool_dir" # QEMU runs as libvirt-qemu
"${virsh[@]}" pool-create-as osim-lab dir --target "$pool_dir" >/dev/null

pids=()
stop_lab() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "${OSIM_LAB_KEEP:-0}" = 1 ]; then
		echo "VMs kept (OSIM_LAB_KEEP=1); remove them with: $0 down"
	else
		echo "removing the VMs, their network and disks (the logs stay in $dir)"
		remove_vms >/dev/null 2>&1 || true
	fi
}
trap stop_lab EXIT
trap 'exit 130' INT TERM

say "vagrant up: $n $firmware targets, ${OSIM_LAB_MEMORY:-768} MiB each, on the libvirt network osim-lab ($net.0/24, no DHCP, no forwarding)"
vagrant up
# vagrant starts them; with an empty disk they have nothing to boot yet.
# Off, so that it is osim that powers them on.
for i in $(seq 1 "$n"); do
	"${virsh[@]}" destroy "osim-lab-target$i" >/dev/null
done

say "osim-manager on $url, osim-bootd on $net.1 (full DHCP $net.100-$net.200)"
admin="$("$bin/osim-manager" token create --role admin --name lab-admin --data-dir "$dir/manager" 2>> "$dir/tokens.log")"
"$bin/osim-manager" token create --role join --site "$site" --name lab-bootd --data-dir "$dir/manager" 2>> "$dir/tokens.log" > "$dir/join.token"
chmod 600 "$dir/join.token"
"$bin/osim-manager" serve --listen "${url#http://}" --data-dir "$dir/manager" --heartbeat-interval 2s > "$dir/manager.log" 2>&1 &
pids+=($!)
for i in $(seq 1 100); do
	curl -sf "$url/healthz" >/dev/null 2>&1 && break
	[ "$i" -lt 100 ] || { tail -n 20 "$dir/manager.log" >&2; die "osim-manager does not answer at $url"; }
	sleep 0.1
done
export OSIM_SERVER="$url" OSIM_TOKEN="$admin"
cp /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/snponly.efi "$dir/bootd/tftp/"
cat > "$dir/bootd.yaml" <<CFG
address: $net.1
metrics_listen: 127.0.0.1:9781
data_dir: $dir/bootd/data
dhcp:
  mode: full
  pools: [{network: $net.0/24, start: $net.100, end: $net.200, router: $net.1, lease_time: 1h}]
tftp: {root: $dir/bootd/tftp}
http: {listen: "$net.1:8080"}
boot: {arches: [bios, efi-x64], boot_files: {bios: undionly.kpxe, efi-x64: snponly.efi}, unknown: ignore}
manager: {url: "$url", join_token_file: $dir/join.token, name: lab-bootd, site: $site}
CFG
"$bin/osim-bootd" serve --config "$dir/bootd.yaml" > "$dir/bootd.log" 2>&1 &
pids+=($!)
for i in $(seq 1 100); do
	"$bin/osimctl" bootservers list 2>/dev/null | grep -q 'lab-bootd.*healthy' && break
	if ! kill -0 "${pids[1]}" 2>/dev/null; then
		tail -n 20 "$dir/bootd.log" >&2
		die "osim-bootd exited at start (another DHCP server on port 67? libvirt's default network: virsh net-destroy default)"
	fi
	[ "$i" -lt 100 ] || { tail -n 20 "$dir/bootd.log" >&2; die "osim-bootd did not register with the manager"; }
	sleep 0.2
done
"$bin/osimctl" bootservers list

say "the boot image (osim installer) and the test OS image, built with osim-ips and registered"
"$bin/osim-ips" boot-image --out "$dir/images/boot" --register --name osim-installer --version vagrant-lab \
	>/dev/null 2> "$dir/boot-image.log" || { cat "$dir/boot-image.log" >&2; die "osim-ips boot-image failed"; }
boot_id="$(sed -n 's/.*boot image registered.* image=\([^ ]*\).*/\1/p' "$dir/boot-image.log")"
"$bin/osimctl" sites set "$site" --default-boot-image "$boot_id" >/dev/null
"$bin/osim-ips" test-image --out "$dir/images/os" >/dev/null 2> "$dir/test-image.log" ||
	{ cat "$dir/test-image.log" >&2; die "osim-ips test-image failed"; }
os_id="$("$bin/osimctl" -o json images register --name osim-test --version vagrant-lab --kind os --format disk \
	--disk "$dir/images/os/osim-test.img.zst" --raw-size "$(stat -c %s "$dir/images/os/osim-test.img")" \
	--install-grow --install-on-failure poweroff | sed -n 's/^  "id": "\(img-[^"]*\)".*/\1/p')"
[ -n "$boot_id" ] && [ -n "$os_id" ] || die "no image id (boot $boot_id, os $os_id); see $dir/*.log"
"$bin/osimctl" images list

say "targets, each with its libvirt power spec"
{
	echo "["
	for i in $(seq 1 "$n"); do
		printf '{"hostname": "target%d.lab.test", "macs": ["52:54:00:4f:53:%02x"], "arch": "%s", "site": "%s", "labels": {"lab": "vagrant"}, "power": {"driver": "libvirt", "domain": "osim-lab-target%d"}}%s\n' \
			"$i" "$i" "$arch" "$site" "$i" "$([ "$i" -lt "$n" ] && echo ,)"
	done
	echo "]"
} > "$dir/targets.json"
"$bin/osimctl" targets import "$dir/targets.json"
"$bin/osimctl" targets list | awk 'NR > 1 {print $1, $2}' > "$dir/hostnames" # target id -> host name

say "a rollout, $wave target(s) per wave: osim power-cycles each wave's VMs with network boot"
ro="$("$bin/osimctl" -o json orders rollout create --selector lab=vagrant --all --image "$os_id" --wave-size "$wave" |
	sed -n 's/^  "id": "\([^"]*\)".*/\1/p')"
[ -n "$ro" ] || die "the rollout was not created; see $dir/manager.log"
start=$(date +%s)
last=""
while :; do
	now=$(( $(date +%s) - start ))
	state="$("$bin/osimctl" -o json rollouts show "$ro" | sed -n 's/^  "state": "\([^"]*\)".*/\1/p')"
	installed=$( (grep -la OSIM-INSTALLED "$dir"/serial/*.log 2>/dev/null || true) | wc -l)
	orders="$("$bin/osimctl" orders list |
		awk 'NR == FNR {host[$1] = $2; next} FNR > 1 {printf "%s %s %s; ", host[$2], $5, $7}' "$dir/hostnames" -)"
	line="rollout $state; installed $installed/$n; orders: ${orders:-none yet}"
	if [ "$line" != "$last" ]; then
		printf '[%3ds] %s\n' "$now" "$line"
		last="$line"
	fi
	if [ "$state" != running ] && [ "$installed" -eq "$n" ]; then
		break
	fi
	if [ "$state" != running ] && [ "$state" != done ]; then
		"$bin/osimctl" rollouts show "$ro"
		die "the rollout is $state; logs: $dir/manager.log $dir/bootd.log, consoles: $dir/serial/"
	fi
	if [ "$now" -gt "$timeout" ]; then
		die "not every target installed within ${timeout}s; logs: $dir/manager.log $dir/bootd.log, consoles: $dir/serial/"
	fi
	sleep 5
done
say "reimaged in $(( $(date +%s) - start ))s: what each installed system printed on its serial console"
for f in "$dir"/serial/*.log; do
	printf '%s: %s\n' "$(basename "$f" .log)" "$(grep -a -o 'OSIM-INSTALLED.*' "$f" | tail -n 1 | tr -d '\r')"
done
"$bin/osimctl" rollouts show "$ro"
if [ "${OSIM_LAB_EXIT:-0}" = 1 ]; then
	exit 0
fi
cat <<MSG

The manager and the boot server stay up until Ctrl-C (the VMs are removed then, unless OSIM_LAB_KEEP=1):
  Console: $url/ui/  (sign in with the admin token below)
  export OSIM_SERVER=$url OSIM_TOKEN=$admin
  $bin/osimctl targets list; $bin/osimctl orders list; $bin/osimctl events tail --follow
  $bin/osimctl orders rollout create --selector lab=vagrant --all --image $os_id --wave-size 1   # again, in waves of one
  $bin/osimctl targets power 52:54:00:4f:53:01 on    # target1 boots again: its order is done, so its installed system
  virsh -c qemu:///system list --all; tail -f $dir/serial/target1.log
  Logs: $dir/manager.log $dir/bootd.log
MSG
wait "${pids[0]}"
