package manager

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

// Admission: a running wave's targets get their orders (and their power
// cycles) as room in flight allows, per site. In flight is the wave's
// orders started and not ended. A site's limit is the lowest of the
// policy's max_in_flight_per_site, its max_in_flight_per_boot_server times
// the site's healthy boot servers, and what its boot servers' egress
// sustains: when every healthy boot server of the site reports a ceiling
// (osim-bootd's http.egress_ceiling), the site may have
// egressHeadroom × ceiling ÷ (measured egress per active order) in
// flight, where active orders are the wave's booting and installing ones.
// A saturated boot server gives each download its share of the ceiling,
// so the limit falls to about the orders already active and nothing new
// starts until some end; an idle one admits as many as its ceiling feeds.
// Until an egress per order is measured (no order active yet) each step
// admits one order per healthy boot server: a probe, not a flood.

// egressHeadroom is the share of a boot server's ceiling admission plans
// to use: the rest absorbs the lag of a rate measured over a heartbeat.
const egressHeadroom = 0.9

// siteView is what admission knows of a site's boot servers now.
type siteView struct {
	healthy          int
	egress, ceiling  float64
	someWithoutLimit bool
}

func (s *Server) siteViews(ctx context.Context) (map[string]*siteView, error) {
	bss, err := s.store.ListBootServers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]*siteView{}
	for _, bs := range bss {
		if s.health(bs) != api.HealthHealthy {
			continue
		}
		v := out[bs.Site]
		if v == nil {
			v = &siteView{}
			out[bs.Site] = v
		}
		v.healthy++
		v.egress += bs.Egress
		if bs.EgressCeiling > 0 {
			v.ceiling += bs.EgressCeiling
		} else {
			v.someWithoutLimit = true
		}
	}
	return out, nil
}

// admissionLimit fills a's Limit and LimitBy from the policy and the site.
func admissionLimit(p api.RolloutPolicy, v siteView, a *api.SiteAdmission) {
	a.BootServers, a.Egress, a.Limit, a.LimitBy = v.healthy, v.egress, -1, ""
	if !v.someWithoutLimit {
		a.Ceiling = v.ceiling
	}
	lower := func(n int, by string) {
		if a.Limit < 0 || n < a.Limit {
			a.Limit, a.LimitBy = n, by
		}
	}
	if p.MaxInFlightPerSite > 0 {
		lower(p.MaxInFlightPerSite, "site")
	}
	if p.MaxInFlightPerBootServer > 0 {
		by := "boot_server"
		if v.healthy == 0 {
			by = "no boot server"
		}
		lower(p.MaxInFlightPerBootServer*v.healthy, by)
	}
	if v.healthy > 0 && a.Ceiling > 0 {
		if a.Egress > 0 && a.Active > 0 {
			per := a.Egress / float64(a.Active)
			lower(max(1, int(egressHeadroom*a.Ceiling/per)), "egress")
		} else {
			lower(a.InFlight+v.healthy, "egress probe")
		}
	}
}

// admit gives orders to as many of the wave's waiting targets as the
// sites' limits allow (in the wave's order) and records the sites'
// admission in ro. It answers how many it admitted.
func (s *Server) admit(ctx context.Context, rs rolloutStore, ro *api.Rollout, w *api.Wave, orders []api.Order, now time.Time) (int, error) {
	admitted := make(map[string]bool, len(w.Admitted))
	for _, id := range w.Admitted {
		admitted[id] = true
	}
	per := map[string]*api.SiteAdmission{}
	site := func(name string) *api.SiteAdmission {
		a := per[name]
		if a == nil {
			a = &api.SiteAdmission{Site: name}
			per[name] = a
		}
		return a
	}
	for _, o := range orders {
		if o.State.Live() {
			a := site(o.Site)
			a.InFlight++
			if o.State == api.OrderBooting || o.State == api.OrderInstalling {
				a.Active++
			}
		}
	}
	type waiter struct{ id, site string }
	var waiting []waiter
	for _, id := range w.Targets {
		if admitted[id] {
			continue
		}
		t, err := s.store.GetTarget(ctx, id)
		if err != nil {
			if errors.Is(err, mdb.ErrNotFound) {
				// Gone since the rollout was cut: it counts as other.
				w.Admitted = append(w.Admitted, id)
				continue
			}
			return 0, err
		}
		waiting = append(waiting, waiter{id, t.Site})
		site(t.Site).Waiting++
	}
	views, err := s.siteViews(ctx)
	if err != nil {
		return 0, err
	}
	for name, a := range per {
		v := views[name]
		if v == nil {
			v = &siteView{}
		}
		admissionLimit(ro.Policy, *v, a)
	}
	open, next := windowOpen(ro.Policy, now)
	var chunk []string
	if open {
		for _, wt := range waiting {
			a := per[wt.site]
			if a.Limit >= 0 && a.InFlight >= a.Limit {
				continue
			}
			a.InFlight++
			a.Waiting--
			chunk = append(chunk, wt.id)
		}
	}
	before, beforeHolding := ro.Admission, ro.Holding
	ro.Admission = nil
	var held []string
	for _, name := range slices.Sorted(maps.Keys(per)) {
		a := per[name]
		ro.Admission = append(ro.Admission, *a)
		if a.Waiting > 0 {
			held = append(held, fmt.Sprintf("site %s %d/%s in flight (%s)", name, a.InFlight, limitText(a.Limit), a.LimitBy))
		}
	}
	switch {
	case !open && len(waiting) > 0:
		ro.Holding = fmt.Sprintf("outside its window %s; it opens %s", ro.Policy.Window, next.UTC().Format(time.RFC3339))
	case len(held) > 0:
		ro.Holding = "waiting for room in flight: " + strings.Join(held, ", ")
	default:
		ro.Holding = ""
	}
	if len(chunk) == 0 {
		if slices.Equal(before, ro.Admission) && beforeHolding == ro.Holding {
			return 0, nil
		}
		_, err := rs.PutRollout(ctx, *ro)
		return 0, err
	}
	return len(chunk), s.placeChunk(ctx, rs, ro, w, chunk)
}

