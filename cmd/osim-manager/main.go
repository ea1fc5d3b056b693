// Command osim-manager is the osim manager: the MDB and its HTTP API.
// Modes: `serve` runs the API; `token` makes and lists tokens offline on
// the data directory.
package main

import (
	"fmt"
	"os"
	"strings"

	"osim/internal/buildinfo"

	"osim/controlplane/secretbox"
	"osim/internal/manpage"
)

const usage = `osim-manager: the osim manager (MDB and API)

usage:
  osim-manager serve --data-dir DIR [--listen ADDR] [flags]      serve the API
  osim-manager token create --role ROLE [--name N] --data-dir DIR  make a token offline, print its secret
  osim-manager token list --data-dir DIR                          list tokens offline
  osim-manager backup --to FILE [--server URL --token-file F]       back up a running manager (or --data-dir DIR, a stopped one)
  osim-manager restore --from FILE --data-dir DIR                 restore a backup into an empty data dir
  osim-manager credentials-key FILE                               make a key for --credentials-key (mode 600)
  osim-manager version                                            which build this is
  osim-manager help                                               this text

Run "osim-manager serve -h" for the flags of a mode. Flags may also come
from the environment: OSIM_MANAGER_<FLAG> with - as _ (OSIM_MANAGER_DATA_DIR).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(runServe(os.Args[2:]))
	case "token", "tokens":
		os.Exit(runToken(os.Args[2:]))
	case "backup":
		os.Exit(runBackup(os.Args[2:]))
	case "restore":
		os.Exit(runRestore(os.Args[2:]))
	case "credentials-key":
		if len(os.Args) == 3 && strings.HasPrefix(os.Args[2], "-") { // -h, not a file name
			fmt.Println("usage: osim-manager credentials-key FILE    (writes a new key, mode 600; refuses an existing FILE)")
			return
		}
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: osim-manager credentials-key FILE")
			os.Exit(2)
		}
		if err := secretbox.GenerateKeyFile(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "osim-manager credentials-key: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("wrote %s: give it to osim-manager serve --credentials-key; keep a copy apart from the data dir's backups\n", os.Args[2])
	case "man":
		os.Stdout.Write(manpage.Render(manpage.Page{Name: "osim-manager", Summary: "the osim manager: the MDB and its HTTP API",
			Version: buildinfo.Get().Short(), Sections: []manpage.Section{{Title: "usage", Text: usage}}}))
	case "version", "--version", "-version":
		fmt.Printf("%s %s\n", "osim-manager", buildinfo.Get())
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "osim-manager: unknown mode %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
