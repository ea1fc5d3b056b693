package bootd

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"osim/internal/diskspace"
	"osim/internal/storeformat"
)

// blobChunk is what a staging download may still write after its space
// was checked: the reserve covers it.
const blobChunk = 64 << 20

// DataDirLayout is the format of the boot server's Badger: the agent's
// keys (controlplane/agent/codec.go), full DHCP's leases and this key. A
// change an older build would misread raises Current and adds the
// migration from the format before (internal/storeformat).
var DataDirLayout = storeformat.Layout{Name: "boot server data dir", Key: []byte("bootd/format"), Current: 1}

// openDataDir opens the boot server's Badger in dir behind a disk guard:
// a start without room for Badger to open and flush exits with one line;
// a start below the reserve runs read-only (DHCP for existing leases,
// TFTP and HTTP keep answering; new leases, events, sync and staging
// wait for space; Run watches the space). closeDB leaves Badger unclosed when closing would
// flush into a full filesystem (a SIGBUS): nothing acknowledged is lost,
// the page cache holds the write-ahead log.
func openDataDir(dir string, full bool, log *slog.Logger, reg prometheus.Registerer) (*badger.DB, *diskspace.Guard, func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("data_dir: %w", err)
	}
	bo := bootdBadgerOptions(dir, full)
	reserve := diskspace.BadgerReserve(bo) + blobChunk
	g := diskspace.New(dir, reserve, diskspace.Options{Ballast: bo.MemTableSize, Logger: log})
	low, err := g.Prepare(diskspace.OpenMin(bo))
	if err != nil {
		return nil, nil, nil, err
	}
	if low {
		free, _ := g.Free()
		log.With("component", "disk").Warn("starting read-only: the data dir's free space is below its reserve; leases, events, sync and staging wait for space",
			"dir", dir, "free", diskspace.Bytes(free), "reserve", diskspace.Bytes(reserve))
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open data_dir %q: %w", dir, err)
	}
	found, err := DataDirLayout.Open(db)
	if err != nil {
		db.Close()
		return nil, nil, nil, fmt.Errorf("data_dir %q: %w", dir, err)
	}
	if msg := DataDirLayout.Describe(found); msg != "" {
		log.Info(msg, "dir", dir)
	}
	if err := reg.Register(g); err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	closeDB := func() {
		if !g.CloseRoom(diskspace.BadgerReserve(bo)) {
			log.With("component", "disk").Warn("not closing the database on a nearly full disk; its write-ahead log is replayed at the next start", "dir", dir)
			return
		}
		if err := db.Close(); err != nil {
			log.Error("closing the data dir's database", "dir", dir, "err", err)
		}
	}
	return db, g, closeDB, nil
}
