package mdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
)

func getTarget(txn *badger.Txn, id string) (api.Target, error) {
	var t api.Target
	ok, err := badgerkv.GetJSON(txn, k(pTarget, id), &t)
	if err != nil {
		return t, err
	}
	if !ok {
		return t, fmt.Errorf("%w: target %s", ErrNotFound, id)
	}
	return t, nil
}

// putTarget stores t at this revision and logs it for its site.
func (w *wtx) putTarget(t *api.Target) error {
	t.Revision = w.bump()
	t.Updated = w.now
	if err := w.setJSON(k(pTarget, t.ID), t); err != nil {
		return err
	}
	c := *t
	w.logChange(t.Site, api.Change{Kind: api.ChangeTarget, ID: t.ID, Target: &c})
	return nil
}

// checkMACs returns ErrConflict if a MAC belongs to a target other than self.
func checkMACs(txn *badger.Txn, macs []string, self, label string) error {
	for i, m := range macs {
		owner, ok, err := badgerkv.GetString(txn, k(pMAC, m))
		if err != nil {
			return err
		}
		if ok && owner != self {
			return fmt.Errorf("%w: %smacs[%d] %s belongs to target %s", ErrConflict, label, i, m, owner)
		}
	}
	return nil
}

// CreateTarget creates one target.
func (d *DB) CreateTarget(ctx context.Context, spec api.TargetSpec) (api.Target, error) {
	ts, err := d.createTargets(ctx, []api.TargetSpec{spec}, false)
	if err != nil {
		return api.Target{}, err
	}
	return ts[0], nil
}

// CreateTargets validates every spec, then creates them in transactions
// of at most 1000.
func (d *DB) CreateTargets(ctx context.Context, specs []api.TargetSpec) ([]api.Target, error) {
	return d.createTargets(ctx, specs, true)
}

func (d *DB) createTargets(ctx context.Context, specs []api.TargetSpec, many bool) ([]api.Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name := func(i int) string {
		if many {
			return fmt.Sprintf("specs[%d]: ", i)
		}
		return ""
	}
	specs = append([]api.TargetSpec(nil), specs...)
	seen := map[string]int{}
	for i := range specs {
		s := &specs[i]
		s.MACs = append([]string(nil), s.MACs...)
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %s%v", ErrInvalid, name(i), err)
		}
		for j, m := range s.MACs {
			if o, dup := seen[m]; dup {
				return nil, fmt.Errorf("%w: %smacs[%d] %s is also in specs[%d]", ErrConflict, name(i), j, m, o)
			}
			seen[m] = i
		}
	}
	if err := sameHostnames(func(i int) string { return specs[i].Site }, func(i int) string { return specs[i].Hostname }, len(specs), name); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Validate against the store before the first write.
	err := d.db.View(func(txn *badger.Txn) error {
		for i, s := range specs {
			if err := checkMACs(txn, s.MACs, "", name(i)); err != nil {
				return err
			}
			if err := checkHostname(txn, s.Site, s.Hostname, "", name(i)); err != nil {
				return err
			}
			if err := checkPower(txn, s.Power, name(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]api.Target, 0, len(specs))
	for start := 0; start < len(specs); start += chunkSize {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		end := min(start+chunkSize, len(specs))
		err := d.updateLocked(func(w *wtx) error {
			for _, s := range specs[start:end] {
				id, err := w.newID("t-", pTarget)
				if err != nil {
					return err
				}
				t := api.Target{ID: id, Hostname: s.Hostname, MACs: s.MACs, Arch: s.Arch, Site: s.Site,
					Address: s.Address, Labels: s.Labels, Power: s.Power, Created: w.now}
				if err := w.putTarget(&t); err != nil {
					return err
				}
				for _, m := range t.MACs {
					if err := w.set(k(pMAC, m), []byte(id)); err != nil {
						return err
					}
				}
				if err := w.set(k(pSiteTgt, t.Site, "/", id), nil); err != nil {
					return err
				}
				if err := w.moveHostname(id, "", "", t.Site, t.Hostname); err != nil {
					return err
				}
				out = append(out, t)
			}
			return nil
		})
		if err != nil {
			return out[:start], err
		}
	}
	return out, nil
}

// GetTarget reads a target.
func (d *DB) GetTarget(ctx context.Context, id string) (t api.Target, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error { t, err = getTarget(txn, id); return err })
	return t, err
}

// TargetByMAC finds the target that owns mac (any form CanonicalMAC reads).
func (d *DB) TargetByMAC(ctx context.Context, mac string) (t api.Target, err error) {
	m, err := api.CanonicalMAC(mac)
	if err != nil {
		return t, fmt.Errorf("%w: mac: %v", ErrInvalid, err)
	}
	err = d.view(ctx, func(txn *badger.Txn) error {
		id, ok, err := badgerkv.GetString(txn, k(pMAC, m))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: no target has MAC %s", ErrNotFound, m)
		}
		t, err = getTarget(txn, id)
		return err
	})
	return t, err
}

