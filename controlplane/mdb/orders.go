package mdb

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/controlplane/lifecycle"
	"osim/internal/badgerkv"
)

func getOrder(txn *badger.Txn, id string) (api.Order, error) {
	var o api.Order
	ok, err := badgerkv.GetJSON(txn, k(pOrder, id), &o)
	if err != nil {
		return o, err
	}
	if !ok {
		return o, fmt.Errorf("%w: order %s", ErrNotFound, id)
	}
	return o, nil
}

// putOrder stores o at this revision, keeps the live-by-site index and
// logs it for its site (a final order is logged in its final state: it
// leaves the boot server's view).
func (w *wtx) putOrder(o *api.Order) error {
	o.Revision = w.bump()
	o.Updated = w.now
	if err := w.setJSON(k(pOrder, o.ID), o); err != nil {
		return err
	}
	live := k(pLiveSite, o.Site, "/", o.ID)
	if o.State.Live() {
		if err := w.set(live, nil); err != nil {
			return err
		}
	} else if err := w.del(live); err != nil {
		return err
	}
	c := *o
	w.logChange(o.Site, api.Change{Kind: api.ChangeOrder, ID: o.ID, Order: &c})
	return nil
}

// transition moves o to state to, records the order.state event, and
// clears the target's CurrentOrder when o becomes final. cause is the seq
// of the event that caused it (0: an API call).
func (w *wtx) transition(o *api.Order, to api.OrderState, reason string, cause uint64) error {
	if !to.Valid() {
		return fmt.Errorf("%w: state: %q is not an order state", ErrInvalid, to)
	}
	from := o.State
	if !lifecycle.Move(o, to, reason, w.now, cause) {
		return fmt.Errorf("%w: order %s: %s → %s", ErrTransition, o.ID, from, to)
	}
	w.countOrder(from, to)
	if _, err := w.putEvent(api.Event{Type: api.EventOrderState, Target: o.Target, Order: o.ID,
		Phase: string(to), Message: reason, Data: map[string]string{"from": string(from), "to": string(to)}}); err != nil {
		return err
	}
	if err := w.putOrder(o); err != nil {
		return err
	}
	if to.Final() {
		t, err := getTarget(w.txn, o.Target)
		if err == nil && t.CurrentOrder == o.ID {
			t.CurrentOrder = ""
			return w.putTarget(&t)
		}
	}
	return nil
}

func getImage(txn *badger.Txn, id string) (api.Image, error) {
	var im api.Image
	ok, err := badgerkv.GetJSON(txn, k(pImage, id), &im)
	if err != nil {
		return im, err
	}
	if !ok {
		return im, fmt.Errorf("%w: image %s", ErrNotFound, id)
	}
	return im, nil
}

// CreateOrders is PlaceOrders without a share guard (in-process callers:
// tests, benchmarks, offline population), answering the orders.
func (d *DB) CreateOrders(ctx context.Context, req api.OrderRequest) ([]api.Order, error) {
	res, err := d.PlaceOrders(ctx, req, OrderOptions{})
	return res.Orders, err
}

