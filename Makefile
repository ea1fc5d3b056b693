# osim — see README.md. Go 1.26; `make test` is what CI runs (.ci/run).
GO      ?= go
BIN     := bin

.PHONY: bench-backup package man deps bench-rollout bench-console console-screenshots lab-reimage lab-vagrant all build test test-short vet fmt bench-tftp bench-sync run clean fuzz bench-xdp generate bench-mass bench-mass-smoke bench-mass-image bench-dhcp bench-blobs

all: build

# osim-installer is the init of the boot image: static (no cgo), so the
# initramfs needs no ld.so; osim-ips takes it from next to itself.
# Man pages from the same help text -h prints: bin/man/<command>.1
# (man -l bin/man/osimctl.1).
man: build
	mkdir -p $(BIN)/man
	for c in osim-manager osim-bootd osimctl osim-ips; do $(BIN)/$$c man > $(BIN)/man/$$c.1 || exit 1; done

# Backup and restore of an MDB of 100,000 targets and orders and a 256 MiB
# image, against tar of the stopped data dir (bench/RESULTS.md).
bench-backup:
	OSIM_MDB_BACKUP_BENCH=1 flock /tmp/osim-bench.lock $(GO) test -count=1 -run TestBackupScale -v -timeout 20m ./controlplane/mdb/

# Debian packages of osim-manager, osim-bootd, osimctl and osim-ips in
# bin/pkg/ (nfpm; hardened systemd units; deploy/debian/).
package:
	bash scripts/package.sh bin/pkg

# -buildvcs=auto stamps the commit into each binary (--version,
# osim_build_info) where a checkout is, whatever GOFLAGS says.
build:
	$(GO) build -buildvcs=auto -o $(BIN)/ ./cmd/... ./bench/cmd/...
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -o $(BIN)/ ./cmd/osim-installer

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# The Debian packages the tests and the demo need, installed when missing
# (scripts/packages.sh: under a second when all are there).
deps:
	@bash scripts/packages.sh

test: deps vet
	$(GO) test -race -count=1 -timeout 30m ./...

# Quick loop for development: no race detector, skips the slow interop cases.
test-short:
	$(GO) test -short -count=1 ./...

# Run each fuzz target for a while (FUZZTIME=30s by default).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./dataplane/tftp -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dataplane/tftp -run '^$$' -fuzz '^FuzzTransferReplies$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/cmdline -run '^$$' -fuzz '^FuzzCmdlineTemplate$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dataplane/httpboot -run '^$$' -fuzz '^FuzzStatusBody$$' -fuzztime $(FUZZTIME)
	$(GO) test ./controlplane/api -run '^$$' -fuzz '^FuzzSelector$$' -fuzztime $(FUZZTIME)
	$(GO) test ./controlplane/manager -run '^$$' -fuzz '^FuzzJSONBodies$$' -fuzztime $(FUZZTIME)

# TFTP benchmark against tftpd-hpa, atftpd and dnsmasq (needs root for dnsmasq's namespace).
bench-tftp:
	bash bench/tftp/run.sh $(BENCH_ARGS)

# Until the manager exists: osim-bootd serve (DHCP proxy on high ports, TFTP,
# HTTP boot) on loopback with a demo target; prints what to try.
run: deps build
	bash bench/demo/run.sh

clean:
	rm -rf $(BIN)

# The console's pages against a real manager with 10,000 targets (5,000
# with a live order), the API's own listing as the peer (issue 15).
bench-console:
	$(GO) test -run '^$$' -bench ConsolePages -benchtime 20x ./controlplane/console/

# Rewrite docs/console/*.png from the browser test (Debian's Chromium).
console-screenshots:
	mkdir -p docs/console
	OSIM_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run TestConsoleInARealBrowser ./controlplane/e2e/

