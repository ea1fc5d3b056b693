package manager

import (
	"context"
	"errors"
	"net/http"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
	"osim/internal/clock"
)

// listEvents pages through events; with ?wait= it long-polls until an
// event past ?after= matches or the wait ends.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, _ *principal) {
	after, _, err := queryUint(r, "after")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := queryLimit(r, 100, 1000)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wait, err := queryWait(r, s.cfg.SyncWaitMax)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	qv := r.URL.Query()
	q := mdb.EventQuery{After: after, Limit: limit, Order: qv.Get("order"), Target: qv.Get("target"), Type: qv.Get("type")}
	switch qv.Get("newest") {
	case "", "0", "false":
	case "1", "true":
		// The newest matching events, no waiting: where a tail starts.
		// Last is the store's last seq read before the listing, so an
		// event written meanwhile is after it, not skipped.
		q.Newest, wait = true, 0
		if after, err = s.store.LastEventSeq(r.Context()); err != nil {
			s.fail(w, r, err)
			return
		}
		after = max(after, q.After)
	default:
		s.fail(w, r, errorf(http.StatusBadRequest, "query newest: %q is not 1 or 0", qv.Get("newest")))
		return
	}
	evs, err := s.store.ListEvents(r.Context(), q)
	if err == nil && len(evs) == 0 && wait > 0 {
		ctx, cancel := clock.WithTimeout(r.Context(), s.cfg.Clock, wait)
		evs, err = s.waitEvents(ctx, q)
		cancel()
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.EventList{Events: evs, Last: after}
	if out.Events == nil {
		out.Events = []api.Event{}
	}
	if n := len(evs); n > 0 {
		out.Last = evs[n-1].Seq
	}
	writeJSON(w, http.StatusOK, out)
}

// revision answers GET /revision?after=N&wait=D: the MDB's revision, the
// counter every change to targets, images, orders and boot servers' view
// moves (the change stream boot servers sync from), once it passes after
// or the wait ends. The console's live pages follow it.
func (s *Server) revision(w http.ResponseWriter, r *http.Request, _ *principal) {
	after, _, err := queryUint(r, "after")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wait, err := queryWait(r, s.cfg.SyncWaitMax)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rev, err := s.store.Revision(r.Context())
	if err == nil && rev <= after && wait > 0 {
		// The wait ends by a change or by its timeout; either way the
		// answer is the revision now.
		ctx, cancel := clock.WithTimeout(r.Context(), s.cfg.Clock, wait)
		s.store.WaitRevision(ctx, after)
		cancel()
		rev, err = s.store.Revision(r.Context())
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.RevisionInfo{Revision: rev})
}

// waitEvents waits for events matching q until ctx ends (then: none, no
// error). Other events wake it too; it skips past them.
func (s *Server) waitEvents(ctx context.Context, q mdb.EventQuery) ([]api.Event, error) {
	seen := q.After
	for {
		err := s.store.WaitEvents(ctx, seen)
		if ctx.Err() != nil {
			return nil, nil // the wait ended: nothing new
		}
		if err != nil {
			return nil, err
		}
		evs, err := s.store.ListEvents(ctx, q)
		if err != nil || len(evs) > 0 {
			if ctx.Err() != nil {
				return nil, nil
			}
			return evs, err
		}
		last, err := s.store.LastEventSeq(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, err
		}
		seen = max(seen, last)
	}
}