// PlaceOrders replays the request's batch if it was written already,
// else validates the whole request, applies the share guard, and (unless
// it is a dry run) writes the orders as one batch: see batches.go.
func (d *DB) PlaceOrders(ctx context.Context, req api.OrderRequest, opts OrderOptions) (OrderResult, error) {
	if err := ctx.Err(); err != nil {
		return OrderResult{}, err
	}
	sel, err := checkOrderRequest(req)
	if err != nil {
		return OrderResult{}, err
	}
	rid, hash, err := requestID(req)
	if err != nil {
		return OrderResult{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !req.DryRun {
		if res, ok, err := d.replayLocked(rid, hash, req.RequestID == ""); ok || err != nil {
			return res, err
		}
	}
	targets, sites, siteBoot, err := d.resolveOrders(req, sel)
	if err != nil {
		return OrderResult{}, err
	}
	needsAll := shareGuard(req, targets, sites, opts.MaxShare)
	if req.DryRun {
		return OrderResult{RequestID: rid, Plan: orderPlan(targets, sites, needsAll)}, nil
	}
	if needsAll != "" {
		return OrderResult{}, fmt.Errorf("%w: %w: %s; send \"all\": true (osimctl orders create --all) to order them", ErrInvalid, ErrNeedsAll, needsAll)
	}
	// Once the batch record is committed the batch is finished whatever
	// the client does: a hang-up must not leave part of it.
	orders, err := d.writeBatchLocked(rid, hash, req, targets, siteBoot, opts.Batch)
	return OrderResult{Orders: orders, RequestID: rid}, err
}

// checkOrderRequest is the validation that needs no store.
func checkOrderRequest(req api.OrderRequest) (api.Selector, error) {
	n := 0
	for _, set := range []bool{req.Target != "", len(req.Targets) > 0, req.Selector != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return api.Selector{}, fmt.Errorf("%w: exactly one of target, targets, selector must be set", ErrInvalid)
	}
	var sel api.Selector
	if req.Selector != "" {
		var err error
		if sel, err = api.ParseSelector(req.Selector); err != nil {
			return sel, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	for key, v := range req.Params {
		if !api.ValidName(key) {
			return sel, fmt.Errorf("%w: params: key %q is not valid", ErrInvalid, key)
		}
		if len(v) > 4096 {
			return sel, fmt.Errorf("%w: params.%s: value longer than 4096 bytes", ErrInvalid, key)
		}
	}
	if req.RequestID != "" && !api.ValidName(req.RequestID) {
		return sel, fmt.Errorf("%w: request_id: %q is not valid (letters, digits, . _ -; at most 63)", ErrInvalid, req.RequestID)
	}
	return sel, nil
}

// resolveOrders reads the targets the request names or selects and checks
// each can get an order; for a selector or a dry run it also counts every
// site's targets (for the share guard and the plan). A disk image's
// orders get their site's default boot image when the request names
// none: siteBoot maps site → boot image id. Run under d.mu.
func (d *DB) resolveOrders(req api.OrderRequest, sel api.Selector) (targets []api.Target, sites map[string]int, siteBoot map[string]string, err error) {
	err = d.db.View(func(txn *badger.Txn) error {
		osImg, boot, err := checkOrderImages(txn, req)
		if err != nil {
			return err
		}
		err = selectTargets(txn, req, sel, func(label string, t api.Target) error {
			if err := canOrder(req, boot, label, t); err != nil {
				return err
			}
			targets = append(targets, t)
			return nil
		})
		if err != nil {
			return err
		}
		var boots map[string]api.Image
		if siteBoot, boots, err = orderBoots(txn, req, osImg, targets); err != nil {
			return err
		}
		if err := checkOrderParams(req.Params, orderImages(osImg, boot, boots)); err != nil {
			return err
		}
		for _, t := range targets {
			if id, ok := siteBoot[t.Site]; ok && hasAnyNBP(boots[id]) && !hasNBP(boots[id], t.Arch) {
				return fmt.Errorf("%w: %s: boot image %s (site %s's default) has no nbp for %s", ErrInvalid, t.ID, id, t.Site, t.Arch)
			}
		}
		if req.Selector != "" || req.DryRun {
			sites, err = countSites(txn)
		}
		return err
	})
	return targets, sites, siteBoot, err
}

// canOrder checks that target t (label: how the request names it) can
// get the request's order: no live order, and the boot image (if one is
// named and has NBPs at all) has an NBP for its arch.
func canOrder(req api.OrderRequest, boot api.Image, label string, t api.Target) error {
	if t.CurrentOrder != "" {
		return fmt.Errorf("%w: %s%s: has live order %s", ErrConflict, label, t.ID, t.CurrentOrder)
	}
	if t.State == api.TargetDiscovered {
		return fmt.Errorf("%w: %s%s: %w", ErrConflict, label, t.ID, ErrDiscovered)
	}
	if req.BootImage != "" && hasAnyNBP(boot) && !hasNBP(boot, t.Arch) {
		return fmt.Errorf("%w: %s%s: boot image %s has no nbp for %s", ErrInvalid, label, t.ID, boot.ID, t.Arch)
	}
	return nil
}

// checkOrderImages checks the request's OS image and boot image and
// returns both (boot zero when none is named).
func checkOrderImages(txn *badger.Txn, req api.OrderRequest) (im, boot api.Image, err error) {
	if req.Image == "" {
		return im, boot, fmt.Errorf("%w: image: required", ErrInvalid)
	}
	im, err = getImage(txn, req.Image)
	if err != nil {
		return im, boot, fmt.Errorf("image: %w", err)
	}
	if im.Kind != api.KindOS {
		return im, boot, fmt.Errorf("%w: image %s is a %s image, want os", ErrInvalid, im.ID, im.Kind)
	}
	if req.BootImage != "" {
		if boot, err = getImage(txn, req.BootImage); err != nil {
			return im, boot, fmt.Errorf("boot_image: %w", err)
		}
		if boot.Kind != api.KindBoot {
			return im, boot, fmt.Errorf("%w: boot_image %s is a %s image, want boot", ErrInvalid, boot.ID, boot.Kind)
		}
	}
	return im, boot, nil
}

// countSites counts every site's targets from the by-site index (keys only).
func countSites(txn *badger.Txn) (map[string]int, error) {
	out := map[string]int{}
	err := scan(txn, pSiteTgt, "", false, func(key []byte, _ *badger.Item) (bool, error) {
		site, _, _ := strings.Cut(string(key[len(pSiteTgt):]), "/")
		out[site]++
		return true, nil
	})
	return out, err
}

// shareGuard says why a selector request needs All ("" when it does not):
// it matches every target, or more than maxShare of a site's. What counts
// is what the selector matched, never how it is spelled (`!no-such-label`
// and `a!=b` match everything too). A list of ids names each target and
// is not guarded; maxShare 0 turns the guard off (trusted callers).
func shareGuard(req api.OrderRequest, targets []api.Target, sites map[string]int, maxShare float64) string {
	if req.Selector == "" || maxShare <= 0 || req.All {
		return ""
	}
	total := 0
	for _, n := range sites {
		total += n
	}
	if len(targets) >= total {
		return fmt.Sprintf("selector %q matches every target (%d)", req.Selector, len(targets))
	}
	per := map[string]int{}
	for _, t := range targets {
		per[t.Site]++
	}
	for _, site := range slices.Sorted(maps.Keys(per)) {
		if n, of := per[site], sites[site]; float64(n) > maxShare*float64(of) {
			return fmt.Sprintf("selector %q matches %d of the %d targets of site %s, more than %g%%",
				req.Selector, n, of, site, maxShare*100)
		}
	}
	return ""
}

// orderPlan is the dry run's answer.
func orderPlan(targets []api.Target, sites map[string]int, needsAll string) api.OrderPlan {
	p := api.OrderPlan{Targets: make([]api.PlannedTarget, len(targets)), NeedsAll: needsAll, Sites: []api.SiteShare{}}
	per := map[string]int{}
	for i, t := range targets {
		p.Targets[i] = api.PlannedTarget{ID: t.ID, Hostname: t.Hostname, Site: t.Site}
		per[t.Site]++
	}
	for _, site := range slices.Sorted(maps.Keys(per)) {
		p.Sites = append(p.Sites, api.SiteShare{Site: site, Ordered: per[site], Total: sites[site]})
	}
	return p
}

func hasAnyNBP(im api.Image) bool {
	for _, f := range im.Files {
		if f.Role == api.RoleNBP {
			return true
		}
	}
	return false
}

func hasNBP(im api.Image, arch string) bool {
	for _, f := range im.Files {
		if f.Role == api.RoleNBP && f.Arch == arch {
			return true
		}
	}
	return false
}

// GetOrder reads an order.
func (d *DB) GetOrder(ctx context.Context, id string) (o api.Order, err error) {
	err = d.view(ctx, func(txn *badger.Txn) error { o, err = getOrder(txn, id); return err })
	return o, err
}

// ListOrders lists orders by id, filtered by state, target and site.
func (d *DB) ListOrders(ctx context.Context, q OrderQuery) (out []api.Order, next string, err error) {
	limit := limitOf(q.Limit, 100, 1000)
	if q.State != "" && !q.State.Valid() {
		return nil, "", fmt.Errorf("%w: state: %q is not an order state", ErrInvalid, q.State)
	}
	err = d.view(ctx, func(txn *badger.Txn) error {
		visit := func(o api.Order) bool {
			if (q.State != "" && o.State != q.State) || (q.Site != "" && o.Site != q.Site) || (q.Target != "" && o.Target != q.Target) ||
				(q.Batch != "" && o.Batch != q.Batch) {
				return true
			}
			if len(out) == limit {
				next = out[len(out)-1].ID
				return false
			}
			out = append(out, o)
			return true
		}
		if q.Target != "" {
			p := k(pOrderTgt, q.Target, "/")
			return scan(txn, string(p), q.After, false, func(key []byte, _ *badger.Item) (bool, error) {
				o, err := getOrder(txn, string(key[len(p):]))
				if err != nil {
					return false, err
				}
				return visit(o), nil
			})
		}
		return scan(txn, pOrder, q.After, true, func(_ []byte, item *badger.Item) (bool, error) {
			var o api.Order
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &o) }); err != nil {
				return false, err
			}
			return visit(o), nil
		})
	})
	return out, next, err
}

// Transition moves an order to another state.
func (d *DB) Transition(ctx context.Context, id string, to api.OrderState, reason string) (o api.Order, err error) {
	err = d.update(ctx, func(w *wtx) error {
		if o, err = getOrder(w.txn, id); err != nil {
			return err
		}
		return w.transition(&o, to, reason, 0)
	})
	return o, err
}

// Retry starts a new attempt of a failed or cancelled order.
func (d *DB) Retry(ctx context.Context, id string) (o api.Order, err error) {
	err = d.update(ctx, func(w *wtx) error {
		if o, err = getOrder(w.txn, id); err != nil {
			return err
		}
		if !lifecycle.CanRetry(o.State) {
			return fmt.Errorf("%w: order %s is %s; only failed or cancelled orders can be retried", ErrTransition, id, o.State)
		}
		t, err := getTarget(w.txn, o.Target)
		if err != nil {
			return fmt.Errorf("order %s: %w", id, err)
		}
		if t.CurrentOrder != "" {
			return fmt.Errorf("%w: order %s: target %s has live order %s", ErrConflict, id, t.ID, t.CurrentOrder)
		}
		tok, err := w.token()
		if err != nil {
			return err
		}
		from := o.State
		lifecycle.Retry(&o, w.now)
		// The new attempt follows the target; no site held the final order.
		o.Site, o.MACs, o.Arch, o.Token = t.Site, t.MACs, t.Arch, tok
		w.countOrder(from, api.OrderPending)
		if _, err := w.putEvent(api.Event{Type: api.EventOrderState, Target: o.Target, Order: o.ID, Phase: string(api.OrderPending),
			Message: "retry", Data: map[string]string{"from": string(from), "to": string(api.OrderPending)}}); err != nil {
			return err
		}
		if err := w.putOrder(&o); err != nil {
			return err
		}
		t.CurrentOrder = o.ID
		t.BootLoop = time.Time{} // an order ends a boot loop episode
		return w.putTarget(&t)
	})
	return o, err
}

// CountOrders returns the orders per state, kept up to date by every
// commit (no scan).
func (d *DB) CountOrders(ctx context.Context) (map[api.OrderState]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.countMu.Lock()
	defer d.countMu.Unlock()
	out := make(map[api.OrderState]int, len(d.orderCounts))
	for st, n := range d.orderCounts {
		if n != 0 {
			out[st] = n
		}
	}
	return out, nil
}

// OrdersEnded returns how many orders entered each final state (done,
// failed, cancelled; none missing) since Open: counters, where
// CountOrders is what stands now (a retry takes an order out of failed).
func (d *DB) OrdersEnded() map[api.OrderState]uint64 {
	d.countMu.Lock()
	defer d.countMu.Unlock()
	out := map[api.OrderState]uint64{}
	for _, st := range api.OrderStates {
		if st.Final() {
			out[st] = d.ordersEnded[st]
		}
	}
	return out
}

// scanOrderCounts counts orders per state by reading them all (at open).
func (d *DB) scanOrderCounts() (map[api.OrderState]int, error) {
	out := map[api.OrderState]int{}
	err := d.db.View(func(txn *badger.Txn) error {
		return scan(txn, pOrder, "", true, func(_ []byte, item *badger.Item) (bool, error) {
			var o struct {
				State api.OrderState `json:"state"`
			}
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &o) }); err != nil {
				return false, err
			}
			out[o.State]++
			return true, nil
		})
	})
	return out, err
}
