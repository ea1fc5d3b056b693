#!/usr/bin/env bash
# `make run`: the whole system on one machine. A manager (Badger MDB) and one
# boot server (osim-bootd with its agent, Badger copy, full DHCP, TFTP, HTTP)
# each in its own network namespace, N simulated PXE targets in a third; a
# demo boot image and disk image registered, a mass reimage ordered by label selector,
# the targets played by the Go PXE client (the one the tests use) until every
# order is done; then the manager stays up with its URL and an admin token
# printed until Ctrl-C. Needs root (namespaces); nothing outside the repo and
# Debian's packages.
#
#   OSIM_DEMO_TARGETS=20   how many simulated targets (1..150)
#   OSIM_DEMO_EXIT=1       exit after the demo instead of keeping the manager up (tests)
#
#   [root ns] dmr 10.77.9.1 ── dmg 10.77.9.2 [manager ns: osim-manager :8080]
#                                      10.77.0.1 ── 10.77.0.2 [boot server ns: osim-bootd]
#                                                             br0 10.78.0.1 ── N veths ── [targets ns]
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$repo/bin"
n="${OSIM_DEMO_TARGETS:-20}"
if [ "$(id -u)" -ne 0 ]; then
	echo "make run needs root: it builds network namespaces for the manager, the boot server and the targets" >&2
	exit 2
fi
if [ "$n" -lt 1 ] || [ "$n" -gt 150 ]; then
	echo "OSIM_DEMO_TARGETS must be 1..150 (the demo pool has 150 addresses)" >&2
	exit 2
fi
tag="$$"
mgr="osimdemo-mgr-$tag" bs="osimdemo-bs-$tag" tg="osimdemo-tg-$tag"
demo="$(mktemp -d /tmp/osim-demo.XXXXXX)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for ns in "$tg" "$bs" "$mgr"; do ip netns del "$ns" 2>/dev/null || true; done
	ip link del "dmr$tag" 2>/dev/null || true
	rm -rf "$demo"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Namespaces and links.
for ns in "$mgr" "$bs" "$tg"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "dmr$tag" type veth peer name dmg netns "$mgr"
ip addr add 10.77.9.1/24 dev "dmr$tag"; ip link set "dmr$tag" up
ip -n "$mgr" addr add 10.77.9.2/24 dev dmg; ip -n "$mgr" link set dmg up
ip -n "$mgr" link add up0 type veth peer name up0 netns "$bs"
ip -n "$mgr" addr add 10.77.0.1/24 dev up0; ip -n "$mgr" link set up0 up
ip -n "$bs" addr add 10.77.0.2/24 dev up0; ip -n "$bs" link set up0 up
ip -n "$bs" link add br0 type bridge
ip -n "$bs" addr add 10.78.0.1/24 dev br0; ip -n "$bs" link set br0 up
ifs=()
for i in $(seq 1 "$n"); do
	ip -n "$bs" link add "p$i" type veth peer name "t$i" netns "$tg"
	ip -n "$bs" link set "p$i" master br0; ip -n "$bs" link set "p$i" up
	ip -n "$tg" link set "t$i" address "$(printf '52:54:00:de:%02x:%02x' $((i / 256)) $((i % 256)))"
	ip -n "$tg" link set "t$i" up
	ifs+=("t$i")
done

# The manager: an admin token for us, then (over the API: a join token is
# bound to a site and here to the one boot server) a join token.
mkdir -p "$demo/manager" "$demo/bootd/tftp"
admin="$("$bin/osim-manager" token create --role admin --name demo-admin --data-dir "$demo/manager")"
ip netns exec "$mgr" "$bin/osim-manager" serve --listen 0.0.0.0:8080 --data-dir "$demo/manager" \
	--metrics-listen 0.0.0.0:9170 --heartbeat-interval 2s > "$demo/manager.log" 2>&1 &
pids+=($!)
url=http://10.77.9.2:8080
for _ in $(seq 1 100); do
	curl -sf "$url/healthz" >/dev/null && break
	sleep 0.1
done
OSIM_SERVER="$url" OSIM_TOKEN="$admin" "$bin/osimctl" -o json tokens create --role join --site demo --name bootd-demo-1 |
	sed -n 's/^ *"token": *"\(osim_[a-z0-9]*\)".*/\1/p' > "$demo/join.token"

# The boot server: iPXE's NBPs from Debian's ipxe package when present.
for f in undionly.kpxe snponly.efi; do
	if [ -f "/usr/lib/ipxe/$f" ]; then cp "/usr/lib/ipxe/$f" "$demo/bootd/tftp/"; else head -c 200000 /dev/urandom > "$demo/bootd/tftp/$f"; fi
done
cat > "$demo/bootd.yaml" <<CFG
address: 10.78.0.1
metrics_listen: 10.77.0.2:9169
data_dir: $demo/bootd/data
dhcp:
  mode: full
  pools: [{network: 10.78.0.0/24, start: 10.78.0.100, end: 10.78.0.249, lease_time: 1h}]
tftp: {root: $demo/bootd/tftp}
http: {listen: 10.78.0.1:8080}
boot:
  boot_files: {bios: undionly.kpxe, efi-x64: snponly.efi}
  unknown: ignore
xdp: {interface: br0}   # PXE DHCP classified and rate-limited at the NIC (generic XDP on the bridge)
manager:
  url: http://10.77.0.1:8080
  join_token_file: $demo/join.token
  name: bootd-demo-1
  site: demo
CFG
ip netns exec "$bs" "$bin/osim-bootd" serve --config "$demo/bootd.yaml" > "$demo/bootd.log" 2>&1 &
pids+=($!)

sleep 0.5
for i in 0 1; do
	if ! kill -0 "${pids[$i]}" 2>/dev/null; then
		echo "the $([ $i = 0 ] && echo manager || echo boot server) exited at start:" >&2
		cat "$demo/manager.log" "$demo/bootd.log" >&2
		exit 1
	fi
done
echo "manager up at $url; boot server bootd-demo-1 (site demo) on 10.78.0.1; $n targets"
status=0
OSIM_TOKEN="$admin" "$bin/osim-demo" --server "$url" --netns "$tg" --ifaces "$(IFS=,; echo "${ifs[*]}")" --site demo --timeout "${OSIM_DEMO_TIMEOUT:-5m}" || status=$?
if [ "$status" -ne 0 ]; then
	echo "--- manager log (last 30 lines)"; tail -n 30 "$demo/manager.log"
	echo "--- boot server log (last 30 lines)"; tail -n 30 "$demo/bootd.log"
fi
echo "--- boot server: XDP and DHCP counters"
ip netns exec "$bs" curl -s http://10.77.0.2:9169/metrics |
	grep -E '^osim_xdp_(mode|packets_total)|^osim_dhcp_packets_total|^osim_agent_(synced_revision|events_uploaded_total)' |
	grep -v ' 0$' || true
if [ "${OSIM_DEMO_EXIT:-0}" = 1 ]; then
	exit "$status"
fi
cat <<MSG

The manager stays up until Ctrl-C (everything is removed then):
  Console: $url/ui/  (sign in with the admin token below)
  export OSIM_SERVER=$url OSIM_TOKEN=$admin
  $bin/osimctl targets list
  $bin/osimctl orders list
  $bin/osimctl bootservers list
  $bin/osimctl events tail --follow
  curl -s http://10.77.9.2:9170/metrics | grep ^osim_manager_
  Logs: $demo/manager.log $demo/bootd.log
MSG
wait "${pids[0]}"
