package manager

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

// Rollouts: a reimage in waves. The engine (Run, every RolloutTick) starts
// a wave by making its orders and power-cycling its machines (network
// boot next) where they have a power spec, watches the wave's orders to
// their end, and then starts the next one after the policy's pause, or
// stops when the failures pass the budget. Its whole state is in the
// MDB: a restarted manager goes on where it was.

// rolloutStore is the part of the store that keeps rollouts (mdb.DB).
type rolloutStore interface {
	CreateRollout(ctx context.Context, r api.Rollout) (api.Rollout, error)
	PutRollout(ctx context.Context, r api.Rollout) (api.Rollout, error)
	GetRollout(ctx context.Context, id string) (api.Rollout, error)
	ListRollouts(ctx context.Context) ([]api.Rollout, error)
}

// DefaultWaveSize is a wave's size when the policy gives none.
const DefaultWaveSize = 10

func (s *Server) rollouts(w http.ResponseWriter, r *http.Request) (rolloutStore, bool) {
	return storePart[rolloutStore](s, w, r, "rollouts")
}

// createRollout answers POST /rollouts: the targets are resolved now (a
// dry run of the orders), cut into waves, and the first wave starts.
func (s *Server) createRollout(w http.ResponseWriter, r *http.Request, p *principal) {
	rs, ok := s.rollouts(w, r)
	if !ok {
		return
	}
	var req api.RolloutRequest
	if err := decode(w, r, s.cfg.MaxBody, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := req.Policy.Validate(); err != nil {
		s.fail(w, r, errorf(http.StatusBadRequest, "%v", err))
		return
	}
	if req.Orders.DryRun || req.Orders.RequestID != "" {
		s.fail(w, r, errorf(http.StatusBadRequest, "orders: dry_run and request_id are the rollout's to set"))
		return
	}
	plan := req.Orders
	plan.DryRun = true
	res, err := s.store.PlaceOrders(r.Context(), plan, mdb.OrderOptions{MaxShare: s.cfg.MaxOrderShare})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if res.Plan.NeedsAll != "" && !req.Orders.All {
		s.fail(w, r, errorf(http.StatusBadRequest, "needs all: %s", res.Plan.NeedsAll))
		return
	}
	if len(res.Plan.Targets) == 0 {
		s.fail(w, r, errorf(http.StatusUnprocessableEntity, "the rollout covers no target"))
		return
	}
	waves, err := s.cutWaves(r.Context(), res.Plan.Targets, req.Policy)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ro, err := rs.CreateRollout(r.Context(), api.Rollout{State: api.RolloutRunning, Orders: req.Orders, Policy: req.Policy,
		Waves: waves, By: p.ID})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("rollout created", "rollout", ro.ID, "targets", len(res.Plan.Targets), "waves", len(waves), "by", p.ID)
	if err := s.stepRollout(r.Context(), rs, ro.ID); err != nil {
		s.log.Warn("rollout: first step", "rollout", ro.ID, "err", err)
	}
	if ro, err = rs.GetRollout(r.Context(), ro.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ro)
}

// cutWaves splits the planned targets by the policy: by a label's values
// (sorted; targets without the label last), or in waves of a size.
func (s *Server) cutWaves(ctx context.Context, ts []api.PlannedTarget, p api.RolloutPolicy) ([]api.Wave, error) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Hostname < ts[j].Hostname })
	if p.WaveBy != "" {
		groups := map[string][]string{}
		for _, pt := range ts {
			t, err := s.store.GetTarget(ctx, pt.ID)
			if err != nil {
				return nil, err
			}
			groups[t.Labels[p.WaveBy]] = append(groups[t.Labels[p.WaveBy]], t.ID)
		}
		var vals []string
		for v := range groups {
			vals = append(vals, v)
		}
		slices.SortFunc(vals, func(a, b string) int {
			switch {
			case a == b:
				return 0
			case a == "":
				return 1
			case b == "":
				return -1
			}
			if a < b {
				return -1
			}
			return 1
		})
		var out []api.Wave
		for _, v := range vals {
			label := p.WaveBy + "=" + v
			if v == "" {
				label = "no " + p.WaveBy + " label"
			}
			out = append(out, api.Wave{Label: label, Targets: groups[v], State: api.WaveWaiting})
		}
		return out, nil
	}
	size := p.WaveSize
	if p.WavePercent > 0 {
		size = max(1, (len(ts)*p.WavePercent+99)/100)
	}
	if size <= 0 {
		size = DefaultWaveSize
	}
	var out []api.Wave
	for i := 0; i < len(ts); i += size {
		w := api.Wave{State: api.WaveWaiting}
		for _, pt := range ts[i:min(i+size, len(ts))] {
			w.Targets = append(w.Targets, pt.ID)
		}
		out = append(out, w)
	}
	return out, nil
}

// StepRollouts moves every running rollout on by one step (Run calls it
// every RolloutTick).
func (s *Server) StepRollouts(ctx context.Context) {
	rs, ok := s.store.(rolloutStore)
	if !ok {
		return
	}
	l, err := rs.ListRollouts(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("rollouts: list", "err", err)
		}
		return
	}
	for _, ro := range l {
		if ro.State != api.RolloutRunning {
			continue
		}
		if err := s.stepRollout(ctx, rs, ro.ID); err != nil && ctx.Err() == nil {
			s.log.Warn("rollout step", "rollout", ro.ID, "err", err)
		}
	}
}

