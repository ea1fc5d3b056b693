#!/bin/sh
# Issue 11's random-MAC DHCP flood, the shape of cmd/osim-bootd's
# TestRandomMACFloodInNamespacesLeavesKnownClientsTheirLeases, against any osim-bootd
# binary and pool line, so builds before the fix (which know no allowed_relays) run it too.
# Root, perfdhcp (kea-admin), curl. Two namespaces joined by a veth: osim-bootd (full mode,
# 100-address pool, userspace XDP guard, one known target) at 10.97.0.1; perfdhcp relays
# from .2 (the flood: 1,000 DISCOVERs/s from up to 100,000 MACs for 3 s), .3 (the known
# target, 1 s in) and .4 (a relay no pool names). SPOOF_FIRST=1: only .4, on a fresh pool.
#   sudo bench/dhcpbench/flood.sh ./osim-bootd "{network: 10.97.0.0/24, start: 10.97.0.100,
#        end: 10.97.0.199, lease_time: 1h, allowed_relays: [10.97.0.2, 10.97.0.3]}"
set -u
BIN=$1; POOL=$2; D=$(mktemp -d); S=osim-fbs-$$; C=osim-fbc-$$
trap 'kill $P 2>/dev/null; ip netns del $S; ip netns del $C; rm -rf $D' EXIT
ip netns add $S; ip netns add $C
ip link add fbs$$ netns $S type veth peer name fbc$$ netns $C
ip -n $S link set lo up; ip -n $S addr add 10.97.0.1/24 dev fbs$$; ip -n $S link set fbs$$ up
ip -n $C link set lo up; for a in 2 3 4; do ip -n $C addr add 10.97.0.$a/24 dev fbc$$; done; ip -n $C link set fbc$$ up
mkdir -p $D/tftp $D/files
cat > $D/serve.yaml <<Y
address: 10.97.0.1
metrics_listen: 10.97.0.1:9167
data_dir: $D/data
dhcp:
  mode: full
  pools:
    - $POOL
tftp: {root: $D/tftp}
http: {files: $D/files}
xdp: {}
images: {deb: {kernel: debian/vmlinuz}}
targets: [{mac: "52:54:00:aa:00:01", image: deb, order: o-1, token: tok1}]
Y
ip netns exec $S $BIN serve --config $D/serve.yaml 2>$D/log & P=$!
sleep 1.5
if [ "${SPOOF_FIRST:-}" ]; then
  ip netns exec $C perfdhcp -4 -l 10.97.0.4 -r 200 -R 1000 -b mac=02:dd:00:00:00:00 -p 1 -W 500000 10.97.0.1 > $D/spoof0.txt 2>&1
  echo "spoofed relay first:"; grep -A2 "Statistics for" $D/spoof0.txt | grep -v "^--"
  ip netns exec $C curl -sf http://10.97.0.1:9167/metrics | grep -E "^osim_dhcp_(leases_active|refused_total)"
  exit 0
fi
ip netns exec $C perfdhcp -4 -l 10.97.0.2 -r 1000 -R 100000 -b mac=02:ee:00:00:00:00 -p 3 -W 1000000 10.97.0.1 > $D/flood.txt 2>&1 &
F=$!
sleep 0.5
echo "0.5 s into the flood: $(ip netns exec $C curl -sf http://10.97.0.1:9167/metrics | grep -E '^osim_dhcp_leases_active')"
sleep 0.5
ip netns exec $C perfdhcp -4 -l 10.97.0.3 -r 1 -R 1 -b mac=52:54:00:aa:00:01 -p 2 -W 1000000 10.97.0.1 > $D/known.txt 2>&1
wait $F
echo "flood:"; grep -A2 "Statistics for" $D/flood.txt | grep -v "^--"
echo "known:"; grep -A2 "Statistics for" $D/known.txt | grep -v "^--"
ip netns exec $C curl -sf http://10.97.0.1:9167/metrics | grep -E "^osim_dhcp_(leases_active|pool_exhausted_total|refused_total|lease_allocations_total)"
ip netns exec $C perfdhcp -4 -l 10.97.0.4 -r 200 -R 1000 -b mac=02:dd:00:00:00:00 -p 1 -W 500000 10.97.0.1 > $D/spoof.txt 2>&1
echo "spoofed relay:"; grep -A2 "Statistics for" $D/spoof.txt | grep -v "^--"
ip netns exec $C curl -sf http://10.97.0.1:9167/metrics | grep -E "^osim_dhcp_(leases_active|refused_total)"
