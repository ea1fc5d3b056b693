package mdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
)

// An order request is written as a batch. Badger cannot commit 100,000
// orders in one transaction (its limit is 15% of the memtable, 9.6 MiB
// with MemTableSize 64 MiB: about 6,300 orders with their targets and log
// entries, TestOrderBatchScale100k), so the first transaction commits a batch record (the
// request, every target with the order id it gets) together with the
// first chunk of orders, and later chunks advance the record's Written
// count in the same transaction as their orders. From the first commit on
// the batch is finished whatever happens: a client that hangs up does not
// stop it, a failed chunk is finished by a retry of the same request, and
// a crash is finished by ResumeOrderBatches at start. The record also
// makes the retry idempotent: the same request id answers the orders
// already written instead of "has live order".

// ErrNeedsAll refuses a selector that would order every target, or more
// than OrderOptions.MaxShare of a site, without req.All (errors wrapping
// it wrap ErrInvalid too).
var ErrNeedsAll = errors.New("needs all")

// BatchRetention is how long a batch record answers retries of its
// request; older records are deleted as new batches are written.
const BatchRetention = 24 * time.Hour

// OrderOptions are the caller's policy for PlaceOrders.
type OrderOptions struct {
	// MaxShare is the largest share (0 < s ≤ 1) of a site's targets a
	// selector may order without req.All; a selector matching every
	// target always needs All. 0 turns the guard off.
	MaxShare float64
	// Batch is the batch the orders join (api.Order.Batch; default the
	// request id): a rollout admits a wave's targets in several requests,
	// each idempotent by its own id, into the wave's one batch.
	Batch string
}

// OrderResult is what PlaceOrders wrote (or replayed) or, for a dry run,
// would write.
type OrderResult struct {
	Orders    []api.Order
	Plan      api.OrderPlan // dry run only
	RequestID string
	Replayed  bool // an earlier identical request's orders; nothing new
}

// orderBatch is the batch record (key pBatch + request id).
type orderBatch struct {
	Hash      string            `json:"hash"` // sha256 of the request, as requestID computes it
	Derived   bool              `json:"derived,omitempty"`
	Created   time.Time         `json:"created"`
	Count     int               `json:"count"`
	Written   int               `json:"written"` // items[:Written] have their orders
	Image     string            `json:"image"`
	BootImage string            `json:"boot_image,omitempty"`
	Params    map[string]string `json:"params,omitempty"`
	// SiteBoot is, per site, the default boot image a disk image's
	// orders got when the request named none.
	SiteBoot map[string]string `json:"site_boot,omitempty"`
	// Batch is OrderOptions.Batch ("": the request id).
	Batch string `json:"batch,omitempty"`
}

// batchOf is the api.Order.Batch of the batch written by request rid.
func (b orderBatch) batchOf(rid string) string {
	if b.Batch != "" {
		return b.Batch
	}
	return rid
}

// bootFor is the boot image of an order of this batch for a target of site.
func (b orderBatch) bootFor(site string) string {
	if b.BootImage != "" {
		return b.BootImage
	}
	return b.SiteBoot[site]
}

// batchItem is one target of a batch and the id of its order.
type batchItem [2]string // target id, order id

var (
	pBatch      = "mdb/ob/"  // + request id → orderBatch JSON
	pBatchItems = "mdb/obi/" // + request id → []batchItem JSON
	pBatchOpen  = "mdb/obw/" // + request id → "" while Written < Count
	pBatchAge   = "mdb/obx/" // + created unix ns 8B + request id → "" (expiry)
)

// requestID returns the request's id (the client's, or one derived from
// the content) and the hash that tells a retry from another request.
func requestID(req api.OrderRequest) (rid, hash string, err error) {
	c := req
	c.RequestID, c.DryRun = "", false
	b, err := json.Marshal(c)
	if err != nil {
		return "", "", fmt.Errorf("mdb: encode order request: %w", err)
	}
	sum := sha256.Sum256(b)
	hash = hex.EncodeToString(sum[:])
	if req.RequestID != "" {
		return req.RequestID, hash, nil
	}
	return "h-" + hash[:32], hash, nil
}

func batchAgeKey(b orderBatch, rid string) []byte {
	return k(pBatchAge, string(badgerkv.U64(uint64(b.Created.UnixNano()))), rid)
}

