package agent

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
	"osim/internal/clock"
)

// localView is the boot server's copy of its site's part of the MDB: the
// current generation in Badger, its in-memory mirror, and the dataplane
// seams that answer from it (seams.go). Sync feeds it changes and
// snapshots; staging reads it and waits for it to change.
type localView struct {
	db    *badger.DB
	cfg   *Config // the seams' settings: Unknown, DefaultBootFiles, Fallback, FallbackFiles
	blobs blobDir
	q     *eventQueue // what the seams report
	m     *agentMetrics
	log   *slog.Logger
	clock clock.Clock
	seen  coalescer  // events from unauthenticated traffic, once per seenEvery
	disc  *discovery // discovery and boot loops (discovery.go, bootloop.go)
	done  doneTokens // done orders' tokens for first-boot reports (firstboot.go)

	mu       sync.RWMutex
	v        *view
	gen      uint64
	rev      uint64
	macKey   string // the sorted live MAC set, for PolicyChanged
	liveMACs []net.HardwareAddr
	policyCh chan struct{}

	changed chan struct{} // wakes staging after a change
	seq     atomic.Uint64 // bumps on every change, for blob GC
}

// openLocalView removes a half-written snapshot generation left by a
// crash and loads the current one.
func openLocalView(db *badger.DB, log *slog.Logger) (*localView, error) {
	l := &localView{db: db, log: log, policyCh: make(chan struct{}, 1), changed: make(chan struct{}, 1),
		seen: coalescer{every: seenEvery, max: maxCoalesce}}
	err := db.View(func(txn *badger.Txn) error {
		var err error
		if l.gen, err = badgerkv.GetU64(txn, keyGen); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		if l.rev, err = badgerkv.GetU64(txn, keyRev); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	cur := genPrefix(l.gen)
	n, err := badgerkv.DeleteKeys(db, prefixGens, func(k []byte) bool { return bytes.HasPrefix(k, cur) })
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if n > 0 {
		log.Info("removed an unfinished snapshot", "keys", n)
	}
	if l.v, err = loadView(db, l.gen, false); err != nil {
		return nil, err
	}
	l.macKey, l.liveMACs = liveMACsOf(l.v)
	return l, nil
}

// Revision is the synced revision N.
func (l *localView) Revision() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.rev
}

// View returns the persisted view (sorted by id) and its revision, read
// from Badger, for comparison with the manager's.
func (l *localView) View() (targets []api.Target, orders []api.Order, images []api.Image, rev uint64, err error) {
	var gen uint64
	err = l.db.View(func(txn *badger.Txn) error {
		if rev, err = badgerkv.GetU64(txn, keyRev); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		if gen, err = badgerkv.GetU64(txn, keyGen); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, 0, err
	}
	v, err := loadView(l.db, gen, true)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	for _, t := range v.targets {
		targets = append(targets, t)
	}
	for _, o := range v.orders {
		orders = append(orders, o)
	}
	for _, i := range v.images {
		images = append(images, i)
	}
	slices.SortFunc(targets, func(a, b api.Target) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(orders, func(a, b api.Order) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(images, func(a, b api.Image) int { return strings.Compare(a.ID, b.ID) })
	return targets, orders, images, rev, nil
}

// applyChanges writes the changes and the new N in one transaction, then
// updates the in-memory view.
func (l *localView) applyChanges(since uint64, resp api.SyncResponse) error {
	if resp.Revision <= since && len(resp.Changes) == 0 {
		return nil
	}
	l.mu.RLock()
	gen := l.gen
	l.mu.RUnlock()
	rev := max(resp.Revision, since)
	err := l.db.Update(func(txn *badger.Txn) error {
		cur, err := badgerkv.GetU64(txn, keyRev)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		if cur != since {
			return fmt.Errorf("agent: store is at revision %d, the answer continues %d", cur, since)
		}
		for _, c := range resp.Changes {
			if err := putChange(txnOps{txn}, gen, c); err != nil {
				return fmt.Errorf("agent: apply %s %s at rev %d: %w", c.Kind, c.ID, c.Rev, err)
			}
		}
		return txn.Set(keyRev, badgerkv.U64(rev))
	})
	if err != nil {
		return err
	}
	l.mu.Lock()
	for _, c := range resp.Changes {
		l.v.apply(c)
		l.done.remember(c, l.clock.Now())
	}
	l.rev = rev
	l.mu.Unlock()
	l.viewChanged(len(resp.Changes) > 0)
	return nil
}

// snapshot is a new generation being written page by page. Until commit
// the old generation stays current; a crash leaves a partial generation
// that openLocalView removes.
type snapshot struct {
	l        *localView
	old, gen uint64
	v        *view
}

// beginSnapshot starts the generation after the current one.
func (l *localView) beginSnapshot() (*snapshot, error) {
	l.mu.RLock()
	old := l.gen
	l.mu.RUnlock()
	s := &snapshot{l: l, old: old, gen: old + 1, v: newView()}
	if _, err := badgerkv.DeleteKeys(l.db, genPrefix(s.gen), nil); err != nil { // a leftover of an aborted try
		return nil, fmt.Errorf("agent: %w", err)
	}
	return s, nil
}

// page writes one page of the snapshot in a write batch. Deleted or
// ended objects are not part of a view.
func (s *snapshot) page(changes []api.Change) error {
	wb := s.l.db.NewWriteBatch()
	defer wb.Cancel()
	for _, c := range changes {
		if removes(c) {
			continue
		}
		if err := putChange(freshBatch{wb}, s.gen, c); err != nil {
			return fmt.Errorf("agent: snapshot %s %s: %w", c.Kind, c.ID, err)
		}
		s.v.apply(c)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("agent: writing snapshot page: %w", err)
	}
	return nil
}

// abort drops what the snapshot wrote.
func (s *snapshot) abort() { _, _ = badgerkv.DeleteKeys(s.l.db, genPrefix(s.gen), nil) }

// commit switches generation and N in one small transaction, then drops
// the old generation.
func (s *snapshot) commit(rev uint64) error {
	l := s.l
	err := l.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(keyGen, badgerkv.U64(s.gen)); err != nil {
			return err
		}
		return txn.Set(keyRev, badgerkv.U64(rev))
	})
	if err != nil {
		return fmt.Errorf("agent: switching to snapshot at rev %d: %w", rev, err)
	}
	l.mu.Lock()
	l.v, l.gen, l.rev = s.v, s.gen, rev
	l.mu.Unlock()
	l.m.snapshots.Inc()
	if _, err := badgerkv.DeleteKeys(l.db, genPrefix(s.old), nil); err != nil {
		l.log.Warn("dropping the previous view", "err", err)
	}
	l.log.Info("snapshot applied", "revision", rev, "targets", len(s.v.targets),
		"orders", len(s.v.orders), "images", len(s.v.images))
	l.viewChanged(true)
	return nil
}

// viewChanged refreshes the gauges and the MAC policy and wakes staging.
func (l *localView) viewChanged(changed bool) {
	l.mu.Lock()
	l.m.syncedRevision.Set(float64(l.rev))
	l.m.ordersLive.Set(float64(len(l.v.orders)))
	var policy bool
	if changed {
		key, macs := liveMACsOf(l.v)
		if key != l.macKey {
			l.macKey, l.liveMACs, policy = key, macs, true
		}
	}
	l.mu.Unlock()
	if policy {
		wake(l.policyCh)
	}
	if changed {
		l.seq.Add(1)
		wake(l.changed)
	}
}

// LiveMACs returns the MACs the XDP policy should pass to DHCP: targets
// whose live order is staged, booting or installing.
func (l *localView) LiveMACs() []net.HardwareAddr {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Clone(l.liveMACs)
}

// PolicyChanged is signalled after an applied batch changed LiveMACs.
func (l *localView) PolicyChanged() <-chan struct{} { return l.policyCh }
