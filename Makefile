# osim — see README.md. Go 1.26; `make test` is what CI runs (.ci/run).
GO      ?= go
BIN     := bin
DEMO    := $(BIN)/demo-root
DEMO_ADDR ?= 127.0.0.1:6969
METRICS_ADDR ?= 127.0.0.1:9169

.PHONY: all build test test-short vet fmt bench-tftp run clean fuzz

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

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

# Until the appliance exists: serve a demo folder over TFTP on loopback.
run: build
	@mkdir -p $(DEMO)
	@test -f $(DEMO)/hello.txt || echo "hello from osim-bootd" > $(DEMO)/hello.txt
	@test -f $(DEMO)/demo-4m.bin || head -c 4194304 /dev/urandom > $(DEMO)/demo-4m.bin
	@echo "serving $(DEMO) on tftp://$(DEMO_ADDR) (metrics: http://$(METRICS_ADDR)/metrics); Ctrl-C stops"
	@echo "  fetch:  tftp $(subst :, ,$(DEMO_ADDR)) -m binary -c get hello.txt /tmp/hello.txt"
	@echo "          curl --tftp-blksize 1468 tftp://$(DEMO_ADDR)/demo-4m.bin -o /tmp/demo-4m.bin"
	@echo "          atftp --option 'blksize 1468' --option 'windowsize 16' -g -r demo-4m.bin -l /tmp/demo-4m.bin $(subst :, ,$(DEMO_ADDR))"
	$(BIN)/osim-bootd tftp --root $(DEMO) --listen $(DEMO_ADDR) --metrics-listen $(METRICS_ADDR)

clean:
	rm -rf $(BIN)