func limitText(n int) string {
	if n < 0 {
		return "∞"
	}
	return strconv.Itoa(n)
}

// placeChunk makes the orders of ids (one request, idempotent by its id,
// into the wave's batch). The chunk is written to the rollout first: a
// manager killed in between makes the same request again on its next
// step.
func (s *Server) placeChunk(ctx context.Context, rs rolloutStore, ro *api.Rollout, w *api.Wave, ids []string) error {
	if len(w.Admitting) == 0 {
		w.Admitting, w.Chunks = ids, w.Chunks+1
		if _, err := rs.PutRollout(ctx, *ro); err != nil {
			return err
		}
	}
	req := ro.Orders
	req.Target, req.Selector, req.Targets = "", "", w.Admitting
	req.RequestID = fmt.Sprintf("%s-%d", w.Batch, w.Chunks)
	res, err := s.store.PlaceOrders(ctx, req, mdb.OrderOptions{Batch: w.Batch})
	if err != nil {
		// All or nothing: a target has another live order, or the image
		// went away. The operator decides; resume retries the chunk.
		ro.State, ro.Reason = api.RolloutPaused, fmt.Sprintf("wave %d: orders could not be made: %v", ro.Current+1, err)
		s.log.Warn("rollout paused", "rollout", ro.ID, "reason", ro.Reason)
		_, perr := rs.PutRollout(ctx, *ro)
		return perr
	}
	w.Admitted, w.Admitting = append(w.Admitted, w.Admitting...), nil
	s.log.Info("rollout admitted", "rollout", ro.ID, "wave", ro.Current+1, "orders", len(res.Orders),
		"admitted", len(w.Admitted), "of", len(w.Targets))
	_, err = rs.PutRollout(ctx, *ro)
	return err
}

// powerStaged asks the power action that starts each of the wave's
// orders once it is staged (its boot server holds the image and knows the
// order: a machine powered before that would boot its disk): a cycle with
// network boot next, or "on" for wake-on-LAN, which cannot cycle. Orders
// of targets without a power spec, or powered by hand, wait for the
// operator. It answers whether the wave changed.
func (s *Server) powerStaged(ctx context.Context, ro *api.Rollout, w *api.Wave, orders []api.Order) bool {
	ps, ok := s.store.(powerStore)
	if !ok || ro.Policy.Start == "manual" {
		return false
	}
	done := make(map[string]bool, len(w.Powered))
	for _, id := range w.Powered {
		done[id] = true
	}
	changed := false
	for _, o := range orders {
		if o.State != api.OrderStaged {
			continue
		}
		if done[o.ID] {
			// A start that failed for good (the boot server's retries and
			// the queue's claims spent) fails the order: its machine never
			// boots, and the wave must not wait for it.
			if msg, failed := powerFailed(ctx, ps, o.Target, "rollout "+ro.ID+" order "+o.ID); failed {
				if _, err := s.store.Transition(ctx, o.ID, api.OrderFailed, "rollout: starting the machine failed: "+msg); err == nil {
					s.log.Warn("rollout: order failed, its machine could not be started", "rollout", ro.ID, "order", o.ID, "reason", msg)
					changed = true
				}
			}
			continue
		}
		t, err := s.store.GetTarget(ctx, o.Target)
		if err != nil {
			continue
		}
		req := api.PowerActionRequest{Action: "cycle", NetworkBoot: true}
		switch {
		case t.Power == nil || t.Power.Driver == "manual":
			req.Action = ""
		case t.Power.Driver == "wol":
			req = api.PowerActionRequest{Action: "on"}
		}
		if req.Action != "" {
			by := "rollout " + ro.ID + " order " + o.ID
			asked, err := powerAsked(ctx, ps, o.Target, by)
			if err != nil {
				continue // the next step tries again
			}
			if !asked {
				if _, err := ps.CreatePowerRequest(ctx, o.Target, req, by); err != nil {
					s.log.Warn("rollout: power request", "rollout", ro.ID, "order", o.ID, "err", err)
					continue
				}
			}
		}
		w.Powered = append(w.Powered, o.ID)
		changed = true
	}
	return changed
}

// powerFailed reports whether target's power request by by failed, and
// its message.
func powerFailed(ctx context.Context, ps powerStore, target, by string) (string, bool) {
	l, err := ps.ListPowerRequests(ctx, target)
	if err != nil {
		return "", false
	}
	for _, pr := range l {
		if pr.By == by && pr.State == api.PowerFailed {
			return pr.Message, true
		}
	}
	return "", false
}

// powerAsked reports whether target has a power request by by.
func powerAsked(ctx context.Context, ps powerStore, target, by string) (bool, error) {
	l, err := ps.ListPowerRequests(ctx, target)
	if err != nil {
		return false, err
	}
	for _, pr := range l {
		if pr.By == by {
			return true, nil
		}
	}
	return false, nil
}