// stepRollout starts the current wave when it is due, admits its
// targets as room in flight allows, and ends it when every admitted
// order ended.
func (s *Server) stepRollout(ctx context.Context, rs rolloutStore, id string) error {
	s.rolloutMu.Lock()
	defer s.rolloutMu.Unlock()
	ro, err := rs.GetRollout(ctx, id)
	if err != nil || ro.State != api.RolloutRunning {
		return err
	}
	if ro.Current >= len(ro.Waves) {
		ro.State = api.RolloutDone
		_, err := rs.PutRollout(ctx, ro)
		return err
	}
	w := &ro.Waves[ro.Current]
	now := s.now()
	if w.State == api.WaveWaiting {
		if now.Before(ro.NextWave) {
			return nil
		}
		if open, next := windowOpen(ro.Policy, now); !open {
			return s.hold(ctx, rs, &ro, fmt.Sprintf("outside its window %s; it opens %s", ro.Policy.Window, next.UTC().Format(time.RFC3339)))
		}
		w.Batch, w.State, w.Started = ro.ID+"-w"+strconv.Itoa(ro.Current+1), api.WaveRunning, now
		s.log.Info("rollout wave started", "rollout", ro.ID, "wave", ro.Current+1, "label", w.Label, "targets", len(w.Targets))
	}
	return s.watchWave(ctx, rs, &ro, w, now)
}

// hold records why a running rollout starts nothing now.
func (s *Server) hold(ctx context.Context, rs rolloutStore, ro *api.Rollout, why string) error {
	if ro.Holding == why {
		return nil
	}
	ro.Holding = why
	_, err := rs.PutRollout(ctx, *ro)
	return err
}

func windowOpen(p api.RolloutPolicy, now time.Time) (bool, time.Time) {
	if p.Window == nil {
		return true, now
	}
	return p.Window.Open(now)
}

// waveOrders lists the orders of a wave's batch.
func (s *Server) waveOrders(ctx context.Context, batch string) ([]api.Order, error) {
	var orders []api.Order
	for after := ""; ; {
		l, next, err := s.store.ListOrders(ctx, mdb.OrderQuery{Page: mdb.Page{After: after, Limit: 1000}, Batch: batch})
		if err != nil {
			return nil, err
		}
		orders = append(orders, l...)
		if after = next; after == "" {
			return orders, nil
		}
	}
}

func (s *Server) watchWave(ctx context.Context, rs rolloutStore, ro *api.Rollout, w *api.Wave, now time.Time) error {
	if len(w.Admitting) > 0 {
		// A chunk was being admitted when the manager stopped (or its
		// orders could not be made): the same request again.
		if err := s.placeChunk(ctx, rs, ro, w, w.Admitting); err != nil || ro.State != api.RolloutRunning {
			return err
		}
	}
	orders, err := s.waveOrders(ctx, w.Batch)
	if err != nil {
		return err
	}
	if ro.State == api.RolloutRunning {
		admitted, err := s.admit(ctx, rs, ro, w, orders, now)
		if err != nil || ro.State != api.RolloutRunning {
			return err
		}
		if admitted > 0 {
			if orders, err = s.waveOrders(ctx, w.Batch); err != nil {
				return err
			}
		}
	}
	powered := s.powerStaged(ctx, ro, w, orders)
	done, failed, other, live := 0, 0, len(w.Admitted)-len(orders), 0
	for _, o := range orders {
		switch o.State {
		case api.OrderDone:
			done++
		case api.OrderFailed:
			failed++
		case api.OrderCancelled:
			other++
		default:
			live++
		}
	}
	waiting := len(w.Targets) - len(w.Admitted)
	changed := powered || w.Done != done || w.Failed != failed || w.Other != other
	w.Done, w.Failed, w.Other = done, failed, other
	p := ro.Policy
	if p.FailureBudget > 0 && ro.Failures+failed-ro.Forgiven >= p.FailureBudget {
		// Spent mid-wave: the wave's installs run on, nothing new starts.
		ro.State, ro.Reason = api.RolloutStopped, fmt.Sprintf("failure budget spent: %d failed, budget %d", ro.Failures+failed-ro.Forgiven, p.FailureBudget)
		if ro.Forgiven > 0 {
			ro.Reason += fmt.Sprintf(" (after the %d accepted at a resume)", ro.Forgiven)
		}
	}
	if (live > 0 || waiting > 0) && ro.State == api.RolloutRunning {
		if changed {
			_, err := rs.PutRollout(ctx, *ro)
			return err
		}
		return nil
	}
	if live == 0 && waiting == 0 {
		w.State, w.Ended = api.WaveEnded, now
		ro.Failures += failed
		ro.Admission = nil
		if ro.State == api.RolloutRunning && p.WaveFailurePercent > 0 && len(w.Targets) > 0 && failed*100 >= p.WaveFailurePercent*len(w.Targets) {
			ro.State, ro.Reason = api.RolloutStopped, fmt.Sprintf("wave %d: %d of %d failed, limit %d%%", ro.Current+1, failed, len(w.Targets), p.WaveFailurePercent)
		}
		ro.Current++
		if ro.State == api.RolloutRunning {
			if ro.Current == len(ro.Waves) {
				ro.State = api.RolloutDone
			} else if d, _ := time.ParseDuration(p.Pause); d > 0 {
				ro.NextWave = now.Add(d)
			}
		}
		ro.ETA = rolloutETA(ro, now)
		s.log.Info("rollout wave ended", "rollout", ro.ID, "wave", ro.Current, "done", done, "failed", failed, "other", other, "state", ro.State)
	}
	if ro.State == api.RolloutStopped {
		s.log.Warn("rollout stopped", "rollout", ro.ID, "reason", ro.Reason)
	}
	_, err = rs.PutRollout(ctx, *ro)
	return err
}

