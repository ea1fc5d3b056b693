package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
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
			a.log.Warn("sync failed", "since", a.Revision(), "err", err)
			if !bo.sleep(ctx) {
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
		if err := a.space.room(0); err != nil {
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
			a.log.Warn("sync answer too large for one transaction, asking for less", "changes", len(resp.Changes), "limit", limit)
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

// takeSnapshot fetches every page after first into a new generation,
// then makes it current (see snapshot).
func (a *Agent) takeSnapshot(ctx context.Context, first api.SyncResponse, limit int) error {
	s, err := a.beginSnapshot()
	if err != nil {
		return err
	}
	page := first
	for pages := 1; ; pages++ {
		if err := s.page(page.Changes); err != nil {
			return err
		}
		if page.Cursor == "" {
			break
		}
		next, err := a.cfg.Client.SyncSnapshot(ctx, page.Cursor, limit)
		if err != nil {
			s.abort()
			return fmt.Errorf("agent: snapshot page %d: %w", pages+1, err)
		}
		page = next
	}
	return s.commit(first.Revision)
}
