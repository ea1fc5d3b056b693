// Command osim-bootd is the boot server appliance. Modes: `serve` runs DHCP,
// TFTP and HTTP boot from a config file; `tftp` serves a folder over TFTP;
// `backup` and `restore` copy a stopped boot server's data dir.
package main

import (
	"fmt"
	"os"

	"osim/internal/buildinfo"
	"osim/internal/manpage"
)

const usage = `osim-bootd: the osim boot server

usage:
  osim-bootd serve --config FILE [flags]                    DHCP (proxy or full), TFTP and HTTP boot together
  osim-bootd tftp --root DIR [--listen ADDR:PORT] [flags]   serve a folder over TFTP
  osim-bootd backup --data-dir DIR --to FILE                write a stopped boot server's data dir to FILE
  osim-bootd restore --from FILE --data-dir DIR             write a backup into a new or empty data dir
  osim-bootd version                                        which build this is
  osim-bootd help                                           this text

Run "osim-bootd tftp -h" for the flags of a mode.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(runServe(os.Args[2:]))
	case "tftp":
		os.Exit(runTFTP(os.Args[2:]))
	case "backup":
		os.Exit(runBackup(os.Args[2:]))
	case "restore":
		os.Exit(runRestore(os.Args[2:]))
	case "man":
		os.Stdout.Write(manpage.Render(manpage.Page{Name: "osim-bootd", Summary: "the osim boot server: DHCP, TFTP and HTTP boot",
			Version: buildinfo.Get().Short(), Sections: []manpage.Section{{Title: "usage", Text: usage}}}))
	case "version", "--version", "-version":
		fmt.Printf("%s %s\n", "osim-bootd", buildinfo.Get())
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "osim-bootd: unknown mode %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
