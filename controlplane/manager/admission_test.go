package manager

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

// createRollout posts req and answers the rollout.
func (e *env) createRollout(req api.RolloutRequest) api.Rollout {
	e.t.Helper()
	body, _ := json.Marshal(req)
	got := e.as(api.RoleOperator, "POST", "/api/v1/rollouts", string(body))
	var ro api.Rollout
	if got.code != http.StatusCreated || json.Unmarshal(got.body, &ro) != nil {
		e.t.Fatalf("create rollout: %d %s", got.code, got.body)
	}
	return ro
}

// toState walks a pending order forward to st along a real install's path.
func (e *env) toState(id string, st api.OrderState) {
	e.t.Helper()
	o, err := e.store.GetOrder(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	path := []api.OrderState{api.OrderPending, api.OrderStaged, api.OrderBooting, api.OrderInstalling, api.OrderDone}
	for i, s := range path[1:] {
		if slices.Index(path, o.State) > i { // there already, or past it
			continue
		}
		if _, err := e.store.Transition(e.t.Context(), id, s, "test"); err != nil {
			e.t.Fatalf("order %s to %s: %v", id, s, err)
		}
		if s == st {
			return
		}
	}
}

// live answers the wave's orders that have not ended.
func (e *env) live(ro api.Rollout, wave int) []api.Order {
	e.t.Helper()
	var out []api.Order
	for _, o := range e.waveOrders(ro, wave) {
		if o.State.Live() {
			out = append(out, o)
		}
	}
	return out
}

func admissionOf(ro api.Rollout, site string) api.SiteAdmission {
	for _, a := range ro.Admission {
		if a.Site == site {
			return a
		}
	}
	return api.SiteAdmission{Site: site, Limit: -2}
}

// In flight per boot server and per site: a site's limit grows with its
// healthy boot servers, a site without one starts nothing (its targets
// wait, the wave does not end without them), and the rollout says why.
func TestRolloutAdmitsByBootServerAndSite(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	_, img := e.seed("s1", 6, map[string]string{"lab": "x"}, 1)
	e.seed("s2", 2, map[string]string{"lab": "x"}, 2)
	ro := e.createRollout(api.RolloutRequest{Orders: api.OrderRequest{Selector: "lab=x", Image: img.ID, All: true},
		Policy: api.RolloutPolicy{WaveSize: 10, MaxInFlightPerBootServer: 2, MaxInFlightPerSite: 3}})
	if n := len(e.waveOrders(ro, 0)); n != 2 {
		t.Fatalf("orders made at the start: %d, want 2 (s1's one boot server × 2; s2 has none)", n)
	}
	a1, a2 := admissionOf(ro, "s1"), admissionOf(ro, "s2")
	if a1.InFlight != 2 || a1.Limit != 2 || a1.LimitBy != "boot_server" || a1.Waiting != 4 || a1.BootServers != 1 {
		t.Errorf("s1 admission %+v", a1)
	}
	if a2.InFlight != 0 || a2.Limit != 0 || a2.LimitBy != "no boot server" || a2.Waiting != 2 {
		t.Errorf("s2 admission %+v", a2)
	}
	if !strings.Contains(ro.Holding, "site s2 0/0 in flight (no boot server)") {
		t.Errorf("holding %q", ro.Holding)
	}
	// One ends: one more starts in its place.
	e.toState(e.waveOrders(ro, 0)[0].ID, api.OrderDone)
	e.srv.StepRollouts(ctx)
	ro = e.rollout(ro.ID)
	if n := len(e.live(ro, 0)); n != 2 || len(ro.Waves[0].Admitted) != 3 {
		t.Fatalf("after one ended: %d live, %d admitted; want 2 and 3", n, len(ro.Waves[0].Admitted))
	}
	// A second boot server in s1: 2 × 2 = 4, but the site's cap is 3.
	if r := e.registerWith(e.secrets[api.RoleJoin], "bs1b", "s1"); r.code != 201 {
		t.Fatalf("second boot server: %d %s", r.code, r.body)
	}
	e.srv.StepRollouts(ctx)
	ro = e.rollout(ro.ID)
	if a := admissionOf(ro, "s1"); a.InFlight != 3 || a.Limit != 3 || a.LimitBy != "site" || a.BootServers != 2 {
		t.Fatalf("s1 with two boot servers: %+v", a)
	}
	// s1 ends; s2's targets still wait: the wave goes on.
	for range 3 {
		for _, o := range e.live(ro, 0) {
			e.toState(o.ID, api.OrderDone)
		}
		e.srv.StepRollouts(ctx)
		ro = e.rollout(ro.ID)
	}
	if ro.Waves[0].State != api.WaveRunning || ro.Waves[0].Done != 6 || len(ro.Waves[0].Admitted) != 6 {
		t.Fatalf("s1 done, s2 waiting: %+v", ro.Waves[0])
	}
	// s2's boot server comes: its two start, end, and so does the rollout.
	s2join := e.joinSecret(api.TokenRequest{Site: "s2"})
	if r := e.registerWith(s2join, "bs2", "s2"); r.code != 201 {
		t.Fatalf("s2's boot server: %d %s", r.code, r.body)
	}
	e.srv.StepRollouts(ctx)
	ro = e.rollout(ro.ID)
	if a := admissionOf(ro, "s2"); a.InFlight != 2 || a.Waiting != 0 || ro.Holding != "" {
		t.Fatalf("s2 with a boot server: %+v, holding %q", a, ro.Holding)
	}
	for _, o := range e.live(ro, 0) {
		e.toState(o.ID, api.OrderDone)
	}
	e.srv.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.State != api.RolloutDone || ro.Waves[0].Done != 8 {
		t.Fatalf("the end: %s %+v", ro.State, ro.Waves[0])
	}
}

// Egress admission: with a ceiling reported, the site starts with a
// probe (one order per step and boot server), then keeps in flight what
// the measured egress per active order says the ceiling sustains, and
// starts nothing while the boot server runs near its ceiling.
func TestRolloutSizesInFlightByBootServerEgress(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bs := e.client(api.RoleBootServer)
	sent := 0.0
	beat := func(rate float64) {
		t.Helper()
		sent += rate * 10
		if _, err := bs.Heartbeat(ctx, api.Heartbeat{EgressCeiling: 100e6,
			Stats: map[string]float64{"osim_httpboot_response_bytes_total": sent, "osim_tftp_bytes_sent_total": 0}}); err != nil {
			t.Fatal(err)
		}
	}
	beat(0)
	_, img := e.seed("s1", 20, map[string]string{"lab": "x"}, 1)
	ro := e.createRollout(api.RolloutRequest{Orders: api.OrderRequest{Selector: "lab=x", Image: img.ID, All: true},
		Policy: api.RolloutPolicy{WaveSize: 20}})
	if a := admissionOf(ro, "s1"); a.InFlight != 1 || a.LimitBy != "egress probe" || a.Ceiling != 100e6 {
		t.Fatalf("first step: %+v", a)
	}
	e.srv.StepRollouts(ctx)
	ro = e.rollout(ro.ID)
	if a := admissionOf(ro, "s1"); a.InFlight != 2 || a.LimitBy != "egress probe" {
		t.Fatalf("second probe: %+v", a)
	}
	// Both download: 60 MB/s together, 30 MB/s each. 90 % of 100 MB/s
	// feeds 3 of them.
	for _, o := range e.live(ro, 0) {
		e.toState(o.ID, api.OrderInstalling)
	}
	e.clock.Step(10 * time.Second)
	beat(60e6)
	e.srv.StepRollouts(ctx)
	ro = e.rollout(ro.ID)
	if a := admissionOf(ro, "s1"); a.InFlight != 3 || a.Limit != 3 || a.LimitBy != "egress" || a.Egress != 60e6 || a.Active != 2 {
		t.Fatalf("measured at 30 MB/s per order: %+v", a)
	}
	// Three download at 95 MB/s, near the ceiling: nothing new starts.
	for _, o := range e.live(ro, 0) {
		if o.State == api.OrderPending {
			e.toState(o.ID, api.OrderInstalling)
		}
	}
	e.clock.Step(10 * time.Second)
	beat(95e6)
	e.srv.StepRollouts(ctx)
	ro = e.rollout(ro.ID)
	if a := admissionOf(ro, "s1"); a.InFlight != 3 || a.Limit != 2 || !strings.Contains(ro.Holding, "site s1 3/2 in flight (egress)") {
		t.Fatalf("near the ceiling: %+v, holding %q", a, ro.Holding)
	}
	// One ends, the other two slow to 10 MB/s each (their disks are
	// the bottleneck now): 9 may be in flight.
	e.toState(e.live(ro, 0)[0].ID, api.OrderDone)
	e.clock.Step(10 * time.Second)
	beat(20e6)
	e.srv.StepRollouts(ctx)
	ro = e.rollout(ro.ID)
	if a := admissionOf(ro, "s1"); a.InFlight != 9 || a.Limit != 9 || a.Active != 2 {
		t.Fatalf("after the egress fell: %+v", a)
	}
	// No heartbeat for 3 intervals: the boot server is stale, its site
	// has no healthy one and no ceiling, so count caps alone apply (none).
	e.clock.Step(31 * time.Second)
	e.srv.StepRollouts(ctx)
	ro = e.rollout(ro.ID)
	if a := admissionOf(ro, "s1"); a.Limit != -1 || len(ro.Waves[0].Admitted) != 20 {
		t.Fatalf("without a healthy boot server and no count cap: %+v, %d admitted", a, len(ro.Waves[0].Admitted))
	}
}

// The window: nothing starts outside it; inside it orders start; when it
// closes mid-wave the running orders go on and the rest wait for the next
// opening.
func TestRolloutWaitsForItsWindow(t *testing.T) {
	e := newEnv(t) // the clock says 12:00 UTC
	ctx := t.Context()
	_, img := e.seed("s1", 2, map[string]string{"lab": "x"}, 1)
	ro := e.createRollout(api.RolloutRequest{Orders: api.OrderRequest{Selector: "lab=x", Image: img.ID, All: true},
		Policy: api.RolloutPolicy{WaveSize: 2, MaxInFlightPerSite: 1, Window: &api.RolloutWindow{Start: "22:00", End: "06:00"}}})
	if ro.Waves[0].State != api.WaveWaiting || ro.Holding != "outside its window 22:00-06:00 UTC; it opens 2026-03-01T22:00:00Z" {
		t.Fatalf("outside the window: %s, holding %q", ro.Waves[0].State, ro.Holding)
	}
	e.clock.Step(10 * time.Hour)
	e.srv.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); ro.Waves[0].State != api.WaveRunning || len(ro.Waves[0].Admitted) != 1 {
		t.Fatalf("inside the window: %+v", ro.Waves[0])
	}
	e.clock.Step(8*time.Hour + 30*time.Minute) // 06:30: closed again
	e.toState(e.live(ro, 0)[0].ID, api.OrderDone)
	e.srv.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); len(ro.Waves[0].Admitted) != 1 || !strings.HasPrefix(ro.Holding, "outside its window") {
		t.Fatalf("after the window closed: %d admitted, holding %q", len(ro.Waves[0].Admitted), ro.Holding)
	}
	e.clock.Step(15*time.Hour + 30*time.Minute) // 22:00
	e.srv.StepRollouts(ctx)
	if ro = e.rollout(ro.ID); len(ro.Waves[0].Admitted) != 2 || ro.Holding != "" {
		t.Fatalf("the next opening: %d admitted, holding %q", len(ro.Waves[0].Admitted), ro.Holding)
	}
	for _, c := range []struct{ policy, want string }{
		{`{"wave_size":1,"window":{"start":"25:00","end":"06:00"}}`, "policy.window.start"},
		{`{"wave_size":1,"window":{"start":"22:00","end":"6"}}`, "policy.window.end"},
		{`{"wave_size":1,"window":{"start":"22:00","end":"22:00"}}`, "start and end are both 22:00"},
		{`{"wave_size":1,"window":{"start":"22:00","end":"06:00","zone":"Mars/Olympus"}}`, "policy.window.zone"},
		{`{"max_in_flight_per_site":-1}`, "policy.max_in_flight_per_site"},
		{`{"max_in_flight_per_boot_server":-2}`, "policy.max_in_flight_per_boot_server"},
	} {
		body := fmt.Sprintf(`{"orders":{"selector":"lab=x","image":%q,"all":true},"policy":%s}`, img.ID, c.policy)
		wantError(t, e.as(api.RoleOperator, "POST", "/api/v1/rollouts", body), 400, c.want)
	}
}

