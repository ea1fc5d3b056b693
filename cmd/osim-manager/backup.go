package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
	"osim/internal/backupstream"
)

// runBackup writes a backup of a running manager (through its API, as an
// admin) or of a data dir it does not run on (offline) to a file.
func runBackup(args []string) int {
	fs := flag.NewFlagSet("osim-manager backup", flag.ContinueOnError)
	to := fs.String("to", "", "the backup file to write (required; an existing file is refused)")
	server := fs.String("server", "http://127.0.0.1:8080", "online: the running manager's URL")
	tokenFile := fs.String("token-file", "", "online: a file holding an admin token (default: $OSIM_TOKEN)")
	insecure := fs.Bool("insecure", false, "online: skip TLS verification (labs)")
	caFile := fs.String("ca-file", os.Getenv("OSIM_CA_FILE"), "online: trust the CA certificates (PEM) in this file for the manager (env OSIM_CA_FILE)")
	dataDir := fs.String("data-dir", "", "offline: back up this data dir (no manager may run on it)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: osim-manager backup --to FILE [--server URL --token-file F]   a running manager\n"+
			"       osim-manager backup --to FILE --data-dir DIR                     a stopped one\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "osim-manager backup: "+format+"\n", a...)
		return code
	}
	if *to == "" || fs.NArg() > 0 {
		return fail(2, "--to FILE is required, and nothing else")
	}
	if _, err := os.Lstat(*to); err == nil {
		return fail(2, "%s exists: give a new file", *to)
	}
	start := time.Now()
	size, err := backupstream.WriteFile(*to, func(w io.Writer) error {
		if *dataDir != "" {
			return backupOffline(*dataDir, w)
		}
		return backupOnline(*server, *tokenFile, *caFile, *insecure, w)
	})
	if err != nil {
		return fail(1, "%v", err)
	}
	fmt.Fprintf(os.Stderr, "osim-manager backup: wrote %s (%d bytes, checksum verified) in %v\n", *to, size, time.Since(start).Round(time.Millisecond))
	return 0
}

func backupOnline(server, tokenFile, caFile string, insecure bool, w io.Writer) error {
	token := os.Getenv("OSIM_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return errors.New("an admin token is needed: --token-file F or $OSIM_TOKEN")
	}
	c, err := api.NewClientCA(server, token, caFile, insecure)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, c.BaseURL+api.Prefix+"/backup", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s %s", req.URL, resp.Status, strings.TrimSpace(string(b)))
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

func backupOffline(dir string, w io.Writer) error {
	db, err := openStore(dir, slog.New(slog.DiscardHandler), "; back up a running manager with --server and an admin token")
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Backup(context.Background(), w)
	return err
}

// runRestore writes a backup into an empty data dir.
func runRestore(args []string) int {
	fs := flag.NewFlagSet("osim-manager restore", flag.ContinueOnError)
	from := fs.String("from", "", "the backup file (required)")
	dataDir := fs.String("data-dir", "", "the data dir to create (required; must not exist or be empty)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *from == "" || *dataDir == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: osim-manager restore --from FILE --data-dir DIR")
		return 2
	}
	f, err := os.Open(*from)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-manager restore: %v\n", err)
		return 1
	}
	defer f.Close()
	info, err := mdb.Restore(*dataDir, f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-manager restore: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "osim-manager restore: %s holds the MDB at revision %d of %s (written by %s): %d keys, %d blobs (%d bytes)\n",
		*dataDir, info.Revision, info.Created.Format(time.RFC3339), orUnknown(info.Version), info.Keys, info.Blobs, info.BlobBytes)
	return 0
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown version"
	}
	return s
}
