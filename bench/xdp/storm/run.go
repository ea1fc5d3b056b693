// Package storm is osim-xdpbench's engine: the XDP fast path measured per
// packet and under a random-MAC DHCP storm (bench/xdp floods it) while real
// PXE clients boot through osim-bootd.
package storm

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Options is what `osim-xdpbench` measures with.
type Options struct {
	Bootd   string        // the osim-bootd binary the storm runs
	Clients int           // real clients (MACs on the allow list), booted round robin
	Window  time.Duration // how long each storm lasts
	Repeat  int           // runs per Program.Benchmark
}

// Run measures the XDP fast path, as root, and writes the report
// (markdown) to w:
//
//  1. ns per packet per class through BPF_PROG_TEST_RUN (Program.Benchmark);
//  2. a DHCP storm: random-MAC PXE DISCOVERs flooded over a veth (AF_PACKET,
//     as fast as one core sends) while real PXE clients (internal/pxeclient)
//     boot from the other side, served by the real `osim-bootd serve`
//     (standalone, the clients as targets): its CPU seconds (from /proc)
//     and the clients' offer latency, once without an xdp section (the
//     userspace path alone), once with `xdp: {}` (the Go guard only), once
//     with `xdp: {interface: ...}` (the XDP program attached).
func Run(w io.Writer, o Options) error {
	if err := micro(w, o.Repeat); err != nil {
		return err
	}
	bin, err := filepath.Abs(o.Bootd)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		return fmt.Errorf("-bootd: %w", err)
	}
	return storms(w, bin, o.Clients, o.Window)
}
