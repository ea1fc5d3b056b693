// Package mdb is the manager's database: targets, boot servers, images and
// their blobs, installation orders, events, tokens, and the change log boot
// servers sync from. Open returns the embedded Badger implementation, DB;
// its consumer, controlplane/manager, declares the Store interface it
// programs against (a PostgreSQL store can implement that later).
//
// Every write bumps one global revision in the same transaction and
// appends what changed to the change log, so a boot server that asks for
// "changes for my site since N" sees each write whole or not at all.
package mdb

import (
	"errors"
	"io"

	"osim/controlplane/api"
)

// Sentinel errors; the manager maps them to HTTP codes. Errors wrap them
// with a message naming the object or field (`target t-1f: not found`).
var (
	ErrNotFound   = errors.New("not found")            // 404
	ErrConflict   = errors.New("conflict")             // 409: duplicate MAC, name, live order
	ErrInvalid    = errors.New("invalid")              // 400/422: bad value
	ErrTransition = errors.New("forbidden transition") // 409: the state machine says no
	ErrInUse      = errors.New("in use")               // 409: image used by a live order
	ErrIncomplete = errors.New("blob incomplete")      // 409/422: image names a blob not fully uploaded
	ErrChecksum   = errors.New("checksum mismatch")    // 422: uploaded bytes do not hash to the name
	ErrGone       = errors.New("gone")                 // sync: since is older than the change log; take a snapshot
	ErrForbidden  = errors.New("forbidden")            // 403: the caller may not touch this object (another site's)
	ErrNoSpace    = errors.New("insufficient storage") // 507: the data dir's free space is below its reserve
	ErrTooLarge   = errors.New("too large")            // 413: over a configured size
)

// Page asks for a page of a listing ordered by id: at most Limit items
// (0: 100; capped at 1000) with id > After.
type Page struct {
	After string
	Limit int
}

// TargetQuery filters a target listing.
type TargetQuery struct {
	Page
	Selector api.Selector
	Site     string
	// State filters by Target.State when set (api.TargetDiscovered);
	// StateSet with State "" lists only normal targets.
	State    string
	StateSet bool
	// Text keeps targets whose hostname, id or one of whose MACs
	// contains it (case-insensitive; "-" in a MAC reads as ":").
	Text string
	// Arch keeps targets of this arch.
	Arch string
	// OrderState keeps targets whose newest order (CurrentOrder, else
	// LastOrder) is in this state; OrderNone keeps those without one.
	OrderState string
	// BootLoop keeps targets in a boot loop (BootLoop set).
	BootLoop bool
	// Count makes ListTargetsPage count every match past the page too.
	Count bool
}

// OrderNone is TargetQuery.OrderState for targets without an order.
const OrderNone = "none"

// TargetPage is one page of a target listing.
type TargetPage struct {
	Targets []api.Target
	Next    string // the after of the next page; "" at the end
	Total   int    // every match, when the query asked to Count
	Before  int    // with Count: the matches before the page (at or before After)
}

// OrderQuery filters an order listing.
type OrderQuery struct {
	Page
	State  api.OrderState
	Target string
	Site   string
	Batch  string // the request id that made the orders (api.Order.Batch)
}

// EventQuery filters events: Seq > After, oldest first, at most Limit
// (0: 100; capped at 1000).
type EventQuery struct {
	After  uint64
	Limit  int
	Order  string
	Target string
	Type   string
	// Newest lists the newest Limit matching events past After (still
	// oldest first among them) instead of the oldest.
	Newest bool
}

// Token is a stored token: the hash of its secret, never the secret.
type Token struct {
	api.TokenInfo
	Hash string // hex sha256 of the secret
}

// DB (db.go) is the MDB; controlplane/manager declares the Store
// interface it programs against, with each method's contract.

// Blob is an open, complete blob.
type Blob interface {
	io.ReadSeeker
	io.Closer
	Size() int64
}