// A manager stopped while admitting a chunk makes the same request again:
// whether it stopped before or after the orders were written (or after it
// asked a power cycle), every target gets one order, and one power cycle
// once its order is staged.
func TestRolloutChunkSurvivesAStopMidAdmission(t *testing.T) {
	for _, written := range []bool{false, true} {
		t.Run(fmt.Sprintf("orders written %v", written), func(t *testing.T) {
			e := newEnv(t)
			ctx := t.Context()
			ts, img := e.seed("s1", 3, map[string]string{"lab": "x"}, 1)
			for _, tg := range ts {
				spec := api.PowerSpec{Driver: "libvirt", Domain: "lab-" + tg.Hostname}
				if _, err := e.client(api.RoleOperator).UpdateTarget(ctx, tg.ID, api.TargetPatch{Power: &spec}); err != nil {
					t.Fatal(err)
				}
			}
			ro := e.createRollout(api.RolloutRequest{Orders: api.OrderRequest{Selector: "lab=x", Image: img.ID, All: true},
				Policy: api.RolloutPolicy{WaveSize: 3, MaxInFlightPerSite: 1}})
			e.toState(e.live(ro, 0)[0].ID, api.OrderDone)
			// The state a stop leaves: the next chunk recorded, maybe its
			// orders written, the rollout not told.
			w := &ro.Waves[0]
			var next string
			for _, id := range w.Targets {
				if id != w.Admitted[0] {
					next = id
					break
				}
			}
			w.Admitting, w.Chunks = []string{next}, w.Chunks+1
			if _, err := e.store.PutRollout(ctx, ro); err != nil {
				t.Fatal(err)
			}
			if written {
				req := ro.Orders
				req.Selector, req.Targets, req.RequestID = "", []string{next}, fmt.Sprintf("%s-%d", w.Batch, w.Chunks)
				if _, err := e.store.PlaceOrders(ctx, req, mdb.OrderOptions{Batch: w.Batch}); err != nil {
					t.Fatal(err)
				}
			}
			e.srv.StepRollouts(ctx)
			ro = e.rollout(ro.ID)
			orders := e.waveOrders(ro, 0)
			if len(orders) != 2 || len(ro.Waves[0].Admitted) != 2 || len(ro.Waves[0].Admitting) != 0 {
				t.Fatalf("%d orders, admitted %v, admitting %v; want 2, 2, none", len(orders), ro.Waves[0].Admitted, ro.Waves[0].Admitting)
			}
			powerOf := func() []api.PowerRequest {
				var prs []api.PowerRequest
				if got := e.as(api.RoleViewer, "GET", "/api/v1/targets/"+next+"/power", ""); got.code != 200 || json.Unmarshal(got.body, &prs) != nil {
					t.Fatalf("power requests: %d %s", got.code, got.body)
				}
				return prs
			}
			// No power cycle before the order is staged: the machine would
			// boot its disk.
			if prs := powerOf(); len(prs) != 0 {
				t.Fatalf("power requests of a pending order: %+v", prs)
			}
			var o api.Order
			for _, x := range orders {
				if x.Target == next {
					o = x
				}
			}
			e.toState(o.ID, api.OrderStaged)
			if written { // the manager stopped right after asking, too
				if _, err := e.store.CreatePowerRequest(ctx, next, api.PowerActionRequest{Action: "cycle", NetworkBoot: true},
					"rollout "+ro.ID+" order "+o.ID); err != nil {
					t.Fatal(err)
				}
			}
			e.srv.StepRollouts(ctx)
			e.srv.StepRollouts(ctx)
			if prs := powerOf(); len(prs) != 1 || prs[0].Action != "cycle" || !prs[0].NetworkBoot {
				t.Fatalf("power requests of the chunk's staged target: %+v, want one cycle with network boot", prs)
			}
			if ro = e.rollout(ro.ID); !slices.Contains(ro.Waves[0].Powered, o.ID) {
				t.Fatalf("powered %v lacks %s", ro.Waves[0].Powered, o.ID)
			}
		})
	}
}