// replayLocked answers the orders of the batch rid if it is a retry of
// the same request (ok). A derived id replays only while every order of
// its batch is live: the same request made again after the installs is
// a new request. Run under d.mu.
func (d *DB) replayLocked(rid, hash string, derived bool) (res OrderResult, ok bool, err error) {
	var b orderBatch
	var items []batchItem
	err = d.db.View(func(txn *badger.Txn) error {
		found, err := badgerkv.GetJSON(txn, k(pBatch, rid), &b)
		if err != nil || !found {
			return err
		}
		if d.opts.Clock.Now().Sub(b.Created) > BatchRetention {
			return nil
		}
		if b.Hash != hash {
			return fmt.Errorf("%w: request_id %q was used for a different request", ErrConflict, rid)
		}
		ok = true
		_, err = badgerkv.GetJSON(txn, k(pBatchItems, rid), &items)
		return err
	})
	if err != nil || !ok {
		return res, false, err
	}
	if b.Written < b.Count { // a chunk failed earlier: finish it now
		if err := d.finishBatchLocked(rid, b, items); err != nil {
			return res, false, err
		}
	}
	orders, live, err := d.batchOrders(items)
	if err != nil {
		return res, false, err
	}
	if derived && !live {
		return res, false, nil
	}
	return OrderResult{Orders: orders, RequestID: rid, Replayed: true}, true, nil
}

// batchOrders reads the orders of a batch's items (skipping those never
// written) and says whether all are live.
func (d *DB) batchOrders(items []batchItem) (orders []api.Order, live bool, err error) {
	live = true
	err = d.db.View(func(txn *badger.Txn) error {
		for _, it := range items {
			var o api.Order
			found, err := badgerkv.GetJSON(txn, k(pOrder, it[1]), &o)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			live = live && o.State.Live()
			orders = append(orders, o)
		}
		return nil
	})
	return orders, live, err
}

// writeBatchLocked writes the batch record and the first chunk in one
// transaction, then the other chunks. Run under d.mu.
func (d *DB) writeBatchLocked(rid, hash string, req api.OrderRequest, targets []api.Target, siteBoot map[string]string, batch string) ([]api.Order, error) {
	b := orderBatch{Hash: hash, Derived: req.RequestID == "", Created: d.opts.Clock.Now().UTC(), Count: len(targets),
		Image: req.Image, BootImage: req.BootImage, Params: req.Params, Batch: batch}
	if len(siteBoot) > 0 {
		b.SiteBoot = siteBoot
	}
	items := make([]batchItem, len(targets))
	out := make([]api.Order, 0, len(targets))
	err := d.updateLocked(func(w *wtx) error {
		if err := w.expireBatches(rid); err != nil {
			return err
		}
		seen := make(map[string]bool, len(targets))
		for i, t := range targets {
			id, err := w.newID("o-", pOrder)
			for err == nil && seen[id] { // unique within the batch too
				id, err = w.newID("o-", pOrder)
			}
			if err != nil {
				return err
			}
			seen[id] = true
			items[i] = batchItem{t.ID, id}
		}
		if err := w.setJSON(k(pBatchItems, rid), items); err != nil {
			return err
		}
		if err := w.set(batchAgeKey(b, rid), nil); err != nil {
			return err
		}
		return w.writeChunk(rid, &b, items, &out)
	})
	if err != nil {
		return nil, err
	}
	for b.Written < b.Count {
		done := b.Written
		if err := d.updateLocked(func(w *wtx) error { return w.writeChunk(rid, &b, items, &out) }); err != nil {
			b.Written = done
			// The batch stays open: a retry of the request, or the next
			// start, finishes it.
			return nil, fmt.Errorf("order batch %s: %d of %d orders written, the rest on retry or restart: %w", rid, b.Written, b.Count, err)
		}
	}
	return out, nil
}

// writeChunk writes the next chunk of b's orders and b's progress. A
// target gone or ordered meanwhile (only possible when an earlier chunk
// failed and the lock was let go) is skipped and logged.
func (w *wtx) writeChunk(rid string, b *orderBatch, items []batchItem, out *[]api.Order) error {
	from := b.Written
	end := min(from+chunkSize, b.Count)
	var written []api.Order
	for _, it := range items[from:end] {
		o, err := w.batchOrder(rid, *b, it)
		if err != nil {
			return err
		}
		if o.ID != "" {
			written = append(written, o)
		}
	}
	b.Written = end
	if b.Written < b.Count {
		if err := w.set(k(pBatchOpen, rid), nil); err != nil {
			return err
		}
	} else if err := w.del(k(pBatchOpen, rid)); err != nil {
		return err
	}
	if err := w.setJSON(k(pBatch, rid), b); err != nil {
		return err
	}
	// Published to the caller only with the commit: a failed chunk's
	// orders are not answered. writeChunk's txn commits right after.
	*out = append(*out, written...)
	return nil
}