// ListTargets lists targets by id, filtered by site and selector.
func (d *DB) ListTargets(ctx context.Context, q TargetQuery) ([]api.Target, string, error) {
	p, err := d.ListTargetsPage(ctx, q)
	return p.Targets, p.Next, err
}

// ListTargetsPage is ListTargets with the filters of a person's listing
// (Text, Arch, OrderState, BootLoop) and, with Count, the number of every
// match (the scan then goes on past the page).
func (d *DB) ListTargetsPage(ctx context.Context, q TargetQuery) (p TargetPage, err error) {
	limit := limitOf(q.Limit, 100, 1000)
	if q.Site != "" && !api.ValidName(q.Site) {
		return p, fmt.Errorf("%w: site: %q is not a valid site name", ErrInvalid, q.Site)
	}
	if !api.ValidTargetState(q.State) {
		return p, fmt.Errorf("%w: state: %q is not a target state (want %q or none)", ErrInvalid, q.State, api.TargetDiscovered)
	}
	if q.Arch != "" && !api.ValidArch(q.Arch) {
		return p, fmt.Errorf("%w: arch: %q is not one of %v", ErrInvalid, q.Arch, api.Arches)
	}
	if q.OrderState != "" && q.OrderState != OrderNone && !api.OrderState(q.OrderState).Valid() {
		return p, fmt.Errorf("%w: order_state: %q is not an order state or %q", ErrInvalid, q.OrderState, OrderNone)
	}
	text := strings.ToLower(q.Text)
	macText := strings.ReplaceAll(text, "-", ":")
	err = d.view(ctx, func(txn *badger.Txn) error {
		match := func(t api.Target) (bool, error) {
			if !q.Selector.Matches(t.Labels) || (q.StateSet || q.State != "") && t.State != q.State ||
				q.Arch != "" && t.Arch != q.Arch || q.BootLoop && t.BootLoop.IsZero() {
				return false, nil
			}
			if text != "" && !strings.Contains(strings.ToLower(t.Hostname), text) && !strings.Contains(t.ID, text) &&
				!slices.ContainsFunc(t.MACs, func(m string) bool { return strings.Contains(m, macText) }) {
				return false, nil
			}
			if q.OrderState != "" {
				id := t.CurrentOrder
				if id == "" {
					id = t.LastOrder
				}
				if id == "" || q.OrderState == OrderNone {
					return (id == "") == (q.OrderState == OrderNone), nil
				}
				o, err := getOrder(txn, id)
				if errors.Is(err, ErrNotFound) {
					return false, nil
				}
				if err != nil {
					return false, err
				}
				return string(o.State) == q.OrderState, nil
			}
			return true, nil
		}
		visit := func(t api.Target) (bool, error) {
			ok, err := match(t)
			if err != nil || !ok {
				return err == nil, err
			}
			p.Total++
			if t.ID <= q.After {
				p.Before++ // counting from the start: a match before the page
				return true, nil
			}
			switch {
			case len(p.Targets) < limit:
				p.Targets = append(p.Targets, t)
			case p.Next == "":
				p.Next = p.Targets[len(p.Targets)-1].ID
				return q.Count, nil
			}
			return true, nil
		}
		// Counting scans from the start, the page still begins past After.
		from := q.After
		if q.Count {
			from = ""
		}
		if q.Site != "" {
			pre := k(pSiteTgt, q.Site, "/")
			return scan(txn, string(pre), from, false, func(key []byte, _ *badger.Item) (bool, error) {
				t, err := getTarget(txn, string(key[len(pre):]))
				if err != nil {
					return false, err
				}
				return visit(t)
			})
		}
		return scan(txn, pTarget, from, true, func(_ []byte, item *badger.Item) (bool, error) {
			var t api.Target
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &t) }); err != nil {
				return false, err
			}
			return visit(t)
		})
	})
	if !q.Count {
		p.Total, p.Before = 0, 0
	}
	return p, err
}

