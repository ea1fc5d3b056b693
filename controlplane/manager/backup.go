package manager

import (
	"context"
	"io"
	"net/http"

	"osim/controlplane/mdb"
)

// backupStore is the part of the store that writes backups (mdb.DB).
type backupStore interface {
	Backup(ctx context.Context, w io.Writer) (mdb.BackupInfo, error)
}

// backup answers GET /backup: the whole MDB and its blobs as one stream
// (mdb.Backup's format), consistent as of one moment, while the manager
// goes on serving. A failure mid-stream leaves the stream without its end
// record, which restore refuses.
func (s *Server) backup(w http.ResponseWriter, r *http.Request, p *principal) {
	bs, ok := storePart[backupStore](s, w, r, "backups")
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="osim-manager.backup"`)
	info, err := bs.Backup(r.Context(), w)
	if err != nil {
		s.log.Error("backup failed", "by", p.ID, "err", err)
		return
	}
	s.log.Info("backup written", "by", p.ID, "revision", info.Revision, "keys", info.Keys, "blobs", info.Blobs, "blob_bytes", info.BlobBytes)
}
