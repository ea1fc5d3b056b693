package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
	"osim/internal/clock"
)

// eventQueue buffers events for the manager in Badger (evq/, with the
// counter agent/evseq) and uploads them in order.
type eventQueue struct {
	db      *badger.DB
	client  *api.Client
	batch   int // the most events per upload
	space   guard
	backoff func() *backoff
	m       *agentMetrics
	log     *slog.Logger
	clock   clock.Clock

	mu   sync.Mutex // one writer of agent/evseq at a time
	wake chan struct{}
}

// Emit buffers e for the manager: it is in Badger, with the next
// OriginSeq, before Emit returns; the uploader sends it when the manager
// is reachable. A zero Time becomes the clock's now. While the data dir
// is below its free-space reserve the event is dropped, counted in
// osim_agent_events_dropped_total, and Emit returns nil: the disk guard
// logs the state once, not once per packet.
func (q *eventQueue) Emit(e api.Event) error {
	if err := q.emitWith(nil, e); !errors.Is(err, errNoRoom) {
		return err
	}
	return nil
}

// errNoRoom marks events dropped for want of disk space.
var errNoRoom = errors.New("no room in the data dir")

// emitWith writes events and whatever extra writes in one transaction.
func (q *eventQueue) emitWith(extra func(*badger.Txn) error, evs ...api.Event) error {
	if err := q.space.room(0); err != nil {
		// The disk is nearly full: what happened is logged by the caller
		// and counted here, not buffered.
		for _, e := range evs {
			q.m.eventsDropped.WithLabelValues(e.Type).Inc()
		}
		return fmt.Errorf("agent: dropping %d event(s): %w: %w", len(evs), errNoRoom, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	err := q.db.Update(func(txn *badger.Txn) error {
		seq, err := badgerkv.GetU64(txn, keyEvSeq)
		if err != nil {
			return err
		}
		for _, e := range evs {
			seq++
			e.Seq, e.Origin, e.OriginSeq = 0, "", seq
			if e.Time.IsZero() {
				e.Time = q.clock.Now()
			}
			if err := badgerkv.SetJSON(txn, evqKey(seq), e); err != nil {
				return err
			}
		}
		if err := txn.Set(keyEvSeq, badgerkv.U64(seq)); err != nil {
			return err
		}
		if extra != nil {
			return extra(txn)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("agent: buffering %d event(s): %w", len(evs), err)
	}
	for _, e := range evs {
		q.m.eventsEmitted.WithLabelValues(e.Type).Inc()
	}
	q.m.addPending(int64(len(evs)))
	wake(q.wake)
	return nil
}

func (q *eventQueue) countPending() (int, error) {
	n := 0
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixEvq})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// readBatch returns up to n buffered events, lowest seq first.
func (q *eventQueue) readBatch(n int) ([]api.Event, error) {
	var out []api.Event
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixEvq, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(out) < n; it.Next() {
			var e api.Event
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &e) }); err != nil {
				return fmt.Errorf("agent: decode %x: %w", it.Item().Key(), err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// forget deletes the buffered events with OriginSeq <= last.
func (q *eventQueue) forget(last uint64) (int, error) {
	n, err := badgerkv.DeleteKeys(q.db, prefixEvq, func(k []byte) bool {
		return len(k) != len(prefixEvq)+8 || binary.BigEndian.Uint64(k[len(prefixEvq):]) > last
	})
	if err == nil {
		q.m.addPending(-int64(n))
	}
	return n, err
}

// dropEvents deletes the buffered events with these OriginSeqs.
func (q *eventQueue) dropEvents(seqs []uint64) (int, error) {
	want := make(map[uint64]bool, len(seqs))
	for _, s := range seqs {
		want[s] = true
	}
	n, err := badgerkv.DeleteKeys(q.db, prefixEvq, func(k []byte) bool {
		return len(k) != len(prefixEvq)+8 || !want[binary.BigEndian.Uint64(k[len(prefixEvq):])]
	})
	if err == nil {
		q.m.addPending(-int64(n))
	}
	return n, err
}

// foreignRefused returns the OriginSeqs of batch that the manager refused
// for naming another site's machines (403, reason foreign_site).
func foreignRefused(err error, batch []api.Event) []uint64 {
	var e *api.Error
	if !errors.As(err, &e) || e.Code != http.StatusForbidden || e.Reason != api.ErrReasonForeignSite {
		return nil
	}
	in := make(map[uint64]bool, len(batch))
	for _, ev := range batch {
		in[ev.OriginSeq] = true
	}
	var out []uint64
	for _, s := range e.Refused {
		if in[s] {
			out = append(out, s)
		}
	}
	return out
}

// uploadLoop sends buffered events in seq order, forgets what the manager
// acknowledged, backs off while it is unreachable, and sleeps until Emit
// wakes it when the buffer is empty.
func (q *eventQueue) run(ctx context.Context) {
	bo := q.backoff()
	size := q.batch
	for ctx.Err() == nil {
		batch, err := q.readBatch(size)
		if err != nil {
			q.log.Error("reading the event buffer", "err", err)
			if !bo.sleep(ctx) {
				return
			}
			continue
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
			}
			continue
		}
		ack, err := q.client.UploadEvents(ctx, api.EventBatch{Events: batch})
		if seqs := foreignRefused(err, batch); len(seqs) > 0 {
			// Events about machines of another site (one moved away after
			// the event was recorded): the manager will never take them,
			// and the rest of the batch waits behind them.
			q.m.reachable.Set(1)
			n, derr := q.dropEvents(seqs)
			if derr != nil {
				q.log.Error("dropping refused events", "err", derr)
				if !bo.sleep(ctx) {
					return
				}
				continue
			}
			q.m.eventsRefused.Add(float64(n))
			q.log.Warn("the manager refuses events about another site's machines; dropped them",
				"dropped", n, "first", seqs[0], "err", err)
			continue
		}
		if rejected(err) {
			// The manager refuses the batch itself, retrying it as it is
			// would block the buffer forever: halve it until the event it
			// refuses is alone, then drop that one.
			q.m.reachable.Set(1)
			if len(batch) > 1 {
				size = max(1, len(batch)/2)
				continue
			}
			q.log.Error("the manager refuses an event; dropping it", "origin_seq", batch[0].OriginSeq,
				"type", batch[0].Type, "err", err)
			ack, err = api.EventAck{LastSeq: batch[0].OriginSeq}, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			q.m.reachable.Set(0)
			q.log.Debug("event upload failed", "events", len(batch), "first", batch[0].OriginSeq, "err", err)
			if !bo.sleep(ctx) {
				return
			}
			continue
		}
		q.m.reachable.Set(1)
		n, err := q.forget(ack.LastSeq)
		if err != nil {
			q.log.Error("forgetting acknowledged events", "last_seq", ack.LastSeq, "err", err)
		}
		q.m.eventsUploaded.Add(float64(n))
		if n == 0 {
			// The manager took none of them: do not spin on the same batch.
			q.log.Warn("manager acknowledged no event of the batch", "first", batch[0].OriginSeq, "last_seq", ack.LastSeq)
			if !bo.sleep(ctx) {
				return
			}
			continue
		}
		bo.reset()
		size = q.batch
	}
}

// rejected reports whether the manager refused an upload for its content
// (a retry of the same batch cannot succeed), not for being unavailable
// or for the credential.
func rejected(err error) bool {
	var e *api.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}
