// Command osim-syncbench measures how fast a fresh boot server takes in a
// large MDB (bench/sync says how). `make bench-sync` runs it; figures go
// into bench/RESULTS.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	syncbench "osim/bench/sync"
)

func main() {
	o := syncbench.Options{Out: os.Stdout}
	flag.IntVar(&o.N, "n", 100_000, "targets and orders")
	flag.StringVar(&o.Bin, "bin", "bin", "where osim-manager and osim-bootd are")
	flag.BoolVar(&o.Keep, "keep", false, "keep the work directory")
	flag.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if err := syncbench.Run(o); err != nil {
		fmt.Fprintf(os.Stderr, "osim-syncbench: %v\n", err)
		os.Exit(1)
	}
}
