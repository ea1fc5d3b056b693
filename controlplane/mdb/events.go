package mdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/controlplane/lifecycle"
	"osim/internal/badgerkv"
)

// eventChunk is the most events one IngestEvents transaction stores.
const eventChunk = 500

// IngestEvents stores events from boot server origin, which serves site,
// and applies what they mean to orders and targets (see Store).
func (d *DB) IngestEvents(ctx context.Context, origin, site string, events []api.Event) (api.EventAck, error) {
	var ack api.EventAck
	if origin == "" || len(origin) > 128 {
		return ack, fmt.Errorf("%w: origin: must be 1-128 bytes", ErrInvalid)
	}
	if site == "" {
		return ack, fmt.Errorf("%w: site: the origin's site is required", ErrInvalid)
	}
	for i, e := range events {
		if e.Type == "" {
			return ack, fmt.Errorf("%w: events[%d]: type is empty", ErrInvalid, i)
		}
		if e.OriginSeq == 0 {
			return ack, fmt.Errorf("%w: events[%d] %s: origin_seq must be above 0", ErrInvalid, i, e.Type)
		}
	}
	if err := ctx.Err(); err != nil {
		return ack, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Under d.mu nothing moves an order or target between this check and
	// the writes below, so the whole batch is refused or none of it is.
	if err := d.db.View(func(txn *badger.Txn) error { return checkEventSites(txn, site, events) }); err != nil {
		return ack, err
	}
	for start := 0; start < len(events) || start == 0; start += eventChunk {
		end := min(start+eventChunk, len(events))
		var part api.EventAck
		err := d.updateLocked(func(w *wtx) error {
			last, err := badgerkv.GetU64(w.txn, k(pOrigin, origin))
			if err != nil {
				return err
			}
			part = api.EventAck{LastSeq: last}
			for _, e := range events[start:end] {
				if e.OriginSeq <= last {
					part.Duplicates++
					continue
				}
				last = e.OriginSeq
				e.Origin = origin
				if err := w.ingestOf(e, site); err != nil {
					return err
				}
				part.Accepted++
			}
			part.LastSeq = last
			if part.Accepted == 0 {
				return nil
			}
			return w.set(k(pOrigin, origin), badgerkv.U64(last))
		})
		if err != nil {
			return ack, err
		}
		ack.Accepted += part.Accepted
		ack.Duplicates += part.Duplicates
		ack.LastSeq = part.LastSeq
		if end == len(events) {
			break
		}
	}
	return ack, nil
}

// ForeignEventsError refuses a batch in which events name an order or a
// target of another site than the boot server's. It wraps ErrForbidden;
// its message names the first such event, Seqs lists the OriginSeq of
// every one, so the boot server can drop exactly those and resend the rest.
type ForeignEventsError struct {
	Seqs  []uint64
	first string
}

func (e *ForeignEventsError) Error() string {
	more := ""
	if n := len(e.Seqs); n > 1 {
		more = fmt.Sprintf(" (and %d more such events)", n-1)
	}
	return fmt.Sprintf("%v: %s%s", ErrForbidden, e.first, more)
}

func (e *ForeignEventsError) Unwrap() error { return ErrForbidden }

// checkEventSites refuses a batch in which an event names an order or a
// target of another site than site: a boot server reports on its own
// site's machines only, as it syncs only those. A machine that moved to
// another site after the boot server recorded an event about it makes
// such an event too: the boot server drops what is refused (Seqs).
func checkEventSites(txn *badger.Txn, site string, events []api.Event) error {
	var ferr *ForeignEventsError
	foreign := func(i int, e api.Event, what, id, theirs string) {
		if ferr == nil {
			ferr = &ForeignEventsError{first: fmt.Sprintf("events[%d] (%s, origin_seq %d): %s %s belongs to site %q, not to the boot server's site %q",
				i, e.Type, e.OriginSeq, what, id, theirs, site)}
		}
		ferr.Seqs = append(ferr.Seqs, e.OriginSeq)
	}
	for i, e := range events {
		if e.Order != "" {
			var o api.Order
			if ok, err := badgerkv.GetJSON(txn, k(pOrder, e.Order), &o); err != nil {
				return err
			} else if ok && o.Site != site {
				foreign(i, e, "order", o.ID, o.Site)
				continue
			}
		}
		// The target ingest would write to: named, or an inventory's MAC.
		target := e.Target
		if target == "" && e.MAC != "" && e.Type == api.EventInventory {
			if m, err := api.CanonicalMAC(e.MAC); err == nil {
				id, _, err := badgerkv.GetString(txn, k(pMAC, m))
				if err != nil {
					return err
				}
				target = id
			}
		}
		if target != "" {
			var t api.Target
			if ok, err := badgerkv.GetJSON(txn, k(pTarget, target), &t); err != nil {
				return err
			} else if ok && t.Site != site {
				foreign(i, e, "target", t.ID, t.Site)
			}
		}
	}
	if ferr != nil {
		return ferr
	}
	return nil
}

// ingest stores one event and applies its effects: inventory merges into
// the target's facts; for an order, the lifecycle decides and this writes.
func (w *wtx) ingest(e api.Event) error {
	var o api.Order
	haveOrder := false
	if e.Order != "" {
		var err error
		haveOrder, err = badgerkv.GetJSON(w.txn, k(pOrder, e.Order), &o)
		if err != nil {
			return err
		}
		if haveOrder && e.Target == "" {
			e.Target = o.Target
		}
	}
	if e.Type == api.EventInventory && e.Target == "" && e.MAC != "" {
		if m, err := api.CanonicalMAC(e.MAC); err == nil {
			if id, ok, err := badgerkv.GetString(w.txn, k(pMAC, m)); err != nil {
				return err
			} else if ok {
				e.Target = id
			}
		}
	}
	e, err := w.putEvent(e)
	if err != nil {
		return err
	}
	if e.Type == api.EventInventory && e.Target != "" && len(e.Data) > 0 {
		if ok, err := badgerkv.Exists(w.txn, k(pTarget, e.Target)); err != nil || !ok {
			return err
		}
		_, err := w.mergeFacts(e.Target, e.Data)
		if err != nil && !isInvalid(err) {
			return err
		}
		return nil
	}
	if !haveOrder {
		return nil
	}
	eff := lifecycle.OnEvent(o, e)
	changed := eff.Progress != o.Progress || eff.Message != o.Message
	o.Progress, o.Message = eff.Progress, eff.Message
	for _, s := range eff.Steps {
		if err := w.transition(&o, s.To, s.Reason, e.Seq); err != nil {
			return err
		}
	}
	if changed && len(eff.Steps) == 0 {
		return w.putOrder(&o)
	}
	return nil
}

func isInvalid(err error) bool { return err != nil && errors.Is(err, ErrInvalid) }

// AppendEvent records an event made by the manager (Origin is cleared).
func (d *DB) AppendEvent(ctx context.Context, e api.Event) (api.Event, error) {
	if e.Type == "" {
		return e, fmt.Errorf("%w: type is empty", ErrInvalid)
	}
	e.Origin, e.OriginSeq = "", 0
	err := d.update(ctx, func(w *wtx) (err error) {
		e, err = w.putEvent(e)
		return err
	})
	return e, err
}

// ListEvents lists events oldest first.
func (d *DB) ListEvents(ctx context.Context, q EventQuery) (out []api.Event, err error) {
	limit := limitOf(q.Limit, 100, 1000)
	if q.Newest {
		return d.newestEvents(ctx, q, limit)
	}
	err = d.view(ctx, func(txn *badger.Txn) error {
		after := ""
		if q.After > 0 {
			after = string(badgerkv.U64(q.After))
		}
		return scan(txn, pEvent, after, true, func(key []byte, item *badger.Item) (bool, error) {
			if len(key) != len(pEvent)+8 || binary.BigEndian.Uint64(key[len(pEvent):]) <= q.After {
				return true, nil
			}
			var e api.Event
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return false, err
			}
			if (q.Order != "" && e.Order != q.Order) || (q.Target != "" && e.Target != q.Target) || (q.Type != "" && e.Type != q.Type) {
				return true, nil
			}
			out = append(out, e)
			return len(out) < limit, nil
		})
	})
	return out, err
}

