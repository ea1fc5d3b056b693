package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/controlplane/lifecycle"
)

// maxReducedLimit: a sync limit reduced after a too-large answer grows
// back by doubling and is dropped (the configured limit again) past this.
const maxReducedLimit = 10000

// syncLoop long-polls the manager and applies what it answers.
func (a *Agent) syncLoop(ctx context.Context) {
	bo := a.newBackoff()
	for ctx.Err() == nil {
		if err := a.syncOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.m.syncRequests.WithLabelValues("error").Inc()
			a.m.reachable.Set(0)
			a.log.Warn("agent: sync failed", "since", a.Revision(), "err", err)
			if !sleep(ctx, bo.next()) {
				return
			}
			continue
		}
		a.m.reachable.Set(1)
		bo.reset()
	}
}

// syncOnce asks for the changes since N (one long-poll) and applies them,
// or takes the whole snapshot when the manager answers with one.
func (a *Agent) syncOnce(ctx context.Context) error {
	limit := a.cfg.SyncLimit
	if a.syncLimit > 0 {
		limit = a.syncLimit
	}
	for {
		// Nothing is fetched that could not be stored: the answer would
		// be thrown away, and the long-poll would hide the wait.
		if err := a.room(0); err != nil {
			return err
		}
		since := a.Revision()
		resp, err := a.cfg.Client.Sync(ctx, since, a.cfg.SyncWait, limit)
		if api.IsStatus(err, http.StatusGone) && since != 0 {
			// N is older than the manager's log: since=0 answers a snapshot.
			resp, err = a.cfg.Client.Sync(ctx, 0, 0, limit)
		}
		if err != nil {
			return err
		}
		if resp.Snapshot {
			a.m.syncRequests.WithLabelValues("snapshot").Inc()
			return a.takeSnapshot(ctx, resp, limit)
		}
		err = a.applyChanges(since, resp)
		if errors.Is(err, badger.ErrTxnTooBig) && len(resp.Changes) > 1 {
			// Ask again for less: the manager still answers whole revisions.
			limit = max(1, len(resp.Changes)/2)
			a.syncLimit = limit
			a.log.Warn("agent: sync answer too large for one transaction, asking for less", "changes", len(resp.Changes), "limit", limit)
			continue
		}
		if err != nil {
			return err
		}
		if a.syncLimit > 0 {
			// Grow back after a too-large answer, to the configured limit.
			if a.syncLimit *= 2; a.syncLimit > maxReducedLimit {
				a.syncLimit = 0
			}
		}
		if len(resp.Changes) == 0 {
			a.m.syncRequests.WithLabelValues("empty").Inc()
		} else {
			a.m.syncRequests.WithLabelValues("changes").Inc()
		}
		return nil
	}
}

// applyChanges writes the changes and the new N in one transaction, then
// updates the in-memory view.
func (a *Agent) applyChanges(since uint64, resp api.SyncResponse) error {
	if resp.Revision <= since && len(resp.Changes) == 0 {
		return nil
	}
	a.mu.RLock()
	gen := a.gen
	a.mu.RUnlock()
	rev := max(resp.Revision, since)
	err := a.db.Update(func(txn *badger.Txn) error {
		cur, err := getU64(txn, keyRev)
		if err != nil {
			return err
		}
		if cur != since {
			return fmt.Errorf("agent: store is at revision %d, the answer continues %d", cur, since)
		}
		for _, c := range resp.Changes {
			if err := applyTxn(txn, gen, c); err != nil {
				return fmt.Errorf("agent: apply %s %s at rev %d: %w", c.Kind, c.ID, c.Rev, err)
			}
		}
		return txn.Set(keyRev, u64(rev))
	})
	if err != nil {
		return err
	}
	a.mu.Lock()
	for _, c := range resp.Changes {
		a.v.apply(c)
	}
	a.rev = rev
	a.mu.Unlock()
	a.viewChanged(len(resp.Changes) > 0)
	return nil
}

