package mdb

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
)

// Power requests: a work queue per site. The API makes a request; a boot
// server of the target's site claims it with a lease, runs it and reports
// the result; a lease that runs out (the boot server died) puts the
// request back for another claim.
const (
	pPower    = "mdb/pw/"  // + id → PowerRequest JSON
	pPowerQ   = "mdb/pwq/" // + site/id → "" while pending or running
	pPowerTgt = "mdb/pwt/" // + target/id → "": a target's requests
)

// MaxPowerAttempts bounds the claims of one request.
const MaxPowerAttempts = 5

// CreatePowerRequest queues action on target id (by: the asking token).
func (d *DB) CreatePowerRequest(ctx context.Context, id string, req api.PowerActionRequest, by string) (p api.PowerRequest, err error) {
	if !slices.Contains(api.PowerActions, req.Action) {
		return p, invalidf("action: %q is not one of %v", req.Action, api.PowerActions)
	}
	err = d.update(ctx, func(w *wtx) error {
		t, err := getTarget(w.txn, id)
		if err != nil {
			return err
		}
		if t.Power == nil {
			return fmt.Errorf("%w: target %s has no power spec (PATCH its power first)", ErrUnprocessable, t.Hostname)
		}
		if t.Power.Driver == "manual" {
			return fmt.Errorf("%w: target %s is powered by hand (driver manual)", ErrUnprocessable, t.Hostname)
		}
		pid, err := w.newID("pw-", pPower)
		if err != nil {
			return err
		}
		p = api.PowerRequest{ID: pid, Target: t.ID, Site: t.Site, Action: req.Action, NetworkBoot: req.NetworkBoot,
			State: api.PowerPending, Power: t.Power, MAC: t.MACs[0], By: by, Created: w.now, Updated: w.now}
		if err := w.setJSON(k(pPower, pid), p); err != nil {
			return err
		}
		if err := w.set(k(pPowerTgt, t.ID, "/", pid), nil); err != nil {
			return err
		}
		return w.set(k(pPowerQ, t.Site, "/", pid), nil)
	})
	return p, err
}

// GetPowerRequest reads one request.
func (d *DB) GetPowerRequest(ctx context.Context, id string) (p api.PowerRequest, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		ok, err := badgerkv.GetJSON(txn, k(pPower, id), &p)
		if err == nil && !ok {
			err = fmt.Errorf("%w: power request %q", ErrNotFound, id)
		}
		return err
	})
	return p, err
}

// ListPowerRequests lists a target's requests, newest first (at most 100).
func (d *DB) ListPowerRequests(ctx context.Context, target string) (out []api.PowerRequest, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		pre := k(pPowerTgt, target, "/")
		return scan(txn, string(pre), "", false, func(key []byte, _ *badger.Item) (bool, error) {
			var p api.PowerRequest
			ok, err := badgerkv.GetJSON(txn, k(pPower, string(key[len(pre):])), &p)
			if ok {
				out = append(out, p)
			}
			return err == nil, err
		})
	})
	slices.SortFunc(out, func(a, b api.PowerRequest) int { return b.Created.Compare(a.Created) })
	return out[:min(len(out), 100)], err
}

