package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
)

// TestOrderGuardIsAboutWhatTheSelectorMatches: `!no-such-label` and
// `a!=b` match every target of every site; they are refused without
// "all": true like any spelling that matches everything (before: 201 with
// an order for every target), and so is more than half of a site.
func TestOrderGuardIsAboutWhatTheSelectorMatches(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	_, img := e.seed("s1", 6, map[string]string{"rack": "r1"}, 1)
	e.seed("s2", 6, map[string]string{"rack": "r2"}, 2)
	for _, sel := range []string{"!no-such-label", "a!=b", "rack", " rack , !x "} {
		body := fmt.Sprintf(`{"selector":%q,"image":%q}`, sel, img.ID)
		wantError(t, e.as(api.RoleOperator, "POST", "/api/v1/orders", body), 400, "matches every target (12)")
	}
	body := fmt.Sprintf(`{"selector":"rack=r1","image":%q}`, img.ID)
	wantError(t, e.as(api.RoleOperator, "POST", "/api/v1/orders", body), 400, "6 of the 6 targets of site s1, more than 50%")
	if n := testCounter(t, e, "osim_manager_order_requests_refused_total", map[string]string{"reason": "needs_all"}); n != 5 {
		t.Fatalf("refused counter %v, want 5", n)
	}
	l := must[api.OrderList](t)(e.client(api.RoleViewer).ListOrders(ctx, "", "", "", "", 1000))
	if len(l.Orders) != 0 {
		t.Fatalf("refused requests wrote %d orders", len(l.Orders))
	}
	r := e.as(api.RoleOperator, "POST", "/api/v1/orders", fmt.Sprintf(`{"selector":"a!=b","image":%q,"all":true}`, img.ID))
	if r.code != 201 {
		t.Fatalf("with all: %d %s", r.code, r.body)
	}
	var out api.OrderList
	if err := json.Unmarshal(r.body, &out); err != nil || len(out.Orders) != 12 || out.RequestID == "" {
		t.Fatalf("with all: %d orders, request id %q, %v", len(out.Orders), out.RequestID, err)
	}
}

// TestOrderDryRunAnswersTheTargetsAndCreatesNothing: "dry_run": true
// answers 200 with each target's id, hostname and site, the share of
// each site and why "all" would be needed; nothing is written.
func TestOrderDryRunAnswersTheTargetsAndCreatesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ts, img := e.seed("s1", 3, map[string]string{"rack": "r1"}, 1)
	e.seed("s1", 3, map[string]string{"rack": "r2"}, 2)
	plan := must[api.OrderPlan](t)(e.client(api.RoleOperator).PlanOrders(ctx, api.OrderRequest{Selector: "rack!=r2", Image: img.ID}))
	if len(plan.Targets) != 3 || plan.NeedsAll != "" {
		t.Fatalf("plan %+v", plan)
	}
	want := map[string]api.PlannedTarget{}
	for _, tg := range ts {
		want[tg.ID] = api.PlannedTarget{ID: tg.ID, Hostname: tg.Hostname, Site: "s1"}
	}
	for _, p := range plan.Targets {
		if want[p.ID] != p {
			t.Fatalf("planned %+v, want %+v", p, want[p.ID])
		}
	}
	if len(plan.Sites) != 1 || plan.Sites[0] != (api.SiteShare{Site: "s1", Ordered: 3, Total: 6}) {
		t.Fatalf("sites %+v", plan.Sites)
	}
	plan = must[api.OrderPlan](t)(e.client(api.RoleOperator).PlanOrders(ctx, api.OrderRequest{Selector: "!nope", Image: img.ID}))
	if len(plan.Targets) != 6 || !strings.Contains(plan.NeedsAll, "every target") {
		t.Fatalf("plan of everything: %d targets, needs_all %q", len(plan.Targets), plan.NeedsAll)
	}
	l := must[api.OrderList](t)(e.client(api.RoleViewer).ListOrders(ctx, "", "", "", "", 1000))
	if len(l.Orders) != 0 {
		t.Fatalf("a dry run wrote %d orders", len(l.Orders))
	}
}

// TestClientHangUpMidMassOrderLeavesEveryOrder: the client of a
// 3,500-order request hangs up once the first chunk is committed; the
// manager writes all 3,500 all the same (before: 1,000 or 2,000 were left
// and the retry failed with 409), and the retry answers them, replayed.
func TestClientHangUpMidMassOrderLeavesEveryOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	e := newEnv(t)
	_, img := e.seed("s1", 1, map[string]string{"x": "y"}, 1)
	const n = 3500
	specs := make([]api.TargetSpec, n)
	for i := range specs {
		specs[i] = api.TargetSpec{Hostname: fmt.Sprintf("m%d", i), Site: "s2", Arch: "efi-x64",
			MACs: []string{fmt.Sprintf("52:54:01:%02x:%02x:%02x", i>>16, i>>8&0xff, i&0xff)}, Labels: map[string]string{"mass": "yes"}}
	}
	if _, err := e.store.CreateTargets(t.Context(), specs); err != nil {
		t.Fatal(err)
	}
	req := api.OrderRequest{Selector: "mass=yes", Image: img.ID, All: true}
	r0 := must[uint64](t)(e.store.Revision(t.Context()))
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		_, _ = e.store.WaitRevision(t.Context(), r0)
		cancel()
	}()
	_, err := e.client(api.RoleOperator).CreateOrders(ctx, req)
	t.Logf("the hung-up request: %v", err)
	var count int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		counts := must[map[api.OrderState]int](t)(e.store.CountOrders(t.Context()))
		if count = counts[api.OrderPending]; count == n {
			break
		}
	}
	time.Sleep(200 * time.Millisecond) // nothing more comes either
	if counts := must[map[api.OrderState]int](t)(e.store.CountOrders(t.Context())); count != n || counts[api.OrderPending] != n {
		t.Fatalf("%d orders after the hang-up, want all %d", counts[api.OrderPending], n)
	}
	out := must[api.OrderList](t)(e.client(api.RoleOperator).PlaceOrders(t.Context(), req))
	if !out.Replayed || len(out.Orders) != n {
		t.Fatalf("retry: replayed %v, %d orders", out.Replayed, len(out.Orders))
	}
}
