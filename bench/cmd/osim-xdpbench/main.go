// osim-xdpbench measures the XDP fast path (issue 5), as root: ns per
// packet through BPF_PROG_TEST_RUN, and osim-bootd's CPU and the real
// clients' offer latency under a random-MAC DHCP storm, without and with
// the guard and the XDP program (bench/xdp/storm.Run says how).
//
// `make bench-xdp` runs it; the figures go into bench/RESULTS.md.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"osim/bench/xdp/storm"
	"osim/internal/testlab"
)

func main() {
	var o storm.Options
	flag.StringVar(&o.Bootd, "bootd", "bin/osim-bootd", "the osim-bootd binary the storm runs")
	flag.IntVar(&o.Clients, "clients", 20, "real clients (MACs on the allow list), booted round robin")
	flag.DurationVar(&o.Window, "window", 10*time.Second, "how long each storm lasts")
	flag.IntVar(&o.Repeat, "repeat", 1_000_000, "runs per Program.Benchmark")
	out := flag.String("out", "", "also write the report (markdown) here")
	flag.Parse()
	if err := testlab.NeedRoot("BPF, network namespaces"); err != nil {
		fail(err)
	}
	var rep strings.Builder
	if err := storm.Run(io.MultiWriter(os.Stdout, &rep), o); err != nil {
		fail(err)
	}
	if *out != "" {
		if err := os.WriteFile(*out, []byte(rep.String()), 0o644); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "osim-xdpbench:", err)
	os.Exit(1)
}
