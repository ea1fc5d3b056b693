package manager

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

// finish walks order id through the states a real install goes through to
// end (done or failed).
func (e *env) finish(id string, end api.OrderState) {
	e.t.Helper()
	for _, st := range []api.OrderState{api.OrderStaged, api.OrderBooting, api.OrderInstalling, end} {
		if _, err := e.store.Transition(e.t.Context(), id, st, "test"); err != nil {
			e.t.Fatalf("order %s to %s: %v", id, st, err)
		}
	}
}

func (e *env) rollout(id string) api.Rollout {
	e.t.Helper()
	got := e.as(api.RoleViewer, "GET", "/api/v1/rollouts/"+id, "")
	var ro api.Rollout
	if got.code != 200 || json.Unmarshal(got.body, &ro) != nil {
		e.t.Fatalf("rollout %s: %d %s", id, got.code, got.body)
	}
	return ro
}

func (e *env) waveOrders(ro api.Rollout, i int) []api.Order {
	e.t.Helper()
	l, _, err := e.store.ListOrders(e.t.Context(), mdb.OrderQuery{Page: mdb.Page{Limit: 1000}, Batch: ro.Waves[i].Batch})
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// Waves one rack at a time, in order, a pause between them, and the
// failure budget stopping the rollout at the right count; a restarted
// manager goes on from the MDB.
func TestRolloutRunsWavesInOrderAndTheBudgetStopsIt(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	_, img := e.seed("s1", 3, map[string]string{"rack": "r1"}, 1)
	e.seed("s1", 3, map[string]string{"rack": "r2"}, 2)
	e.seed("s1", 3, map[string]string{"rack": "r3"}, 3)
	body, _ := json.Marshal(api.RolloutRequest{Orders: api.OrderRequest{Selector: "rack", Image: img.ID, All: true},
		Policy: api.RolloutPolicy{WaveBy: "rack", FailureBudget: 2, Pause: "5m"}})
	got := e.as(api.RoleOperator, "POST", "/api/v1/rollouts", string(body))
	var ro api.Rollout
	if got.code != http.StatusCreated || json.Unmarshal(got.body, &ro) != nil {
		t.Fatalf("create: %d %s", got.code, got.body)
	}
	if len(ro.Waves) != 3 || ro.Waves[0].Label != "rack=r1" || ro.Waves[2].Label != "rack=r3" || ro.Waves[0].State != api.WaveRunning {
		t.Fatalf("waves %+v", ro.Waves)
	}
	// Only rack r1 has orders.
	if n, _ := e.store.CountOrders(ctx); n[api.OrderPending] != 3 {
		t.Fatalf("orders after the first wave started: %v, want 3 pending", n)
	}
	w1 := e.waveOrders(ro, 0)
	e.finish(w1[0].ID, api.OrderDone)
	e.finish(w1[1].ID, api.OrderDone)
	e.srv.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.Waves[0].State != api.WaveRunning || ro.Waves[0].Done != 2 {
		t.Fatalf("wave 1 with one order live: %+v", ro.Waves[0])
	}
	e.finish(w1[2].ID, api.OrderFailed)
	e.srv.StepRollouts(ctx)
	ro = e.rollout(ro.ID)
	if ro.Waves[0].State != api.WaveEnded || ro.Failures != 1 || ro.Current != 1 || ro.Waves[1].State != api.WaveWaiting {
		t.Fatalf("after wave 1: %+v", ro)
	}
	// Wave 1 took no time on the test's clock: two waves left, each a
	// 5-minute pause and nothing more.
	if want := e.clock.Now().Add(10 * time.Minute); !ro.ETA.Equal(want) {
		t.Errorf("ETA %v, want %v", ro.ETA, want)
	}
	// The pause: wave 2 waits 5 minutes.
	e.srv.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.Waves[1].State != api.WaveWaiting {
		t.Fatal("wave 2 started before the pause ended")
	}
	e.clock.Step(5 * time.Minute)
	// A restarted manager (same MDB) goes on from there.
	srv2, err := New(Config{Store: e.store, Logger: slog.New(slog.DiscardHandler), Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	srv2.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.Waves[1].State != api.WaveRunning {
		t.Fatalf("wave 2 after the pause, on a restarted manager: %+v", ro.Waves[1])
	}
	// One more failure spends the budget of 2: stopped, wave 3 never
	// starts, wave 2's other installs run on.
	w2 := e.waveOrders(ro, 1)
	e.finish(w2[0].ID, api.OrderFailed)
	srv2.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.State != api.RolloutStopped || ro.Reason == "" || ro.Waves[2].State != api.WaveWaiting {
		t.Fatalf("budget: %+v", ro)
	}
	e.finish(w2[1].ID, api.OrderDone)
	e.clock.Step(time.Hour)
	srv2.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.Waves[2].Batch != "" {
		t.Fatal("a stopped rollout started a wave")
	}
	if n, _ := e.store.CountOrders(ctx); n[api.OrderPending]+n[api.OrderDone]+n[api.OrderFailed] != 6 {
		t.Fatalf("orders %v: wave 3's were made", n)
	}
	// The operator resumes: the two failures are accepted, the budget
	// counts anew, wave 3 starts and one failure in it does not stop it.
	e.finish(w2[2].ID, api.OrderDone)
	if got := e.as(api.RoleOperator, "POST", "/api/v1/rollouts/"+ro.ID+"/resume", ""); got.code != 200 {
		t.Fatalf("resume after the budget stop: %d %s", got.code, got.body)
	}
	srv2.StepRollouts(ctx) // wave 2 ends; wave 3 after the pause
	e.clock.Step(5 * time.Minute)
	srv2.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.State != api.RolloutRunning || ro.Forgiven != 2 || ro.Waves[2].State != api.WaveRunning {
		t.Fatalf("resumed: %s forgiven %d, wave 3 %s", ro.State, ro.Forgiven, ro.Waves[2].State)
	}
	w3 := e.waveOrders(ro, 2)
	e.finish(w3[0].ID, api.OrderFailed)
	srv2.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.State != api.RolloutRunning {
		t.Fatalf("one failure after the resume stopped it: %s %s", ro.State, ro.Reason)
	}
	e.finish(w3[1].ID, api.OrderFailed)
	srv2.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.State != api.RolloutStopped || !strings.Contains(ro.Reason, "2 failed, budget 2 (after the 2 accepted at a resume)") {
		t.Fatalf("two failures after the resume: %s %q", ro.State, ro.Reason)
	}
}

func TestRolloutPauseResumeAbort(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	_, img := e.seed("s1", 6, map[string]string{"rack": "r1"}, 1)
	body, _ := json.Marshal(api.RolloutRequest{Orders: api.OrderRequest{Selector: "rack=r1", Image: img.ID, All: true},
		Policy: api.RolloutPolicy{WaveSize: 2}})
	got := e.as(api.RoleOperator, "POST", "/api/v1/rollouts", string(body))
	var ro api.Rollout
	if got.code != http.StatusCreated || json.Unmarshal(got.body, &ro) != nil || len(ro.Waves) != 3 {
		t.Fatalf("create: %d %s", got.code, got.body)
	}
	if got := e.as(api.RoleViewer, "POST", "/api/v1/rollouts/"+ro.ID+"/pause", ""); got.code != http.StatusForbidden {
		t.Errorf("viewer pause: %d", got.code)
	}
	if got := e.as(api.RoleOperator, "POST", "/api/v1/rollouts/"+ro.ID+"/pause", ""); got.code != 200 {
		t.Fatalf("pause: %d %s", got.code, got.body)
	}
	for _, o := range e.waveOrders(ro, 0) {
		e.finish(o.ID, api.OrderDone)
	}
	e.srv.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.State != api.RolloutPaused || ro.Waves[1].Batch != "" {
		t.Fatalf("paused rollout moved: %+v", ro)
	}
	if got := e.as(api.RoleOperator, "POST", "/api/v1/rollouts/"+ro.ID+"/resume", ""); got.code != 200 {
		t.Fatalf("resume: %d", got.code)
	}
	e.srv.StepRollouts(ctx) // wave 1 ends, wave 2 starts (no pause)
	e.srv.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.Waves[1].State != api.WaveRunning {
		t.Fatalf("after resume: %+v", ro.Waves)
	}
	if got := e.as(api.RoleOperator, "POST", "/api/v1/rollouts/"+ro.ID+"/abort?cancel_running=1", ""); got.code != 200 {
		t.Fatalf("abort: %d %s", got.code, got.body)
	}
	for _, o := range e.waveOrders(e.rollout(ro.ID), 1) {
		if o.State != api.OrderCancelled {
			t.Errorf("order %s of the running wave is %s after abort with cancel_running", o.ID, o.State)
		}
	}
	e.srv.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.State != api.RolloutAborted || ro.Waves[2].Batch != "" {
		t.Fatalf("aborted: %+v", ro)
	}
	if got := e.as(api.RoleOperator, "POST", "/api/v1/rollouts/"+ro.ID+"/resume", ""); got.code != http.StatusConflict {
		t.Errorf("resume after abort: %d", got.code)
	}
	bad, _ := json.Marshal(api.RolloutRequest{Orders: api.OrderRequest{Selector: "rack=r1", Image: img.ID, All: true},
		Policy: api.RolloutPolicy{WaveSize: 2, WaveBy: "rack"}})
	if got := e.as(api.RoleOperator, "POST", "/api/v1/rollouts", string(bad)); got.code != http.StatusBadRequest {
		t.Errorf("two wave rules: %d", got.code)
	}
}

// TestMetricsFollowARolloutAndTheOrdersEnding checks what the dashboards'
// rollout progress and the order-failure alert read: the rollouts per
// state, a live rollout's targets per outcome (gone once it is done),
// and the orders ended per final state.
func TestMetricsFollowARolloutAndTheOrdersEnding(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	_, img := e.seed("s1", 2, map[string]string{"rack": "r1"}, 1)
	e.seed("s1", 2, map[string]string{"rack": "r2"}, 2)
	body, _ := json.Marshal(api.RolloutRequest{Orders: api.OrderRequest{Selector: "rack", Image: img.ID, All: true},
		Policy: api.RolloutPolicy{WaveBy: "rack"}})
	got := e.as(api.RoleOperator, "POST", "/api/v1/rollouts", string(body))
	var ro api.Rollout
	if got.code != http.StatusCreated || json.Unmarshal(got.body, &ro) != nil {
		t.Fatalf("create: %d %s", got.code, got.body)
	}
	check := func(step string, want map[string]float64) {
		t.Helper()
		for series, v := range want {
			name, label, _ := strings.Cut(series, ":")
			var labels map[string]string
			switch name {
			case "osim_manager_rollout_targets":
				labels = map[string]string{"rollout": ro.ID, "state": label}
			default:
				labels = map[string]string{"state": label}
			}
			if got := testCounter(t, e, name, labels); got != v {
				t.Errorf("%s: %s%v = %v, want %v", step, name, labels, got, v)
			}
		}
	}
	check("started", map[string]float64{
		"osim_manager_rollouts:running": 1, "osim_manager_rollouts:done": 0,
		"osim_manager_rollout_targets:remaining": 4, "osim_manager_rollout_targets:done": 0,
		"osim_manager_orders_ended_total:done": 0, "osim_manager_orders_ended_total:failed": 0,
	})
	w1 := e.waveOrders(ro, 0)
	e.finish(w1[0].ID, api.OrderDone)
	e.finish(w1[1].ID, api.OrderFailed)
	e.srv.StepRollouts(ctx) // wave 1 ends, wave 2 starts
	check("wave 1 ended", map[string]float64{
		"osim_manager_rollouts:running":     1,
		"osim_manager_rollout_targets:done": 1, "osim_manager_rollout_targets:failed": 1, "osim_manager_rollout_targets:remaining": 2,
		"osim_manager_orders_ended_total:done": 1, "osim_manager_orders_ended_total:failed": 1, "osim_manager_orders_ended_total:cancelled": 0,
	})
	e.srv.StepRollouts(ctx)
	for _, o := range e.waveOrders(e.rollout(ro.ID), 1) {
		e.finish(o.ID, api.OrderDone)
	}
	e.srv.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.State != api.RolloutDone {
		t.Fatalf("rollout %s after both waves, want done", ro.State)
	}
	check("done", map[string]float64{
		"osim_manager_rollouts:running": 0, "osim_manager_rollouts:done": 1,
		"osim_manager_rollout_targets:done":    -1, // not reported once done
		"osim_manager_orders_ended_total:done": 3, "osim_manager_orders_ended_total:failed": 1,
	})
}
