#!/usr/bin/env bash
# Debian packages of osim-manager, osim-bootd, osimctl and osim-ips
# (`make package`): builds the binaries and man pages, then nfpm (a pinned
# release, built once into bin/) turns deploy/debian/nfpm/*.yaml into .debs.
#
#   scripts/package.sh [OUT_DIR]          default bin/pkg
#   scripts/package.sh --deb-version V    prints Go version V as a Debian one
#
# The version is the binaries' own (Go stamps it from the checkout, see
# deb_version); OSIM_DEB_VERSION overrides it.
set -euo pipefail

# deb_version prints Go module version $1 as a Debian upstream version that
# sorts the way Go's do (dpkg --compare-versions; deploy/debian's
# TestDebianVersionsSortAsGoVersions checks it):
#   v1.2.3                             1.2.3
#   v1.2.3-rc.1                        1.2.3~rc.1      (before 1.2.3)
#   v1.2.4-0.20261207131632-7e41228ce64e
#                                      1.2.4~0.20261207131632.7e41228ce64e
#                                      (a commit after a tag: before 1.2.4)
#   v0.0.0-20261207131632-7e41228ce64e 0.0.0~git20261207131632.7e41228ce64e
#                                      (no tag yet: by commit time)
#   v1.2.3+dirty                       1.2.3+dirty
# A pre-release's "-" becomes "~" (sorts before the release; a plain "-" in
# the upstream version would sort after it), the other "-" become ".".
# "+dirty" (a modified checkout) stays "+": it sorts after its clean
# version and, as in Go, before the next commit's pseudo-version
# (1.2.3~rc.1+dirty < 1.2.3~rc.1.0.2026...; dpkg puts "+" before ".",
# while 1.2.3~rc.1.dirty would sort above it: a letter beats a digit).
deb_version() {
	local v="${1#v}" build=""
	case "$v" in
	*+*)
		build="+${v#*+}"
		v="${v%%+*}"
		;;
	esac
	if [[ "$v" =~ ^0\.0\.0-([0-9]{14})-([0-9a-f]{12})$ ]]; then
		v="0.0.0~git${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
	elif [[ "$v" == *-* ]]; then
		local pre="${v#*-}"
		v="${v%%-*}~${pre//-/.}"
	fi
	printf '%s%s\n' "$v" "${build//-/.}"
}

if [ "${1:-}" = --deb-version ]; then
	deb_version "${2:?usage: package.sh --deb-version GO_VERSION}"
	exit 0
fi

cd "$(dirname "$0")/.."
out="${1:-bin/pkg}"
NFPM_VERSION=v2.48.0

# Static (no cgo): no libc dependency, and osim-bootd can drop its
# ambient capabilities on every thread (cmd/osim-bootd/caps.go).
CGO_ENABLED=0 go build -buildvcs=auto -o bin/ ./cmd/osim-manager ./cmd/osim-bootd ./cmd/osimctl ./cmd/osim-ips
CGO_ENABLED=0 go build -buildvcs=auto -o bin/ ./cmd/osim-installer

if [ ! -x bin/nfpm ] || ! go version -m bin/nfpm | grep -q "nfpm/v2[[:space:]]*${NFPM_VERSION}"; then
	echo "package: building nfpm ${NFPM_VERSION} into bin/"
	GOBIN="$PWD/bin" GOFLAGS=-mod=mod go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@${NFPM_VERSION}"
fi

if [ -z "${OSIM_DEB_VERSION:-}" ]; then
	v="$(bin/osim-manager version | awk '{print $2}')"
	case "$v" in
	v[0-9]*) OSIM_DEB_VERSION="$(deb_version "$v")" ;;
	*) # devel: no VCS stamp
		commit="$(bin/osim-manager version | sed -n 's/.*commit \([0-9a-f]*\).*/\1/p')"
		OSIM_DEB_VERSION="0.0.0~devel${commit:+.$commit}"
		;;
	esac
fi
export OSIM_DEB_VERSION

# The staging dir (the nfpm configs name it): binaries, gzipped man pages (as Debian ships them) and
# osimctl's completion scripts.
OSIM_PKG=bin/pkg-stage
rm -rf "$OSIM_PKG"
mkdir -p "$OSIM_PKG"
for c in osim-manager osim-bootd osimctl osim-ips osim-installer; do
	cp "bin/$c" "$OSIM_PKG/"
done
for c in osim-manager osim-bootd osimctl osim-ips; do
	"bin/$c" man | gzip -9n >"$OSIM_PKG/$c.1.gz"
done
bin/osimctl completion bash >"$OSIM_PKG/osimctl.bash"
bin/osimctl completion zsh >"$OSIM_PKG/_osimctl"

mkdir -p "$out"
for p in osim-manager osim-bootd osimctl osim-ips; do
	rm -f "$out/${p}_"*.deb
	bin/nfpm package --config "deploy/debian/nfpm/$p.yaml" --packager deb --target "$out/" >/dev/null
done
ls -1 "$out"/*.deb
