package manager

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"osim/controlplane/api"
)

func TestTargetsCRUDByIDAndMAC(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	op := e.client(api.RoleOperator)
	tg, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: "node1", MACs: []string{"52:54:00:AA:BB:01"}, Arch: "efi-x64", Site: "s1", Labels: map[string]string{"rack": "r1"}})
	if err != nil {
		t.Fatal(err)
	}
	if tg.ID == "" || tg.MACs[0] != "52:54:00:aa:bb:01" {
		t.Fatalf("created %+v", tg)
	}
	viewer := e.client(api.RoleViewer)
	for _, key := range []string{tg.ID, "52-54-00-aa-bb-01", "5254.00aa.bb01", "52:54:00:AA:BB:01"} {
		got, err := viewer.GetTarget(ctx, key)
		if err != nil || got.ID != tg.ID {
			t.Fatalf("get %q: %+v %v", key, got, err)
		}
	}
	host := "node1b"
	up, err := op.UpdateTarget(ctx, "52-54-00-aa-bb-01", api.TargetPatch{Hostname: &host})
	if err != nil || up.Hostname != "node1b" || up.Revision <= tg.Revision {
		t.Fatalf("patch: %+v %v", up, err)
	}
	if _, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: "node2", MACs: []string{"52:54:00:aa:bb:02"}, Site: "s2", Labels: map[string]string{"rack": "r2"}}); err != nil {
		t.Fatal(err)
	}
	l, err := viewer.ListTargets(ctx, "rack=r1", "", "", 0)
	if err != nil || len(l.Targets) != 1 || l.Targets[0].ID != tg.ID {
		t.Fatalf("list rack=r1: %+v %v", l, err)
	}
	l, err = viewer.ListTargets(ctx, "", "s2", "", 0)
	if err != nil || len(l.Targets) != 1 || l.Targets[0].Hostname != "node2" {
		t.Fatalf("list site s2: %+v %v", l, err)
	}
	l, err = viewer.ListTargets(ctx, "", "", "", 1)
	if err != nil || len(l.Targets) != 1 || l.Next == "" {
		t.Fatalf("list limit 1: %+v %v", l, err)
	}
	l2, err := viewer.ListTargets(ctx, "", "", l.Next, 1)
	if err != nil || len(l2.Targets) != 1 || l2.Targets[0].ID == l.Targets[0].ID {
		t.Fatalf("second page: %+v %v", l2, err)
	}
	if err := op.DeleteTarget(ctx, "52:54:00:aa:bb:01"); err != nil {
		t.Fatal(err)
	}
	_, err = viewer.GetTarget(ctx, tg.ID)
	mustStatus(t, err, 404)
	mustStatus(t, op.DeleteTarget(ctx, tg.ID), 404)
}

func TestTargetBadInputIsA4xxNamingTheProblem(t *testing.T) {
	e := newEnv(t)
	good := `{"hostname":"n1","macs":["52:54:00:00:00:01"],"site":"s1"}`
	if r := e.as(api.RoleOperator, "POST", "/api/v1/targets", good); r.code != 201 {
		t.Fatalf("good: %d %s", r.code, r.body)
	}
	big := `{"hostname":"n1","macs":["52:54:00:00:00:09"],"site":"s1","labels":{"x":"` + strings.Repeat("a", 2<<20) + `"}}`
	for _, c := range []struct {
		name, body string
		headers    []string
		code       int
		msg        string
	}{
		{"unknown field", `{"hostname":"n2","macz":["52:54:00:00:00:02"],"site":"s1"}`, nil, 400, `decoding body: json: unknown field "macz"`},
		{"malformed", `{"hostname":`, nil, 400, "decoding body"},
		{"trailing data", good + `{}`, nil, 400, "trailing data"},
		{"wrong type", `{"hostname":5}`, nil, 400, "hostname"},
		{"empty", ``, []string{"Content-Type", "application/json"}, 400, "empty body"},
		{"wrong content type", good, []string{"Content-Type", "text/plain"}, 400, "Content-Type"},
		{"too large", big, nil, 413, "limit"},
		{"bad mac", `{"hostname":"n3","macs":["zz"],"site":"s1"}`, nil, 400, "macs[0]"},
		{"bad site", `{"hostname":"n3","macs":["52:54:00:00:00:03"],"site":"s 1"}`, nil, 400, "site"},
		{"duplicate mac", `{"hostname":"n4","macs":["52:54:00:00:00:01"],"site":"s1"}`, nil, 409, "52:54:00:00:00:01"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.as(api.RoleOperator, "POST", "/api/v1/targets", c.body, c.headers...), c.code, c.msg)
		})
	}
	wantError(t, e.as(api.RoleOperator, "PATCH", "/api/v1/targets/52:54:00:00:00:01", `{"arch":"sparc"}`), 400, "arch")
	wantError(t, e.as(api.RoleOperator, "PATCH", "/api/v1/targets/52:54:00:00:00:01", `{"arch":"bios"} x`), 400, "trailing")
	wantError(t, e.as(api.RoleViewer, "GET", "/api/v1/targets?selector=a%3D%3D%3Db", ""), 400, "selector")
	wantError(t, e.as(api.RoleViewer, "GET", "/api/v1/targets?limit=-1", ""), 400, "limit")
	wantError(t, e.as(api.RoleViewer, "GET", "/api/v1/targets/52:54:00:00:00:77", ""), 404, "")
}