// batchOrder writes the order of one batch item and moves its target's
// CurrentOrder; a zero order when the item is skipped.
func (w *wtx) batchOrder(rid string, b orderBatch, it batchItem) (api.Order, error) {
	t, err := getTarget(w.txn, it[0])
	if errors.Is(err, ErrNotFound) {
		w.d.log.Warn("order batch: target gone, no order", "request", rid, "target", it[0])
		return api.Order{}, nil
	}
	if err != nil {
		return api.Order{}, err
	}
	if t.CurrentOrder != "" {
		w.d.log.Warn("order batch: target has another live order, skipped", "request", rid, "target", t.ID, "order", t.CurrentOrder)
		return api.Order{}, nil
	}
	tok, err := w.token()
	if err != nil {
		return api.Order{}, err
	}
	o := api.Order{ID: it[1], Target: t.ID, Site: t.Site, MACs: t.MACs, Arch: t.Arch,
		Image: b.Image, BootImage: b.bootFor(t.Site), Params: maps.Clone(b.Params),
		State: api.OrderPending, Attempt: 1, Token: tok, Created: w.now, Batch: b.batchOf(rid),
		History: []api.Transition{{To: api.OrderPending, At: w.now}}}
	if o.SecretParams, err = orderSecrets(w.txn, o.Image, o.BootImage); err != nil {
		return api.Order{}, err
	}
	if err := w.putOrder(&o); err != nil {
		return api.Order{}, err
	}
	w.countOrder("", api.OrderPending)
	if err := w.set(k(pOrderTgt, t.ID, "/", o.ID), nil); err != nil {
		return api.Order{}, err
	}
	t.CurrentOrder, t.LastOrder = o.ID, o.ID
	t.BootLoop = time.Time{} // an order ends a boot loop episode
	return o, w.putTarget(&t)
}

// finishBatchLocked writes the rest of an open batch. Run under d.mu.
func (d *DB) finishBatchLocked(rid string, b orderBatch, items []batchItem) error {
	var out []api.Order
	for b.Written < b.Count {
		if err := d.updateLocked(func(w *wtx) error { return w.writeChunk(rid, &b, items, &out) }); err != nil {
			return fmt.Errorf("order batch %s: finishing at %d of %d: %w", rid, b.Written, b.Count, err)
		}
	}
	d.log.Info("order batch finished", "request", rid, "orders", len(out), "count", b.Count)
	return nil
}

// ResumeOrderBatches finishes every batch a crash (or a failed chunk)
// left open, and says how many. The manager calls it at start, before it
// serves: after it, every order request is all or nothing.
func (d *DB) ResumeOrderBatches(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var open []string
	err := d.db.View(func(txn *badger.Txn) error {
		return scan(txn, pBatchOpen, "", false, func(key []byte, _ *badger.Item) (bool, error) {
			open = append(open, string(key[len(pBatchOpen):]))
			return true, nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("mdb: open order batches: %w", err)
	}
	for _, rid := range open {
		var b orderBatch
		var items []batchItem
		err := d.db.View(func(txn *badger.Txn) error {
			if _, err := badgerkv.GetJSON(txn, k(pBatch, rid), &b); err != nil {
				return err
			}
			_, err := badgerkv.GetJSON(txn, k(pBatchItems, rid), &items)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("mdb: order batch %s: %w", rid, err)
		}
		if err := d.finishBatchLocked(rid, b, items); err != nil {
			return 0, err
		}
	}
	return len(open), nil
}

// expireBatches deletes batch records older than BatchRetention (at most
// a chunk of them per call) and the age key of an earlier batch under
// rid, which the caller is about to replace.
func (w *wtx) expireBatches(rid string) error {
	var prev orderBatch
	found, err := badgerkv.GetJSON(w.txn, k(pBatch, rid), &prev)
	if err != nil {
		return err
	}
	if found {
		if err := w.del(batchAgeKey(prev, rid)); err != nil {
			return err
		}
	}
	cutoff := string(badgerkv.U64(uint64(w.now.Add(-BatchRetention).UnixNano())))
	var old [][]byte
	err = scan(w.txn, pBatchAge, "", false, func(key []byte, _ *badger.Item) (bool, error) {
		rest := key[len(pBatchAge):]
		if len(rest) < 8 || string(rest[:8]) >= cutoff || len(old) == chunkSize {
			return false, nil
		}
		old = append(old, append([]byte(nil), key...))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, key := range old {
		id := string(key[len(pBatchAge)+8:])
		if open, err := badgerkv.Exists(w.txn, k(pBatchOpen, id)); err != nil || open {
			continue // never drop an open batch: it is how it gets finished
		}
		for _, del := range [][]byte{key, k(pBatch, id), k(pBatchItems, id)} {
			if err := w.del(del); err != nil {
				return err
			}
		}
	}
	return nil
}
