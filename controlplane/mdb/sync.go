package mdb

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
)

// Changes returns site's changes after since, whole revisions only.
//
// ErrGone when the caller must take a snapshot: since is 0 and the store
// is not empty, since is older than the retained log, or since is ahead
// of the store (it synced from another history).
func (d *DB) Changes(ctx context.Context, site string, since uint64, limit int) (api.SyncResponse, error) {
	resp := api.SyncResponse{Changes: []api.Change{}}
	if !api.ValidName(site) {
		return resp, fmt.Errorf("%w: site: %q is not a valid site name", ErrInvalid, site)
	}
	limit = limitOf(limit, 1000, 10000)
	err := d.view(ctx, func(txn *badger.Txn) error {
		rev, err := badgerkv.GetU64(txn, keyRev)
		if err != nil {
			return err
		}
		logMin, err := badgerkv.GetU64(txn, keyLogMin)
		if err != nil {
			return err
		}
		switch {
		case since == 0 && rev > 0:
			return fmt.Errorf("%w: site %s: no revision yet; take a snapshot", ErrGone, site)
		case since > rev:
			return fmt.Errorf("%w: site %s: revision %d is ahead of the store's %d; take a snapshot", ErrGone, site, since, rev)
		case logMin > 0 && since+1 < logMin:
			return fmt.Errorf("%w: site %s: revision %d is older than the change log (from %d); take a snapshot", ErrGone, site, since, logMin)
		}
		resp.Revision = rev
		// Stop at a revision boundary once limit changes are collected or
		// 50×limit entries of other sites were skipped.
		scanned, cur := 0, uint64(0)
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pLog)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Seek(logKey(since+1, 0)); it.Valid(); it.Next() {
			item := it.Item()
			key := item.Key()
			if len(key) != len(pLog)+12 {
				continue
			}
			r := binary.BigEndian.Uint64(key[len(pLog):])
			if r > rev {
				break
			}
			if r != cur {
				if cur != 0 && (len(resp.Changes) >= limit || scanned >= 50*limit) {
					resp.Revision = cur
					return nil
				}
				cur = r
			}
			scanned++
			err := item.Value(func(v []byte) error {
				s, js, ok := bytes.Cut(v, []byte{'\n'})
				if !ok {
					return fmt.Errorf("mdb: log entry %x: no site", key)
				}
				if len(s) != 0 && string(s) != site {
					return nil
				}
				var c api.Change
				if err := json.Unmarshal(js, &c); err != nil {
					return fmt.Errorf("mdb: log entry %x: %w", key, err)
				}
				resp.Changes = append(resp.Changes, c)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return resp, err
}

// snapCursor is where a snapshot continues.
type snapCursor struct {
	rev   uint64
	phase int // 0 targets, 1 orders, 2 images
	after string
}

func (c snapCursor) String() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "v1:%d:%d:%s", c.rev, c.phase, c.after))
}

func parseCursor(s string) (snapCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return snapCursor{}, fmt.Errorf("%w: snapshot cursor %q", ErrInvalid, s)
	}
	parts := strings.SplitN(string(b), ":", 4)
	if len(parts) != 4 || parts[0] != "v1" {
		return snapCursor{}, fmt.Errorf("%w: snapshot cursor %q", ErrInvalid, s)
	}
	rev, err1 := strconv.ParseUint(parts[1], 10, 64)
	ph, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || ph < 0 || ph > 2 {
		return snapCursor{}, fmt.Errorf("%w: snapshot cursor %q", ErrInvalid, s)
	}
	return snapCursor{rev, ph, parts[3]}, nil
}