// newestEvents is ListEvents with q.Newest: a backward scan from the
// last event, so a page showing one target's latest events does not read
// the whole history.
func (d *DB) newestEvents(ctx context.Context, q EventQuery, limit int) (out []api.Event, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Reverse = true
		opts.Prefix = []byte(pEvent)
		it := txn.NewIterator(opts)
		defer it.Close()
		seek := append([]byte(pEvent), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		for it.Seek(seek); it.Valid() && len(out) < limit; it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			key := item.Key()
			if len(key) != len(pEvent)+8 {
				continue
			}
			if binary.BigEndian.Uint64(key[len(pEvent):]) <= q.After {
				break
			}
			var e api.Event
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return err
			}
			if (q.Order != "" && e.Order != q.Order) || (q.Target != "" && e.Target != q.Target) || (q.Type != "" && e.Type != q.Type) {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	slices.Reverse(out)
	return out, err
}

// WaitEvents blocks until an event with Seq > after exists.
func (d *DB) WaitEvents(ctx context.Context, after uint64) error {
	return d.wait(ctx, func() bool { return d.evSeq.Load() > after })
}

// LastEventSeq returns the highest event seq.
func (d *DB) LastEventSeq(ctx context.Context) (uint64, error) {
	return d.evSeq.Load(), ctx.Err()
}

// DropEvents deletes the oldest events while more than maxCount are kept
// or they are older than before (see Store). Events are numbered without
// gaps and only ever dropped oldest first, so the kept ones are the range
// from the oldest kept seq to the last.
func (d *DB) DropEvents(ctx context.Context, before time.Time, maxCount int) (byAge, byCount int, err error) {
	last := d.evSeq.Load()
	for ctx.Err() == nil {
		var keys [][]byte
		var ages int
		err := d.view(ctx, func(txn *badger.Txn) error {
			return scan(txn, pEvent, "", true, func(key []byte, item *badger.Item) (bool, error) {
				if len(key) != len(pEvent)+8 {
					return true, nil
				}
				seq := binary.BigEndian.Uint64(key[len(pEvent):])
				if maxCount > 0 && seq <= last && last-seq+1 > uint64(maxCount) {
					keys = append(keys, bytes.Clone(key))
					return len(keys) < eventChunk, nil
				}
				var e struct {
					Time time.Time `json:"time"`
				}
				if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
					return false, err
				}
				if !e.Time.Before(before) {
					return false, nil
				}
				keys = append(keys, bytes.Clone(key))
				ages++
				return len(keys) < eventChunk, nil
			})
		})
		if err != nil || len(keys) == 0 {
			return byAge, byCount, err
		}
		// No revision: events are not synced, and deleting frees space.
		err = d.db.Update(func(txn *badger.Txn) error {
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return byAge, byCount, fmt.Errorf("mdb: drop events: %w", err)
		}
		byAge += ages
		byCount += len(keys) - ages
		if len(keys) < eventChunk {
			return byAge, byCount, nil
		}
	}
	return byAge, byCount, ctx.Err()
}