// UpdateTarget applies a patch; moving the target to another site logs a
// deletion for the old site.
func (d *DB) UpdateTarget(ctx context.Context, id string, p api.TargetPatch) (t api.Target, err error) {
	err = d.update(ctx, func(w *wtx) error {
		t, err = getTarget(w.txn, id)
		if err != nil {
			return err
		}
		s := api.TargetSpec{Hostname: t.Hostname, MACs: append([]string(nil), t.MACs...), Arch: t.Arch,
			Site: t.Site, Address: t.Address, Labels: t.Labels, Power: t.Power}
		if p.Hostname != nil {
			s.Hostname = *p.Hostname
		}
		if p.MACs != nil {
			s.MACs = append([]string(nil), (*p.MACs)...)
		}
		if p.Arch != nil {
			s.Arch = *p.Arch
		}
		if p.Site != nil {
			s.Site = *p.Site
		}
		if p.Address != nil {
			s.Address = *p.Address
		}
		if p.Labels != nil {
			s.Labels = maps.Clone(*p.Labels)
		}
		if p.Power != nil {
			s.Power = p.Power
			if p.Power.Driver == "" {
				s.Power = nil
			}
		}
		if err := s.Validate(); err != nil {
			return fmt.Errorf("%w: target %s: %v", ErrInvalid, id, err)
		}
		if err := checkPower(w.txn, s.Power, ""); err != nil {
			return err
		}
		if err := checkMACs(w.txn, s.MACs, id, ""); err != nil {
			return err
		}
		if err := checkHostname(w.txn, s.Site, s.Hostname, id, ""); err != nil {
			return err
		}
		if err := w.moveHostname(id, t.Site, t.Hostname, s.Site, s.Hostname); err != nil {
			return err
		}
		for _, m := range t.MACs {
			if err := w.del(k(pMAC, m)); err != nil {
				return err
			}
		}
		for _, m := range s.MACs {
			if err := w.set(k(pMAC, m), []byte(id)); err != nil {
				return err
			}
		}
		if s.Site != t.Site {
			if err := w.del(k(pSiteTgt, t.Site, "/", id)); err != nil {
				return err
			}
			if err := w.set(k(pSiteTgt, s.Site, "/", id), nil); err != nil {
				return err
			}
			w.logChange(t.Site, api.Change{Kind: api.ChangeTarget, ID: id, Deleted: true})
		}
		if t.CurrentOrder != "" && (s.Site != t.Site || s.Arch != t.Arch || !slices.Equal(s.MACs, t.MACs)) {
			// The live order follows its target: the boot servers answer
			// DHCP from the order's MACs and arch, at the order's site.
			o, err := getOrder(w.txn, t.CurrentOrder)
			if err != nil {
				return err
			}
			if o.Site != s.Site {
				if err := w.del(k(pLiveSite, o.Site, "/", o.ID)); err != nil {
					return err
				}
				w.logChange(o.Site, api.Change{Kind: api.ChangeOrder, ID: o.ID, Deleted: true})
			}
			o.Site, o.MACs, o.Arch = s.Site, s.MACs, s.Arch
			if err := w.putOrder(&o); err != nil {
				return err
			}
		}
		t.Hostname, t.MACs, t.Arch, t.Site, t.Address, t.Labels, t.Power = s.Hostname, s.MACs, s.Arch, s.Site, s.Address, s.Labels, s.Power
		return w.putTarget(&t)
	})
	return t, err
}

// SetFacts merges facts into the target's Facts.
func (d *DB) SetFacts(ctx context.Context, id string, facts map[string]string) (t api.Target, err error) {
	err = d.update(ctx, func(w *wtx) error {
		t, err = w.mergeFacts(id, facts)
		return err
	})
	return t, err
}

func (w *wtx) mergeFacts(id string, facts map[string]string) (api.Target, error) {
	t, err := getTarget(w.txn, id)
	if err != nil {
		return t, err
	}
	for key := range facts {
		if key == "" || len(key) > 128 {
			return t, fmt.Errorf("%w: facts: key %q must be 1-128 bytes", ErrInvalid, key)
		}
	}
	if t.Facts == nil {
		t.Facts = map[string]string{}
	}
	maps.Copy(t.Facts, facts)
	return t, w.putTarget(&t)
}

// DeleteTarget deletes a target without a live order.
func (d *DB) DeleteTarget(ctx context.Context, id string) error {
	return d.updateFreeing(ctx, func(w *wtx) error {
		t, err := getTarget(w.txn, id)
		if err != nil {
			return err
		}
		if t.CurrentOrder != "" {
			return fmt.Errorf("%w: target %s has live order %s", ErrConflict, id, t.CurrentOrder)
		}
		for _, m := range t.MACs {
			if err := w.del(k(pMAC, m)); err != nil {
				return err
			}
		}
		if err := w.del(k(pSiteTgt, t.Site, "/", id)); err != nil {
			return err
		}
		if err := w.moveHostname(id, t.Site, t.Hostname, "", ""); err != nil {
			return err
		}
		if err := w.del(k(pTarget, id)); err != nil {
			return err
		}
		w.logChange(t.Site, api.Change{Kind: api.ChangeTarget, ID: id, Deleted: true})
		return nil
	})
}
