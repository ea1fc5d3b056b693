# Shared by the lab scripts (source it): an isolated namespace "$ns" with a
# bridge br0 at 10.77.0.1/24 and no uplink, tap ports for QEMU guests, and a
# cleanup that ends every process in the lab's namespaces and removes them.
# The caller sets ns (and optionally work) before sourcing: the cleanup trap
# is set here, so a failure before lab_up still removes what exists.

lab_cleanup() {
	set +e
	local n
	for n in "$ns" "$ns-site"; do
		ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null
	done
	sleep 0.5
	for n in "$ns" "$ns-site"; do
		ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$n" 2>/dev/null
	done
	[ -n "${work:-}" ] && rm -rf "$work"
}

trap lab_cleanup EXIT INT TERM

lab_up() {
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" link add br0 type bridge
	ip -n "$ns" addr add 10.77.0.1/24 dev br0
	ip -n "$ns" link set br0 up
	# Replies leave the bridge with the UDP checksum left to offload; QEMU's
	# e1000 hands them to the guest unfinished and iPXE drops them ("bad udp
	# cksum" in a capture, DHCP never completes). Compute them in software.
	ip netns exec "$ns" ethtool -K br0 tx off >/dev/null
}

# lab_tap NAME: a tap port tap-NAME on br0 for a guest; lab_untap NAME removes it.
lab_tap() {
	ip -n "$ns" tuntap add dev "tap-$1" mode tap
	ip -n "$ns" link set "tap-$1" master br0 up
}
lab_untap() { ip -n "$ns" link del "tap-$1"; }
