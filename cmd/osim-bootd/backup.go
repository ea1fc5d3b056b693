package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"osim/internal/backupstream"
	"osim/internal/bootd"
)

// runBackup writes a stopped boot server's data dir to a backup file.
func runBackup(args []string) int {
	fs := flag.NewFlagSet("osim-bootd backup", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "the boot server's data_dir (required; osim-bootd must be stopped)")
	to := fs.String("to", "", "the backup file to write (required; an existing file is refused)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: osim-bootd backup --data-dir DIR --to FILE\n\n"+
			"Writes the data dir of a stopped boot server (its credential, synced view, events not yet\n"+
			"uploaded, leases and staged images) to FILE; osim-bootd restore writes it into a new data dir.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dataDir == "" || *to == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: osim-bootd backup --data-dir DIR --to FILE")
		return 2
	}
	if _, err := os.Lstat(*to); err == nil {
		fmt.Fprintf(os.Stderr, "osim-bootd: %s exists: give a new file\n", *to)
		return 2
	}
	start := time.Now()
	info, size, err := backupTo(*dataDir, *to)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "osim-bootd backup: wrote %s (%d bytes, checksum verified) in %v: %s, data dir format %d, %d keys, %d blobs (%d bytes)\n",
		*to, size, time.Since(start).Round(time.Millisecond), who(info), info.DataDirFormat, info.Keys, info.Blobs, info.BlobBytes)
	return 0
}

// backupTo writes the backup to a new file (backupstream.WriteFile: never
// over an existing one, nothing left on failure).
func backupTo(dataDir, to string) (info bootd.BackupInfo, size int64, err error) {
	size, err = backupstream.WriteFile(to, func(w io.Writer) error {
		info, err = bootd.Backup(context.Background(), dataDir, w, bootd.BackupOptions{})
		return err
	})
	return info, size, err
}

// runRestore writes a backup into a new or empty data dir.
func runRestore(args []string) int {
	fs := flag.NewFlagSet("osim-bootd restore", flag.ContinueOnError)
	from := fs.String("from", "", "the backup file (required)")
	dataDir := fs.String("data-dir", "", "the data_dir to write (required; must not exist or be empty)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: osim-bootd restore --from FILE --data-dir DIR\n\n"+
			"Writes a backup of a boot server's data dir into DIR, which must not exist or be empty;\n"+
			"osim-bootd serve with data_dir: DIR is then the same boot server (it does not register again).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *from == "" || *dataDir == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: osim-bootd restore --from FILE --data-dir DIR")
		return 2
	}
	f, err := os.Open(*from)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd: %v\n", err)
		return 1
	}
	defer f.Close()
	start := time.Now()
	info, err := bootd.Restore(*dataDir, f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "osim-bootd: %v\n", err)
		return 1
	}
	version := info.Version
	if version == "" {
		version = "an unknown version"
	}
	fmt.Fprintf(os.Stderr, "osim-bootd restore: %s holds %s as backed up at %s by %s: data dir format %d, %d keys, %d blobs (%d bytes), in %v\n",
		*dataDir, who(info), info.Created.Format(time.RFC3339), version, info.DataDirFormat,
		info.Keys, info.Blobs, info.BlobBytes, time.Since(start).Round(time.Millisecond))
	return 0
}

// who names the boot server a backup holds.
func who(info bootd.BackupInfo) string {
	if info.BootServer == "" {
		return "a boot server that had not registered"
	}
	return fmt.Sprintf("boot server %s (%s, site %s)", info.BootServer, info.Name, info.Site)
}