func (s *Server) uploadEvents(w http.ResponseWriter, r *http.Request, p *principal) {
	id, err := callerBootServer(p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var b api.EventBatch
	if err := decode(w, r, eventsBodyFactor*s.cfg.MaxBody, &b); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(b.Events) > MaxEventBatch {
		s.fail(w, r, errorf(http.StatusRequestEntityTooLarge, "events: %d in one batch is over the limit of %d", len(b.Events), MaxEventBatch))
		return
	}
	bs, err := s.store.GetBootServer(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ack, err := s.store.IngestEvents(r.Context(), id, bs.Site, b.Events)
	var foreign *mdb.ForeignEventsError
	if errors.As(err, &foreign) {
		s.metrics.eventsRefused.WithLabelValues(api.ErrReasonForeignSite).Inc()
		s.log.Warn("events refused: a boot server reported on another site's machines",
			"boot_server", bs.Name, "id", bs.ID, "site", bs.Site, "events", len(b.Events), "refused", len(foreign.Seqs), "err", err)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusForbidden, api.Error{Code: http.StatusForbidden, Message: err.Error(),
			Reason: api.ErrReasonForeignSite, Refused: foreign.Seqs})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.metrics.eventsIngested.Add(float64(ack.Accepted))
	s.metrics.eventsDuplicate.Add(float64(ack.Duplicates))
	writeJSON(w, http.StatusOK, ack)
}

// sync answers a boot server's change stream for its site: incremental
// (?since=N, long-polling with ?wait=) or a snapshot page (?snapshot=C,
// and since=0 or a since older than the change log).
func (s *Server) sync(w http.ResponseWriter, r *http.Request, p *principal) {
	id, err := callerBootServer(p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	qv := r.URL.Query()
	since, hasSince, err := queryUint(r, "since")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cursor, hasCursor := qv.Get("snapshot"), qv.Has("snapshot")
	if hasSince == hasCursor {
		s.fail(w, r, errorf(http.StatusBadRequest, "exactly one of the queries since and snapshot must be set"))
		return
	}
	limit, err := queryLimit(r, DefaultSyncLimit, MaxSyncLimit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wait, err := queryWait(r, s.cfg.SyncWaitMax)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	bs, err := s.store.GetBootServer(ctx, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var resp api.SyncResponse
	switch {
	case hasCursor:
		if cursor == "" {
			s.fail(w, r, errorf(http.StatusBadRequest, "query snapshot: empty cursor (start a snapshot with since=0)"))
			return
		}
		resp, err = s.store.Snapshot(ctx, bs.Site, cursor, limit)
	case since == 0:
		resp, err = s.store.Snapshot(ctx, bs.Site, "", limit)
	default:
		s.noteSynced(id, since)
		resp, err = s.changes(ctx, bs.Site, since, limit, wait)
		if errors.Is(err, mdb.ErrGone) {
			s.log.Info("sync: change log passed the boot server; sending a snapshot", "boot_server", id, "since", since)
			resp, err = s.store.Snapshot(ctx, bs.Site, "", limit)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if resp.Changes == nil {
		resp.Changes = []api.Change{}
	}
	writeJSON(w, http.StatusOK, resp)
}

// changes returns the changes for site since since, waiting up to wait
// for the first one.
func (s *Server) changes(ctx context.Context, site string, since uint64, limit int, wait time.Duration) (api.SyncResponse, error) {
	resp, err := s.store.Changes(ctx, site, since, limit)
	if err != nil || len(resp.Changes) > 0 || wait <= 0 {
		return resp, err
	}
	s.metrics.syncClients.Inc()
	defer s.metrics.syncClients.Dec()
	wctx, cancel := clock.WithTimeout(ctx, s.cfg.Clock, wait)
	defer cancel()
	// When only other sites changed, answer within otherSitesLag so the
	// caller's revision (and the lag metric, and its heartbeat) move on,
	// without a wake-up per foreign write.
	capped, cancelCap := false, context.CancelFunc(func() {})
	defer func() { cancelCap() }()
	capWait := func() {
		if !capped && resp.Revision > since {
			capped = true
			wctx, cancelCap = clock.WithTimeout(wctx, s.cfg.Clock, otherSitesLag)
		}
	}
	capWait()
	for {
		if _, err := s.store.WaitRevision(wctx, max(resp.Revision, since)); err != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				return resp, nil // the wait ended: nothing new
			}
			return resp, err
		}
		next, err := s.store.Changes(ctx, site, since, limit)
		if err != nil {
			return next, err
		}
		if len(next.Changes) > 0 {
			return next, nil
		}
		resp = next
		capWait()
	}
}

// otherSitesLag bounds how long a sync long-poll holds back an answer
// that only moves the caller past other sites' revisions.
const otherSitesLag = 2 * time.Second
