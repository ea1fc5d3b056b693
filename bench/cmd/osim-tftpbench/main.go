// Command osim-tftpbench benchmarks TFTP servers with the bench's own
// raw-UDP client.
//
//	osim-tftpbench run [flags]      the whole matrix against every server (see bench/README.md)
//	osim-tftpbench get [flags]      one or many concurrent reads from a running server
//	osim-tftpbench ceiling [flags]  the bare Go UDP sender/receiver pair, the machine's ceiling
//	osim-tftpbench ceiling-sender   the sender half alone (the harness runs it as a peer)
//	osim-tftpbench flood [flags]    forged requests that never ACK, then real clients (issue 11)
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = runCmd(ctx, args)
	case "get":
		err = getCmd(ctx, args)
	case "ceiling":
		err = ceilingCmd(ctx, args)
	case "ceiling-sender":
		err = ceilingSenderCmd(ctx, args)
	case "flood":
		err = floodCmd(ctx, args)
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		err = fmt.Errorf("unknown subcommand %q", cmd)
	}
	if err != nil {
		slog.Error("osim-tftpbench failed", "err", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: osim-tftpbench <command> [flags]

commands:
  run             run the benchmark matrix against the peer servers
  get             read a file from a running TFTP server (one or many clients)
  ceiling         bare Go UDP sender/receiver pair: the machine's ceiling
  ceiling-sender  the ceiling's sender half alone, serving a folder
  flood           forged read requests that never ACK, then real clients (starts osim-bootd)

Run "osim-tftpbench <command> -h" for the flags of each.
`)
}