# Control plane scale: 100,000 targets + 100,000 orders synced to a fresh
# boot server (osim-manager and osim-bootd as processes on loopback).
SYNC_N ?= 100000
bench-sync: build
	$(BIN)/osim-syncbench -n $(SYNC_N) -bin $(BIN)

# Regenerate the XDP program's bpf2go output (bpf/xdp_bpfel.{go,o}) with
# clang and llvm from Debian's packages; the output is committed, so a
# plain `go build` needs neither.
generate:
	$(GO) generate ./bpf/...

# XDP fast path (issue 5), as root: ns per packet per class through
# BPF_PROG_TEST_RUN, then a random-MAC DHCP storm over veth against the
# real `osim-bootd serve`: its CPU and real clients' offer latency, without
# an xdp section, with `xdp: {}` (Go guard) and with XDP attached.
XDP_WINDOW ?= 10s
bench-xdp:
	$(GO) build -o $(BIN)/osim-xdpbench ./bench/cmd/osim-xdpbench
	$(GO) build -o $(BIN)/osim-bootd ./cmd/osim-bootd
	$(BIN)/osim-xdpbench -bootd $(BIN)/osim-bootd -window $(XDP_WINDOW) $(BENCH_ARGS)

# Mass reimage (issue 6), as root: MASS_N simulated PXE targets (half BIOS
# iPXE ROM, half UEFI EDK2 -> iPXE) powered on within 1 s against a manager
# and osim-bootd (full DHCP) that osim-bench starts in its own namespaces;
# NBP 256 KiB over TFTP, kernel + initrd 8 MiB over HTTP; the boot server's
# counters checked against the clients'. Bounded: 170 s, cleans up itself.
# Then the peer comparison: the same MASS_N targets through DHCP + NBP only
# (proxyDHCP, the site's addresses static) against osim-bootd in proxy
# mode, dnsmasq at its defaults and dnsmasq with --tftp-max raised
# (osim-bench -compare, three rounds of the three servers in turn, figures
# pooled; bounded: 150 s per server run). Both run; either failing fails
# the target.
MASS_N ?= 2000
bench-mass: build
	s=0; \
	$(BIN)/osim-bench -n $(MASS_N) -json $(BIN)/bench-mass.json $(BENCH_ARGS) || s=1; \
	$(BIN)/osim-bench -compare -rounds 3 -n $(MASS_N) -json $(BIN)/bench-mass-compare.json $(BENCH_ARGS) || s=1; \
	exit $$s

# Mass reimage with a disk image (issue 13), as root: MASS_N targets
# (default 1000) boot the boot image and play the osim installer's install
# mode: inventory, GET /install/{order}, stream the MASS_IMAGE disk file
# (seeded random bytes) from the boot server's staged copy into io.Discard,
# sha256 checked, progress every 5 s, done. Reports time to done with the
# image (p50/p99), the boot server's HTTP egress and MB/s from its
# /metrics, and the installers' write rate. Skips (exit 0, a message) when
# the manager refuses disk-format images.
MASS_IMAGE ?= 64MiB
bench-mass-image: build
	$(BIN)/osim-bench -n $(or $(MASS_IMAGE_N),1000) -image-size $(MASS_IMAGE) -timeout 300s -json $(BIN)/bench-mass-image.json $(BENCH_ARGS)

# The same with 200 targets: a quick smoke run.
bench-mass-smoke: build
	s=0; \
	$(BIN)/osim-bench -n 200 -timeout 90s $(BENCH_ARGS) || s=1; \
	$(BIN)/osim-bench -compare -n 200 -timeout 60s $(BENCH_ARGS) || s=1; \
	exit $$s

