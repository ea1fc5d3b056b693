// Command osim-blobbench measures HTTP delivery of image blobs by
// osim-bootd against nginx (bench/blobs says how). `make bench-blobs`
// runs it; figures go into bench/RESULTS.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"osim/bench/blobs"
	"osim/controlplane/api"
)

func main() {
	o := blobs.Options{Log: os.Stderr}
	size := flag.String("size", "64MiB", "blob size (KiB, MiB, GiB suffixes)")
	chunk := flag.String("chunk", "8MiB", "bytes per Range request")
	readers := flag.String("readers", "1,100,1000", "concurrency levels, comma-separated")
	jsonOut := flag.String("json", "", "also write the report as JSON here")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.StringVar(&o.Bootd, "bootd", "bin/osim-bootd", "osim-bootd binary")
	flag.StringVar(&o.Manager, "manager", "", "osim-manager binary (default: next to -bootd)")
	flag.StringVar(&o.Path, "path", blobs.PathStaged, "how osim-bootd serves the blob: staged (registered, staged by the agent, /files/images/<id>/<name>) or folder (http.files)")
	flag.StringVar(&o.Nginx, "nginx", "/usr/sbin/nginx", "nginx binary")
	flag.StringVar(&o.Profile, "bootd-profile", "", "write osim-bootd's CPU profile here (absolute path)")
	flag.IntVar(&o.Rounds, "rounds", 2, "rounds per server per level (interleaved); small levels get more, up to -min-bytes")
	minBytes := flag.String("min-bytes", "2GiB", "least bytes per server per level")
	flag.Parse()
	var err error
	if o.MinBytes, err = parseSize(*minBytes); err != nil {
		fail(err)
	}
	if o.Size, err = parseSize(*size); err != nil {
		fail(err)
	}
	if o.Chunk, err = parseSize(*chunk); err != nil {
		fail(err)
	}
	for _, f := range strings.Split(*readers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fail(fmt.Errorf("-readers: %q is not a positive count", f))
		}
		o.Readers = append(o.Readers, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep, err := blobs.Run(ctx, o)
	if rep != nil && len(rep.Levels) > 0 {
		rep.Markdown(os.Stdout)
		if *jsonOut != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if werr := os.WriteFile(*jsonOut, b, 0o644); werr != nil {
				fail(werr)
			}
		}
	}
	if err != nil {
		fail(err)
	}
}

// parseSize is api.ParseSize (64MiB, 512K, plain bytes), positive only.
func parseSize(s string) (int64, error) {
	n, err := api.ParseSize(s)
	if err == nil && n <= 0 {
		err = fmt.Errorf("size %q: want more than 0 bytes", s)
	}
	return n, err
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "osim-blobbench: %v\n", err)
	os.Exit(1)
}
