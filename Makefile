# osim — see README.md. Go 1.26; `make test` is what CI runs (.ci/run).
GO      ?= go
BIN     := bin

.PHONY: all build test test-short vet fmt bench-tftp bench-sync run clean fuzz

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/... ./bench/cmd/...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

test: vet
	$(GO) test -race -count=1 -timeout 15m ./...

# Quick loop for development: no race detector, skips the slow interop cases.
test-short:
	$(GO) test -short -count=1 ./...

# Run each fuzz target for a while (FUZZTIME=30s by default).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./dataplane/tftp -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dataplane/tftp -run '^$$' -fuzz '^FuzzTransferReplies$$' -fuzztime $(FUZZTIME)

# TFTP benchmark against tftpd-hpa, atftpd and dnsmasq (needs root for dnsmasq's namespace).
bench-tftp:
	bash bench/tftp/run.sh $(BENCH_ARGS)

# Until the manager exists: osim-bootd serve (DHCP proxy on high ports, TFTP,
# HTTP boot) on loopback with a demo target; prints what to try.
run: build
	bash bench/demo/run.sh

clean:
	rm -rf $(BIN)

# Control plane scale: 100,000 targets + 100,000 orders synced to a fresh
# boot server (osim-manager and osim-bootd as processes on loopback).
SYNC_N ?= 100000
bench-sync: build
	$(BIN)/osim-syncbench -n $(SYNC_N) -bin $(BIN)
