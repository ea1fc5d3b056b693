package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"osim/bench/internal/harness"
)

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var cfg harness.Config
	var servers string
	fs.BoolVar(&cfg.Quick, "quick", false, "small matrix (8 MiB, 50/200 clients, bursts of 100) for smoke tests")
	fs.StringVar(&servers, "servers", "", "comma-separated servers to run (default all): osim-bootd,tftpd-hpa,atftpd,dnsmasq,dnsmasq-max,ceiling")
	fs.StringVar(&cfg.Cells, "cells", "", "comma-separated cell ID prefixes to run (default all), e.g. single,conc1000,burst")
	fs.IntVar(&cfg.ConcMiB, "conc-mib", 0, "file size of the concurrent cells in MiB (default 4, -quick 1)")
	fs.IntVar(&cfg.Runs, "runs", 0, "runs of each single-stream cell (default 3, -quick 1)")
	fs.StringVar(&cfg.Bootd, "bootd", "bin/osim-bootd", "osim-bootd binary")
	fs.StringVar(&cfg.Atftpd, "atftpd", "bench/.peers/usr/sbin/atftpd", "atftpd binary (unpacked from Debian's atftpd package)")
	fs.StringVar(&cfg.Out, "out", "bench/out", "folder for the raw JSON")
	fs.StringVar(&cfg.Work, "work", "", "scratch folder, kept afterwards (default: a fresh temporary one, removed)")
	fs.IntVar(&cfg.Port, "port", 16900, "first loopback port: server i listens on port+i, osim-bootd metrics on port+100+i")
	fs.BoolVar(&cfg.NoPin, "no-pin", false, "leave single-stream cells to the scheduler (default: server on CPU 0, clients on CPU 1)")
	results := fs.String("results", "bench/RESULTS.md", "Markdown file to append the tables to (empty: do not)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if servers != "" {
		cfg.Servers = strings.Split(servers, ",")
	}
	if err := raiseNoFile(); err != nil {
		return err
	}
	rep, runErr := harness.Run(ctx, cfg)
	if rep == nil {
		return runErr
	}
	fmt.Println(rep.Tables())
	p, err := rep.WriteJSON(cfg.Out)
	if err != nil {
		return err
	}
	slog.Info("raw results written", "json", p)
	if *results != "" && runErr == nil {
		if err := rep.AppendResults(*results); err != nil {
			return err
		}
		slog.Info("tables appended", "file", *results)
	}
	return runErr
}
