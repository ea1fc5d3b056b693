#!/usr/bin/env bash
# make bench-tftp: the TFTP benchmark. Installs the peer servers if missing,
# builds osim-bootd and the bench, and runs the matrix; extra arguments go
# to `osim-tftpbench run` (e.g. -quick, -servers tftpd-hpa,atftpd, -cells single).
# Needs root: peers switch to nobody, dnsmasq runs in a network namespace.
set -euo pipefail

cd "$(dirname "$0")/../.."
peers=bench/.peers

if [[ $EUID -ne 0 ]]; then
	echo "bench-tftp: needs root (network namespace for dnsmasq, peers that switch to nobody)" >&2
	exit 1
fi

# tftpd-hpa and dnsmasq from Debian. Installing tftpd-hpa starts its system
# service on port 69 where an init system runs; the bench starts its own, so
# that one is stopped again (and a running one would only compete for CPU).
missing=()
[[ -x /usr/sbin/in.tftpd ]] || missing+=(tftpd-hpa)
[[ -x /usr/sbin/dnsmasq ]] || missing+=(dnsmasq-base)
command -v ip >/dev/null || missing+=(iproute2)
if ((${#missing[@]})); then
	echo "bench-tftp: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
	if [[ " ${missing[*]} " == *" tftpd-hpa "* ]]; then
		service tftpd-hpa stop >/dev/null 2>&1 || /etc/init.d/tftpd-hpa stop >/dev/null 2>&1 || true
		systemctl disable --now tftpd-hpa >/dev/null 2>&1 || true
	fi
fi

# atftpd conflicts with tftpd-hpa as a package, so it is only unpacked.
if [[ ! -x $peers/usr/sbin/atftpd ]]; then
	echo "bench-tftp: unpacking atftpd into $peers" >&2
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get download atftpd >/dev/null 2>&1) || { apt-get update -qq && (cd "$tmp" && apt-get download atftpd); }
	mkdir -p "$peers"
	dpkg-deb -x "$tmp"/atftpd_*.deb "$peers"
fi
# Its runtime libraries (libwrap, pcre2) come with the atftp client package.
if ldd "$peers/usr/sbin/atftpd" | grep -q 'not found'; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libwrap0 libpcre2-8-0
fi

mkdir -p bin
go build -o bin/ ./cmd/osim-bootd ./bench/cmd/...
exec bin/osim-tftpbench run "$@"