# A rollout of simulated targets (issue 16), as root: ROLLOUT_N targets
# (default 2000) registered with the wol power driver, a rollout in waves
# of 250 with a failure budget of 25; osim wakes each machine (a magic
# frame from osim-bootd on the segment) once its order is staged, 2 % of
# the machines have a disk that fails mid-write. Run twice, without and
# with an egress ceiling on the boot server (ROLLOUT_CEILING, 300M/s):
# total time, time per wave, where the budget stopped it, egress.
ROLLOUT_N ?= 2000
ROLLOUT_CEILING ?= 300M/s
bench-rollout: build
	flock /tmp/osim-bench.lock $(BIN)/osim-bench -rollout -n $(ROLLOUT_N) -wave-size 250 -fail-rate 0.02 -failure-budget 25 -image-size 16MiB -json $(BIN)/bench-rollout.json $(BENCH_ARGS)
	flock /tmp/osim-bench.lock $(BIN)/osim-bench -rollout -n $(ROLLOUT_N) -wave-size 250 -fail-rate 0.02 -failure-budget 25 -image-size 16MiB -egress-ceiling $(ROLLOUT_CEILING) -json $(BIN)/bench-rollout-ceiling.json $(BENCH_ARGS)

# HTTP delivery of image blobs (issue 13), as root: the real osim-bootd
# (a manager-fed boot server serving its agent's staged blob at
# /files/images/<id>/<name>) against Debian's nginx (its own prefix, pid
# and logs in a temp dir, loopback only) serving the same 64 MiB file;
# 1, 100 and 1,000 concurrent readers each stream the whole file in 8 MiB
# Range requests; interleaved rounds; throughput, reader p50/p99, server
# CPU per GB, osim/nginx ratios. About 3-4 minutes.
bench-blobs:
	$(GO) build -o $(BIN)/ ./cmd/osim-bootd ./cmd/osim-manager ./bench/cmd/osim-blobbench
	flock /tmp/osim-bench.lock $(BIN)/osim-blobbench -bootd $(BIN)/osim-bootd -json $(BIN)/bench-blobs.json $(BENCH_ARGS)

# Full DHCP mode against ISC Kea (issue 6), as root: perfdhcp (kea-admin)
# drives osim-bootd (full mode, Badger leases) and kea-dhcp4 (memfile) in
# turn, each in its own namespace: the highest DORA rate sustained 10 s
# with no drops, latencies, then the same after a restart with all leases
# present (lease counts and addresses checked). Each server is pinned to
# CPU 0 and held to half of it (cgroup CPU bandwidth, -cpu-share 0.5) so
# the server, not perfdhcp on CPU 1, runs out first. About 9 minutes.
bench-dhcp:
	$(GO) build -o $(BIN)/osim-dhcpbench ./bench/cmd/osim-dhcpbench
	$(GO) build -o $(BIN)/osim-bootd ./cmd/osim-bootd
	$(BIN)/osim-dhcpbench -bootd $(BIN)/osim-bootd -out $(BIN)/bench-dhcp.md $(BENCH_ARGS)

# Issue 14's proof, as root (about 15-20 min, QEMU under TCG): builds a
# Debian 12 image with ips/debian (debootstrap from the archive of this
# machine's apt configuration; packages cached in OSIM_IPS_CACHE, default
# /var/tmp/osim-ips-cache) and ips/diskimage, registers it, reimages a
# BIOS and a UEFI guest through osim-manager + osim-bootd with the osim
# installer, and logs in to each over SSH with the key of the order.
lab-reimage:
	OSIM_LAB_FULL=1 flock /tmp/osim-bench.lock $(GO) test -count=1 -timeout 70m -v -run '^TestDebianImageReimagesAndBootsToSSH$$' ./bench/lab

# The Vagrant lab (issue 16), as root with libvirtd running: vagrant up
# makes the Vagrantfile's box-less PXE VMs (OSIM_LAB_N, OSIM_LAB_MEMORY,
# OSIM_LAB_FIRMWARE=bios|uefi), a manager and osim-bootd reimage them
# through a rollout that powers them with virsh; README "Lab with Vagrant".
lab-vagrant: build
	flock /tmp/osim-bench.lock bash bench/lab/vagrant-lab.sh up