// rolloutETA is when the rollout's last wave should end: each wave still
// to run as long as the ended waves were on average, plus the pauses.
func rolloutETA(ro *api.Rollout, now time.Time) time.Time {
	var sum time.Duration
	n := 0
	for _, w := range ro.Waves {
		if w.State == api.WaveEnded && !w.Started.IsZero() {
			sum += w.Ended.Sub(w.Started)
			n++
		}
	}
	left := len(ro.Waves) - ro.Current
	if n == 0 || ro.State != api.RolloutRunning {
		return time.Time{}
	}
	pause, _ := time.ParseDuration(ro.Policy.Pause)
	return now.Add(time.Duration(left) * (sum/time.Duration(n) + pause))
}

func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request, _ *principal) {
	rs, ok := s.rollouts(w, r)
	if !ok {
		return
	}
	l, err := rs.ListRollouts(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if l == nil {
		l = []api.Rollout{}
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request, _ *principal) {
	rs, ok := s.rollouts(w, r)
	if !ok {
		return
	}
	ro, err := rs.GetRollout(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ro)
}

// rolloutAction answers POST /rollouts/{id}/pause|resume|abort. Pause
// starts no new wave (the running one goes on); resume goes on (also
// after a budget stop: the operator decided); abort ends it, and with
// ?cancel_running=1 cancels the live orders of the running wave.
func (s *Server) rolloutAction(action string) func(http.ResponseWriter, *http.Request, *principal) {
	return func(w http.ResponseWriter, r *http.Request, p *principal) {
		rs, ok := s.rollouts(w, r)
		if !ok {
			return
		}
		s.rolloutMu.Lock()
		ro, err := rs.GetRollout(r.Context(), r.PathValue("id"))
		if err != nil {
			s.rolloutMu.Unlock()
			s.fail(w, r, err)
			return
		}
		final := ro.State == api.RolloutDone || ro.State == api.RolloutAborted
		switch {
		case final:
			err = errorf(http.StatusConflict, "rollout %s is %s", ro.ID, ro.State)
		case action == "pause":
			ro.State, ro.Reason = api.RolloutPaused, "paused by "+p.ID
		case action == "resume":
			if ro.State == api.RolloutStopped {
				// The operator accepts the failures so far: the budget
				// counts anew from here.
				ro.Forgiven = ro.Failures
				if ro.Current < len(ro.Waves) && ro.Waves[ro.Current].State == api.WaveRunning {
					ro.Forgiven += ro.Waves[ro.Current].Failed
				}
			}
			ro.State, ro.Reason = api.RolloutRunning, ""
		case action == "abort":
			ro.State, ro.Reason = api.RolloutAborted, "aborted by "+p.ID
			if r.URL.Query().Get("cancel_running") == "1" && ro.Current < len(ro.Waves) && ro.Waves[ro.Current].State == api.WaveRunning {
				err = s.cancelBatch(r.Context(), ro.Waves[ro.Current].Batch)
			}
		}
		if err == nil {
			ro, err = rs.PutRollout(r.Context(), ro)
		}
		s.rolloutMu.Unlock()
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.log.Info("rollout "+action, "rollout", ro.ID, "by", p.ID)
		if action == "resume" {
			if err := s.stepRollout(r.Context(), rs, ro.ID); err != nil {
				s.log.Warn("rollout step", "rollout", ro.ID, "err", err)
			}
			ro, _ = rs.GetRollout(r.Context(), ro.ID)
		}
		writeJSON(w, http.StatusOK, ro)
	}
}

// cancelBatch cancels the live orders of a batch.
func (s *Server) cancelBatch(ctx context.Context, batch string) error {
	for after := ""; ; {
		l, next, err := s.store.ListOrders(ctx, mdb.OrderQuery{Page: mdb.Page{After: after, Limit: 1000}, Batch: batch})
		if err != nil {
			return err
		}
		for _, o := range l {
			if o.State.Live() {
				if _, err := s.store.Transition(ctx, o.ID, api.OrderCancelled, "rollout aborted"); err != nil {
					return err
				}
			}
		}
		if after = next; after == "" {
			return nil
		}
	}
}