// DropPowerRequests deletes the finished requests (done or failed) last
// updated before before; their events stay on the targets' timelines.
func (d *DB) DropPowerRequests(ctx context.Context, before time.Time) (n int, err error) {
	var old []api.PowerRequest
	err = d.view(ctx, func(txn *badger.Txn) error {
		return scan(txn, pPower, "", true, func(_ []byte, item *badger.Item) (bool, error) {
			var p api.PowerRequest
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &p) }); err != nil {
				return false, err
			}
			if (p.State == api.PowerDone || p.State == api.PowerFailed) && p.Updated.Before(before) {
				old = append(old, p)
			}
			return true, nil
		})
	})
	for len(old) > 0 && err == nil {
		chunk := old[:min(len(old), 1000)]
		old = old[len(chunk):]
		err = d.update(ctx, func(w *wtx) error {
			for _, p := range chunk {
				if err := w.del(k(pPower, p.ID)); err != nil {
					return err
				}
				if err := w.del(k(pPowerTgt, p.Target, "/", p.ID)); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			n += len(chunk)
		}
	}
	return n, err
}

// ClaimPower gives boot server bs (of site) up to max requests of its
// site that are pending or whose lease ran out, each leased for lease.
// A request claimed MaxPowerAttempts times fails instead.
func (d *DB) ClaimPower(ctx context.Context, bs, site string, lease time.Duration, max int) (out []api.PowerRequest, err error) {
	err = d.update(ctx, func(w *wtx) error {
		pre := k(pPowerQ, site, "/")
		var ids []string
		err := scan(w.txn, string(pre), "", false, func(key []byte, _ *badger.Item) (bool, error) {
			ids = append(ids, string(key[len(pre):]))
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			if len(out) == max {
				break
			}
			var p api.PowerRequest
			if _, err := badgerkv.GetJSON(w.txn, k(pPower, id), &p); err != nil {
				return err
			}
			if p.State == api.PowerRunning && w.now.Before(p.LeaseUntil) {
				continue
			}
			if p.Attempt >= MaxPowerAttempts {
				p.State, p.Message = api.PowerFailed, fmt.Sprintf("no result after %d claims (the boot servers running it went away)", p.Attempt)
				if err := w.finishPower(&p, ""); err != nil {
					return err
				}
				continue
			}
			p.State, p.BootServer, p.LeaseUntil, p.Updated = api.PowerRunning, bs, w.now.Add(lease), w.now
			p.Attempt++
			if err := w.setJSON(k(pPower, id), p); err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// PowerPending reports whether site has a request a claim would take.
func (d *DB) PowerPending(ctx context.Context, site string) (pending bool, next time.Time, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error {
		pre := k(pPowerQ, site, "/")
		now := d.opts.Clock.Now()
		return scan(txn, string(pre), "", false, func(key []byte, _ *badger.Item) (bool, error) {
			var p api.PowerRequest
			if _, err := badgerkv.GetJSON(txn, k(pPower, string(key[len(pre):])), &p); err != nil {
				return false, err
			}
			if p.State == api.PowerPending || !now.Before(p.LeaseUntil) {
				pending = true
				return false, nil
			}
			if next.IsZero() || p.LeaseUntil.Before(next) {
				next = p.LeaseUntil
			}
			return true, nil
		})
	})
	return pending, next, err
}

// WaitPower blocks until the store changes (a request may be pending).
func (d *DB) WaitPower(ctx context.Context) error {
	d.nmu.Lock()
	ch := d.notify
	d.nmu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// FinishPower records bs's result of request id, which bs must hold.
func (d *DB) FinishPower(ctx context.Context, bs, id string, r api.PowerResult) (p api.PowerRequest, err error) {
	err = d.update(ctx, func(w *wtx) error {
		ok, err := badgerkv.GetJSON(w.txn, k(pPower, id), &p)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: power request %q", ErrNotFound, id)
		}
		if p.State != api.PowerRunning || p.BootServer != bs {
			return fmt.Errorf("%w: power request %s is %s (boot server %q), not held by %s", ErrConflict, id, p.State, p.BootServer, bs)
		}
		p.State, p.Message = api.PowerDone, r.Message
		if !r.OK {
			p.State = api.PowerFailed
		}
		return w.finishPower(&p, r.State)
	})
	return p, err
}

// finishPower ends p (done or failed): off the queue, and an event on the
// target's timeline.
func (w *wtx) finishPower(p *api.PowerRequest, machine string) error {
	p.Updated, p.LeaseUntil = w.now, time.Time{}
	if err := w.setJSON(k(pPower, p.ID), *p); err != nil {
		return err
	}
	if err := w.del(k(pPowerQ, p.Site, "/", p.ID)); err != nil {
		return err
	}
	data := map[string]string{"request": p.ID, "action": p.Action, "outcome": p.State, "attempt": fmt.Sprint(p.Attempt)}
	if machine != "" {
		data["power"] = machine
	}
	if p.NetworkBoot {
		data["network_boot"] = "true"
	}
	// On the target's timeline, and on its live order's (a rollout's
	// power cycle that failed shows where the order is watched).
	ev := api.Event{Type: api.EventPower, Target: p.Target, Phase: p.State, Message: p.Message, Data: data}
	if t, err := getTarget(w.txn, p.Target); err == nil {
		ev.Order = t.CurrentOrder
	}
	_, err := w.putEvent(ev)
	return err
}
