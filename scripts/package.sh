#!/usr/bin/env bash
# Debian packages of osim-manager, osim-bootd, osimctl and osim-ips
# (`make package`): builds the binaries and man pages, then nfpm (a pinned
# release, built once into bin/) turns deploy/debian/nfpm/*.yaml into .debs.
#
#   scripts/package.sh [OUT_DIR]     default bin/pkg
#
# The version is the binaries' own (Go stamps it from the checkout:
# v0.0.0-20261207131632-7e41228ce64e becomes 0.0.0~git20261207131632.7e41228ce64e;
# a tag v1.2.3 becomes 1.2.3); OSIM_DEB_VERSION overrides it.
set -euo pipefail

cd "$(dirname "$0")/.."
out="${1:-bin/pkg}"
NFPM_VERSION=v2.48.0

go build -buildvcs=auto -o bin/ ./cmd/osim-manager ./cmd/osim-bootd ./cmd/osimctl ./cmd/osim-ips
CGO_ENABLED=0 go build -buildvcs=auto -o bin/ ./cmd/osim-installer

if [ ! -x bin/nfpm ] || ! go version -m bin/nfpm | grep -q "nfpm/v2[[:space:]]*${NFPM_VERSION}"; then
	echo "package: building nfpm ${NFPM_VERSION} into bin/"
	GOBIN="$PWD/bin" GOFLAGS=-mod=mod go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@${NFPM_VERSION}"
fi

if [ -z "${OSIM_DEB_VERSION:-}" ]; then
	v="$(bin/osim-manager version | awk '{print $2}')"
	case "$v" in
	v0.0.0-*) # a pseudo-version: v0.0.0-TIME-COMMIT[+dirty]
		rest="${v#v0.0.0-}"
		OSIM_DEB_VERSION="0.0.0~git${rest%%-*}.${rest#*-}"
		OSIM_DEB_VERSION="${OSIM_DEB_VERSION/+dirty/.dirty}"
		;;
	v[0-9]*) OSIM_DEB_VERSION="${v#v}" ;;
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