// Snapshot returns a page of site's view: its targets, its live orders,
// then every image, each as a Change at the object's revision.
func (d *DB) Snapshot(ctx context.Context, site string, cursor string, limit int) (api.SyncResponse, error) {
	resp := api.SyncResponse{Snapshot: true, Changes: []api.Change{}}
	if !api.ValidName(site) {
		return resp, fmt.Errorf("%w: site: %q is not a valid site name", ErrInvalid, site)
	}
	limit = limitOf(limit, 1000, 5000)
	var cur snapCursor
	if cursor != "" {
		var err error
		if cur, err = parseCursor(cursor); err != nil {
			return resp, err
		}
	}
	errFull := errors.New("page full")
	err := d.view(ctx, func(txn *badger.Txn) error {
		if cursor == "" {
			rev, err := badgerkv.GetU64(txn, keyRev)
			if err != nil {
				return err
			}
			cur.rev = rev
		}
		resp.Revision = cur.rev
		add := func(phase int, id string, c api.Change) error {
			if len(resp.Changes) == limit {
				return errFull
			}
			resp.Changes = append(resp.Changes, c)
			cur.phase, cur.after = phase, id
			return nil
		}
		for ; cur.phase <= 2; cur.phase, cur.after = cur.phase+1, "" {
			phase := cur.phase
			var err error
			switch phase {
			case 0:
				p := string(k(pSiteTgt, site, "/"))
				err = scan(txn, p, cur.after, false, func(key []byte, _ *badger.Item) (bool, error) {
					id := string(key[len(p):])
					t, err := getTarget(txn, id)
					if err != nil {
						return false, err
					}
					return true, add(phase, id, api.Change{Rev: t.Revision, Kind: api.ChangeTarget, ID: id, Target: &t})
				})
			case 1:
				p := string(k(pLiveSite, site, "/"))
				err = scan(txn, p, cur.after, false, func(key []byte, _ *badger.Item) (bool, error) {
					id := string(key[len(p):])
					o, err := getOrder(txn, id)
					if err != nil {
						return false, err
					}
					return true, add(phase, id, api.Change{Rev: o.Revision, Kind: api.ChangeOrder, ID: id, Order: &o})
				})
			case 2:
				err = scan(txn, pImage, cur.after, true, func(key []byte, item *badger.Item) (bool, error) {
					var im api.Image
					if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &im) }); err != nil {
						return false, err
					}
					return true, add(phase, im.ID, api.Change{Rev: im.Revision, Kind: api.ChangeImage, ID: im.ID, Image: &im})
				})
			}
			if errors.Is(err, errFull) {
				resp.Cursor = cur.String()
				return nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return resp, err
}

// CompactLog drops change log entries of revisions older than the last
// keep revisions.
func (d *DB) CompactLog(ctx context.Context, keep uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.compactLocked(keep)
}

func (d *DB) compactLocked(keep uint64) error {
	rev := d.rev.Load()
	if rev <= keep {
		return nil
	}
	newMin := rev - keep + 1
	if newMin <= d.logMin {
		return nil
	}
	// Delete in batches of whole keys; set logMin first so a reader never
	// trusts a half-deleted range.
	if err := d.db.Update(func(txn *badger.Txn) error { return txn.Set(keyLogMin, badgerkv.U64(newMin)) }); err != nil {
		return fmt.Errorf("mdb: compact log: %w", err)
	}
	d.logMin = newMin
	end := logKey(newMin, 0)
	for {
		var keys [][]byte
		err := d.db.View(func(txn *badger.Txn) error {
			o := badger.DefaultIteratorOptions
			o.Prefix = []byte(pLog)
			o.PrefetchValues = false
			it := txn.NewIterator(o)
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < 10000; it.Next() {
				key := it.Item().KeyCopy(nil)
				if bytes.Compare(key, end) >= 0 {
					break
				}
				keys = append(keys, key)
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		wb := d.db.NewWriteBatch()
		for _, key := range keys {
			if err := wb.Delete(key); err != nil {
				wb.Cancel()
				return fmt.Errorf("mdb: compact log: %w", err)
			}
		}
		if err := wb.Flush(); err != nil {
			return fmt.Errorf("mdb: compact log: %w", err)
		}
	}
}

// autoCompact keeps the log near Options.LogRetention revisions; called
// under d.mu after a commit that bumped the revision.
func (d *DB) autoCompact() {
	keep := d.opts.LogRetention
	slack := max(keep/8, 1)
	rev := d.rev.Load()
	oldest := max(d.logMin, 1)
	if rev < oldest+keep+slack {
		return
	}
	if err := d.compactLocked(keep); err != nil {
		d.log.Warn("compact change log", "err", err)
	}
}

// SiteView is a site's view of s as a boot server should hold it, read
// through the listing methods: the site's targets, its live orders and
// every image, each sorted by id. Tests compare a synced copy with it.
func SiteView(ctx context.Context, s *DB, site string) (targets []api.Target, orders []api.Order, images []api.Image, err error) {
	for after := ""; ; {
		page, next, err := s.ListTargets(ctx, TargetQuery{Page: Page{After: after, Limit: 1000}, Site: site})
		if err != nil {
			return nil, nil, nil, err
		}
		targets = append(targets, page...)
		if next == "" {
			break
		}
		after = next
	}
	for after := ""; ; {
		page, next, err := s.ListOrders(ctx, OrderQuery{Page: Page{After: after, Limit: 1000}, Site: site})
		if err != nil {
			return nil, nil, nil, err
		}
		for _, o := range page {
			if o.State.Live() {
				orders = append(orders, o)
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	for after := ""; ; {
		page, next, err := s.ListImages(ctx, Page{After: after, Limit: 1000})
		if err != nil {
			return nil, nil, nil, err
		}
		images = append(images, page...)
		if next == "" {
			break
		}
		after = next
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].ID < targets[j].ID })
	sort.Slice(orders, func(i, j int) bool { return orders[i].ID < orders[j].ID })
	sort.Slice(images, func(i, j int) bool { return images[i].ID < images[j].ID })
	return targets, orders, images, nil
}