// takeSnapshot fetches every page after first, writes them under a new
// generation, then switches generation and N in one small transaction
// and drops the old generation. Until the switch the old view stays
// current; a crash leaves a partial generation that New removes.
func (a *Agent) takeSnapshot(ctx context.Context, first api.SyncResponse, limit int) error {
	a.mu.RLock()
	old := a.gen
	a.mu.RUnlock()
	gen := old + 1
	if _, err := deleteKeys(a.db, genPrefix(gen), nil); err != nil { // a leftover of an aborted try
		return err
	}
	v := newView()
	page := first
	for pages := 1; ; pages++ {
		if err := a.writePage(gen, v, page.Changes); err != nil {
			return err
		}
		if page.Cursor == "" {
			break
		}
		next, err := a.cfg.Client.SyncSnapshot(ctx, page.Cursor, limit)
		if err != nil {
			_, _ = deleteKeys(a.db, genPrefix(gen), nil)
			return fmt.Errorf("agent: snapshot page %d: %w", pages+1, err)
		}
		page = next
	}
	err := a.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(keyGen, u64(gen)); err != nil {
			return err
		}
		return txn.Set(keyRev, u64(first.Revision))
	})
	if err != nil {
		return fmt.Errorf("agent: switching to snapshot at rev %d: %w", first.Revision, err)
	}
	a.mu.Lock()
	a.v, a.gen, a.rev = v, gen, first.Revision
	a.mu.Unlock()
	a.m.snapshots.Inc()
	if _, err := deleteKeys(a.db, genPrefix(old), nil); err != nil {
		a.log.Warn("agent: dropping the previous view", "err", err)
	}
	a.log.Info("agent: snapshot applied", "revision", first.Revision, "targets", len(v.targets),
		"orders", len(v.orders), "images", len(v.images))
	a.viewChanged(true)
	return nil
}

func (a *Agent) writePage(gen uint64, v *view, changes []api.Change) error {
	wb := a.db.NewWriteBatch()
	defer wb.Cancel()
	set := func(k []byte, val any) error {
		b, err := json.Marshal(val)
		if err != nil {
			return err
		}
		return wb.Set(k, b)
	}
	for _, c := range changes {
		var err error
		switch {
		case c.Kind == api.ChangeTarget && !c.Deleted && c.Target != nil:
			if err = set(objKey(gen, 't', c.ID), c.Target); err == nil {
				for _, m := range c.Target.MACs {
					if err = wb.Set(objKey(gen, 'm', canonMAC(m)), []byte(c.ID)); err != nil {
						break
					}
				}
			}
		case c.Kind == api.ChangeOrder && !orderLeaves(c):
			err = set(objKey(gen, 'o', c.ID), c.Order)
		case c.Kind == api.ChangeImage && !c.Deleted && c.Image != nil:
			err = set(objKey(gen, 'i', c.ID), c.Image)
		default:
			continue // deleted or ended objects are not part of a view
		}
		if err != nil {
			return fmt.Errorf("agent: snapshot %s %s: %w", c.Kind, c.ID, err)
		}
		v.apply(c)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("agent: writing snapshot page: %w", err)
	}
	return nil
}

// viewChanged refreshes the gauges and the MAC policy and wakes staging.
func (a *Agent) viewChanged(changed bool) {
	a.mu.Lock()
	a.m.syncedRevision.Set(float64(a.rev))
	a.m.ordersLive.Set(float64(len(a.v.orders)))
	var policy bool
	if changed {
		key, macs := liveMACsOf(a.v)
		if key != a.macKey {
			a.macKey, a.liveMACs, policy = key, macs, true
		}
	}
	a.mu.Unlock()
	if policy {
		wake(a.policyCh)
	}
	if changed {
		a.viewSeq.Add(1)
		wake(a.stageWake)
	}
}

// liveMACsOf lists the MACs the DHCP service answers with an installer:
// those of targets whose live order is staged, booting or installing.
func liveMACsOf(v *view) (string, []net.HardwareAddr) {
	var set []string
	for _, o := range v.orders {
		if !lifecycle.Boots(o.State) {
			continue
		}
		macs := o.MACs
		if t, ok := v.targets[o.Target]; ok {
			macs = t.MACs
		}
		for _, m := range macs {
			set = append(set, canonMAC(m))
		}
	}
	slices.Sort(set)
	set = slices.Compact(set)
	out := make([]net.HardwareAddr, 0, len(set))
	for _, m := range set {
		if hw, err := net.ParseMAC(m); err == nil {
			out = append(out, hw)
		}
	}
	return strings.Join(set, ","), out
}

// LiveMACs returns the MACs the XDP policy should pass to DHCP: targets
// whose live order is staged, booting or installing.
func (a *Agent) LiveMACs() []net.HardwareAddr {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return slices.Clone(a.liveMACs)
}

// PolicyChanged is signalled after an applied batch changed LiveMACs.
func (a *Agent) PolicyChanged() <-chan struct{} { return a.policyCh }