// Each staged order's machine is started as its driver can: wake-on-LAN
// cannot cycle, so its machine gets "on"; a machine powered by hand gets
// nothing (the operator reboots it); one with a BMC a cycle with network
// boot next.
func TestRolloutStartsEachMachineAsItsDriverCan(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ts, img := e.seed("s1", 3, map[string]string{"lab": "x"}, 1)
	specs := []api.PowerSpec{{Driver: "wol", Interface: "eth1"}, {Driver: "manual"}, {Driver: "libvirt", Domain: "vm-3"}}
	for i, tg := range ts {
		if _, err := e.client(api.RoleOperator).UpdateTarget(ctx, tg.ID, api.TargetPatch{Power: &specs[i]}); err != nil {
			t.Fatal(err)
		}
	}
	ro := e.createRollout(api.RolloutRequest{Orders: api.OrderRequest{Selector: "lab=x", Image: img.ID, All: true},
		Policy: api.RolloutPolicy{WaveSize: 3}})
	for _, o := range e.waveOrders(ro, 0) {
		e.toState(o.ID, api.OrderStaged)
	}
	e.srv.StepRollouts(ctx)
	want := []string{"on false", "", "cycle true"}
	for i, tg := range ts {
		var prs []api.PowerRequest
		if got := e.as(api.RoleViewer, "GET", "/api/v1/targets/"+tg.ID+"/power", ""); got.code != 200 || json.Unmarshal(got.body, &prs) != nil {
			t.Fatalf("power requests: %d %s", got.code, got.body)
		}
		got := ""
		if len(prs) == 1 {
			got = fmt.Sprint(prs[0].Action, " ", prs[0].NetworkBoot)
		}
		if got != want[i] || len(prs) > 1 {
			t.Errorf("%s (%s): power requests %+v, want %q", tg.Hostname, specs[i].Driver, prs, want[i])
		}
	}
	if ro = e.rollout(ro.ID); len(ro.Waves[0].Powered) != 3 {
		t.Errorf("powered %v, want all three orders", ro.Waves[0].Powered)
	}
}
