package manager

import (
	"context"
	"io"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

var _ Store = (*mdb.DB)(nil)

// Store is what the manager needs of the MDB (mdb.DB implements it;
// the interface lives here, with its consumer). All methods are safe for concurrent use. Methods that
// write return the object as stored (ids, revision and timestamps filled).
// Validation is the Store's job too: bad input returns ErrInvalid (or
// ErrConflict) wrapped with a message, and nothing is written.
type Store interface {
	// Revision is the current global revision (0 for an empty store).
	Revision(ctx context.Context) (uint64, error)
	// WaitRevision blocks until the revision is greater than after or ctx
	// ends; it returns the revision seen.
	WaitRevision(ctx context.Context, after uint64) (uint64, error)

	CreateTarget(ctx context.Context, spec api.TargetSpec) (api.Target, error)
	// CreateTargets creates many in one call, in chunks of at most 1000
	// per transaction (validated all first: one bad spec writes nothing).
	CreateTargets(ctx context.Context, specs []api.TargetSpec) ([]api.Target, error)
	GetTarget(ctx context.Context, id string) (api.Target, error)
	TargetByMAC(ctx context.Context, mac string) (api.Target, error)
	ListTargets(ctx context.Context, q mdb.TargetQuery) (targets []api.Target, next string, err error)
	// ListTargetsPage is ListTargets with a person's filters and counts.
	ListTargetsPage(ctx context.Context, q mdb.TargetQuery) (mdb.TargetPage, error)
	UpdateTarget(ctx context.Context, id string, p api.TargetPatch) (api.Target, error)
	// SetFacts merges inventory facts into a target.
	SetFacts(ctx context.Context, id string, facts map[string]string) (api.Target, error)
	// DeleteTarget refuses (ErrConflict) while the target has a live order.
	DeleteTarget(ctx context.Context, id string) error

	// Blobs are image files, content-addressed by sha256 (lower-case hex).
	// WriteBlob appends r at offset to the upload of sha256 whose total
	// size is size; offset must equal the bytes already received (else
	// ErrConflict, with the status telling where to resume). When the last
	// byte arrives the whole blob is hashed: a mismatch discards the upload
	// and returns ErrChecksum. Uploading a complete blob again is a no-op.
	WriteBlob(ctx context.Context, sha256 string, size, offset int64, r io.Reader) (api.BlobStatus, error)
	BlobStatus(ctx context.Context, sha256 string) (api.BlobStatus, error)
	// AbortUpload deletes an unfinished upload (its partial bytes and its
	// announced size); a complete blob is ErrConflict.
	AbortUpload(ctx context.Context, sha256 string) error
	// ExpireUploads deletes unfinished uploads whose bytes were last
	// written before the given time, and says how many.
	ExpireUploads(ctx context.Context, before time.Time) (int, error)
	// OpenBlob opens a complete blob.
	OpenBlob(ctx context.Context, sha256 string) (mdb.Blob, error)

	// CreateImage refuses files whose blobs are not complete (ErrIncomplete)
	// and a name+version that exists (ErrConflict).
	CreateImage(ctx context.Context, spec api.ImageSpec) (api.Image, error)
	GetImage(ctx context.Context, id string) (api.Image, error)
	ListImages(ctx context.Context, p mdb.Page) (images []api.Image, next string, err error)
	// DeleteImage refuses (ErrInUse) while a live order uses the image.
	// Blobs no image references any more are removed.
	DeleteImage(ctx context.Context, id string) error

	// GetSite reads a site's settings (ErrNotFound: none set); PutSite
	// sets them (a default boot image must be a boot image with a kernel:
	// ErrUnprocessable); ListSites lists them by name.
	GetSite(ctx context.Context, name string) (api.Site, error)
	PutSite(ctx context.Context, s api.Site) (api.Site, error)
	ListSites(ctx context.Context) ([]api.Site, error)

	// RegisterBootServer creates a boot server and its credential (role
	// boot-server) in one transaction, admitted by the join token join
	// (site and name binding, uses, expiry: ErrForbidden); the name must
	// be new (ErrConflict).
	RegisterBootServer(ctx context.Context, req api.RegisterRequest, join string, cred mdb.Token) (api.BootServer, error)
	// ReRegisterBootServer updates boot server id's addresses, subnets
	// and version when it registers again with its own credential.
	ReRegisterBootServer(ctx context.Context, id string, req api.RegisterRequest) (api.BootServer, error)
	GetBootServer(ctx context.Context, id string) (api.BootServer, error)
	ListBootServers(ctx context.Context) ([]api.BootServer, error)
	// Heartbeat records a boot server's heartbeat. It does not bump the
	// revision (it changes nothing boot servers sync).
	Heartbeat(ctx context.Context, id string, hb api.Heartbeat, at time.Time) (api.BootServer, error)
	// DeleteBootServer deletes a boot server and, in the same transaction,
	// every token bound to it.
	DeleteBootServer(ctx context.Context, id string) error

	// PlaceOrders validates the request against the store (targets exist,
	// none has a live order, images exist and are of the right kind, the
	// share guard of opts), then writes every order, each with a fresh
	// status token, and moves each target's CurrentOrder. All or nothing
	// at any size: the orders are one batch (batches.go), finished after
	// a hang-up, a failed chunk (by the retry) or a crash (by
	// ResumeOrderBatches). A retry of the same request (same request id,
	// or the same content while its orders are live) answers the orders
	// already written, Replayed. req.DryRun writes nothing and answers
	// the Plan.
	PlaceOrders(ctx context.Context, req api.OrderRequest, opts mdb.OrderOptions) (mdb.OrderResult, error)
	// CreateOrders is PlaceOrders with no share guard, answering the orders.
	CreateOrders(ctx context.Context, req api.OrderRequest) ([]api.Order, error)
	// ResumeOrderBatches finishes the order batches a crash left open;
	// call it at start, before serving.
	ResumeOrderBatches(ctx context.Context) (int, error)
	GetOrder(ctx context.Context, id string) (api.Order, error)
	ListOrders(ctx context.Context, q mdb.OrderQuery) (orders []api.Order, next string, err error)
	// Transition moves an order (ErrTransition if lifecycle.CanMove says
	// no) and records an order.state event in the same transaction.
	Transition(ctx context.Context, id string, to api.OrderState, reason string) (api.Order, error)
	// Retry starts a new attempt of a failed or cancelled order (pending,
	// Attempt+1, a new token), if its target has no other live order.
	Retry(ctx context.Context, id string) (api.Order, error)
	// CountOrders returns how many orders are in each state.
	CountOrders(ctx context.Context) (map[api.OrderState]int, error)

	// IngestEvents stores events uploaded by boot server origin, in the
	// order given, dropping those whose OriginSeq is not above the last one
	// stored for origin. In the same transaction it applies what the
	// events mean: order.staged → staged, file.served with an order →
	// booting, install.status installing/done/failed → installing/done/
	// failed (the first installing report also moves a booting order;
	// reports that the state machine refuses are stored, and change
	// nothing), inventory → the target's facts. A batch in which an event
	// names an order or target of another site than site (the origin's)
	// is refused whole with ErrForbidden, naming the first such event.
	IngestEvents(ctx context.Context, origin, site string, events []api.Event) (api.EventAck, error)
	// DropEvents deletes events, oldest first, while more than maxCount
	// (0: no cap) are kept or they are older than before; it says how
	// many went for each reason. Seqs are never reused.
	DropEvents(ctx context.Context, before time.Time, maxCount int) (byAge, byCount int, err error)
	// AppendEvent records an event made by the manager itself.
	AppendEvent(ctx context.Context, e api.Event) (api.Event, error)
	ListEvents(ctx context.Context, q mdb.EventQuery) ([]api.Event, error)
	// WaitEvents blocks until an event with Seq > after exists or ctx ends.
	WaitEvents(ctx context.Context, after uint64) error
	LastEventSeq(ctx context.Context) (uint64, error)

	// Changes returns the changes for site with since < Rev, whole
	// revisions only, at most about limit (a single revision larger than
	// limit is returned whole). Revision in the answer is what the caller
	// is at after applying them: the last revision scanned, which may be
	// past the last change returned when other sites' changes were
	// skipped. ErrGone when since is older than the retained log, when
	// since is 0 and the store is not empty, or when since is ahead of the
	// store's revision: the caller takes a snapshot.
	Changes(ctx context.Context, site string, since uint64, limit int) (api.SyncResponse, error)
	// Snapshot returns a page of site's whole view (targets, orders that
	// are live or ended within the retention window, images) after cursor
	// ("" for the first page); Revision is the revision when the first page
	// was read (carried in the cursor), Cursor is "" on the last page.
	Snapshot(ctx context.Context, site string, cursor string, limit int) (api.SyncResponse, error)
	// CompactLog drops change log entries older than keep revisions.
	CompactLog(ctx context.Context, keep uint64) error

	CreateToken(ctx context.Context, t mdb.Token) error
	TokenByHash(ctx context.Context, hash string) (mdb.Token, error)
	ListTokens(ctx context.Context) ([]api.TokenInfo, error)
	// DeleteToken refuses (ErrConflict) to delete the last admin token.
	DeleteToken(ctx context.Context, id string) error

	Close() error
}
