package mdb

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
)

// pRollout + id → Rollout JSON. The manager's rollout engine keeps its
// whole state here, so a restarted manager goes on where it was.
const pRollout = "mdb/ro/"

// CreateRollout stores a new rollout under a fresh id.
func (d *DB) CreateRollout(ctx context.Context, r api.Rollout) (api.Rollout, error) {
	err := d.update(ctx, func(w *wtx) error {
		id, err := w.newID("ro-", pRollout)
		if err != nil {
			return err
		}
		r.ID, r.Created, r.Updated = id, w.now, w.now
		return w.setJSON(k(pRollout, id), r)
	})
	return r, err
}

// PutRollout replaces a rollout (the engine's and the API's writes).
func (d *DB) PutRollout(ctx context.Context, r api.Rollout) (api.Rollout, error) {
	err := d.update(ctx, func(w *wtx) error {
		ok, err := badgerkv.Exists(w.txn, k(pRollout, r.ID))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: rollout %q", ErrNotFound, r.ID)
		}
		r.Updated = w.now
		return w.setJSON(k(pRollout, r.ID), r)
	})
	return r, err
}

// GetRollout reads one rollout.
func (d *DB) GetRollout(ctx context.Context, id string) (r api.Rollout, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		ok, err := badgerkv.GetJSON(txn, k(pRollout, id), &r)
		if err == nil && !ok {
			err = fmt.Errorf("%w: rollout %q", ErrNotFound, id)
		}
		return err
	})
	return r, err
}

// ListRollouts lists every rollout.
func (d *DB) ListRollouts(ctx context.Context) (out []api.Rollout, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		return scan(txn, pRollout, "", true, func(_ []byte, item *badger.Item) (bool, error) {
			var r api.Rollout
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &r) }); err != nil {
				return false, err
			}
			out = append(out, r)
			return true, nil
		})
	})
	return out, err
}