func TestCreateManyTargetsPaging(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	op := e.client(api.RoleOperator)
	for i := range 5 {
		if _, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("n%d", i), MACs: []string{fmt.Sprintf("52:54:00:00:01:%02x", i)}, Site: "s1"}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	after := ""
	for {
		l, err := op.ListTargets(ctx, "", "", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range l.Targets {
			seen[tg.ID] = true
		}
		if l.Next == "" {
			break
		}
		after = l.Next
	}
	if len(seen) != 5 {
		t.Fatalf("paged through %d targets, want 5", len(seen))
	}
	_ = http.StatusOK
}

// A person's listing: free text, arch and order state filtered in the
// manager, with counts; order counts per state without a listing.
func TestFindTargetsFiltersAndCountsAndOrderCounts(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	op := e.client(api.RoleOperator)
	var ids []string
	for i := range 6 {
		arch := "bios"
		if i%2 == 1 {
			arch = "efi-x64"
		}
		tg, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("db-%d", i), MACs: []string{fmt.Sprintf("52:54:00:cc:00:%02x", i)}, Arch: arch, Site: "s1"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tg.ID)
	}
	_, img := e.seed("s9", 0, nil, 9)
	if _, err := op.CreateOrders(ctx, api.OrderRequest{Targets: []string{ids[1], ids[3]}, Image: img.ID}); err != nil {
		t.Fatal(err)
	}
	viewer := e.client(api.RoleViewer)
	for _, c := range []struct {
		f     api.TargetFilter
		total int
	}{
		{api.TargetFilter{Text: "DB-"}, 6},
		{api.TargetFilter{Text: "cc-00-03"}, 1},
		{api.TargetFilter{Arch: "efi-x64"}, 3},
		{api.TargetFilter{OrderState: "pending"}, 2},
		{api.TargetFilter{OrderState: "none", Arch: "bios"}, 3},
	} {
		c.f.Count = true
		l, err := viewer.FindTargets(ctx, c.f, "", 2)
		if err != nil || l.Total == nil || *l.Total != c.total || len(l.Targets) != min(2, c.total) {
			t.Errorf("%+v: %+v %v, want total %d", c.f, l, err, c.total)
		}
	}
	l, err := viewer.FindTargets(ctx, api.TargetFilter{Text: "db-", Count: true}, "", 4)
	if err != nil || l.Next == "" {
		t.Fatalf("page 1: %+v %v", l, err)
	}
	l2, err := viewer.FindTargets(ctx, api.TargetFilter{Text: "db-", Count: true}, l.Next, 4)
	if err != nil || len(l2.Targets) != 2 || *l2.Before != 4 || *l2.Total != 6 {
		t.Fatalf("page 2: %+v %v", l2, err)
	}
	if l, _ := viewer.FindTargets(ctx, api.TargetFilter{}, "", 0); l.Total != nil {
		t.Errorf("total without count=1: %v", *l.Total)
	}
	for _, q := range []string{"arch=sparc", "order_state=nearly", "count=yes", "boot_loop=2"} {
		if got := e.as(api.RoleViewer, "GET", "/api/v1/targets?"+q, ""); got.code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, got.code)
		}
	}
	counts, err := viewer.OrderCounts(ctx)
	if err != nil || counts[api.OrderPending] != 2 || len(counts) != len(api.OrderStates) {
		t.Fatalf("order counts %v %v", counts, err)
	}
}
