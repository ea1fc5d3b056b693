package manager

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	dto "github.com/prometheus/client_model/go"

	"osim/controlplane/api"
)

// testCounter reads one sample of e's registry (counter or gauge) whose
// labels include want; -1 when there is none.
func testCounter(t *testing.T, e *env, name string, want map[string]string) float64 {
	t.Helper()
	return registryValue(t, e.reg, name, want)
}

// registryValue is testCounter for any registry.
func registryValue(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func TestSyncSnapshotThenIncrementalForOwnSiteOnly(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	s1, img := e.seed("s1", 3, nil, 1)
	e.seed("s2", 2, nil, 2)
	bs := e.client(api.RoleBootServer)

	snap, err := bs.Sync(ctx, 0, 0, 0)
	if err != nil || !snap.Snapshot || snap.Revision == 0 {
		t.Fatalf("since=0: %+v %v", snap, err)
	}
	changes := snap.Changes
	for cur := snap.Cursor; cur != ""; {
		page, err := bs.SyncSnapshot(ctx, cur, 2)
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, page.Changes...)
		cur = page.Cursor
	}
	targets, images := 0, 0
	for _, c := range changes {
		switch c.Kind {
		case api.ChangeTarget:
			targets++
			if c.Target == nil || c.Target.Site != "s1" {
				t.Fatalf("snapshot has another site's target: %+v", c.Target)
			}
		case api.ChangeImage:
			images++
		}
	}
	if targets != len(s1) || images != 1 {
		t.Fatalf("snapshot: %d targets, %d images; want %d and 1", targets, images, len(s1))
	}

	// Changes in both sites: the caller sees its own only, orders with their token.
	op := e.client(api.RoleOperator)
	if _, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: "other", MACs: []string{"52:54:00:ff:00:02"}, Site: "s2"}); err != nil {
		t.Fatal(err)
	}
	orders, err := op.CreateOrders(ctx, api.OrderRequest{Target: s1[0].ID, Image: img.ID})
	if err != nil {
		t.Fatal(err)
	}
	inc, err := bs.Sync(ctx, snap.Revision, 0, 0)
	if err != nil || inc.Snapshot {
		t.Fatalf("incremental: %+v %v", inc, err)
	}
	sawOrder := false
	for _, c := range inc.Changes {
		if c.Rev <= snap.Revision {
			t.Fatalf("change %+v is not past %d", c, snap.Revision)
		}
		if c.Target != nil && c.Target.Site != "s1" {
			t.Fatalf("incremental has another site's target: %+v", c.Target)
		}
		if c.Kind == api.ChangeOrder && c.ID == orders[0].ID {
			sawOrder = true
			if c.Order == nil || c.Order.Token == "" {
				t.Fatalf("sync order without its token: %+v", c.Order)
			}
		}
	}
	if !sawOrder {
		t.Fatalf("incremental misses the new order: %+v", inc.Changes)
	}
	rev := inc.Revision

	// Long-poll: nothing for s1 yet; another site's change does not end it,
	// ours does.
	type result struct {
		r   api.SyncResponse
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := bs.Sync(ctx, rev, 30*time.Second, 0)
		done <- result{r, err}
	}()
	e.waitPolling(1)
	if n := testCounter(t, e, "osim_manager_sync_clients", nil); n != 1 {
		t.Fatalf("sync_clients %v during the poll", n)
	}
	if _, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: "other2", MACs: []string{"52:54:00:ff:00:03"}, Site: "s2"}); err != nil {
		t.Fatal(err)
	}
	e.waitPolling(2) // it woke, found nothing for s1, and waits again (within otherSitesLag)
	select {
	case r := <-done:
		t.Fatalf("long-poll ended on another site's change: %+v %v", r.r, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	nt, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: "mine", MACs: []string{"52:54:00:ff:00:04"}, Site: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || len(r.r.Changes) != 1 || r.r.Changes[0].ID != nt.ID {
			t.Fatalf("long-poll: %+v %v", r.r, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll did not return after a change for the site")
	}
	if n := testCounter(t, e, "osim_manager_sync_clients", nil); n != 0 {
		t.Fatalf("sync_clients %v after the poll", n)
	}

	for _, c := range []struct{ q, msg string }{
		{"", "exactly one"},
		{"?since=1&snapshot=x", "exactly one"},
		{"?since=x", "since"},
		{"?snapshot=", "cursor"},
		{"?since=1&wait=soon", "wait"},
	} {
		wantError(t, e.as(api.RoleBootServer, "GET", "/api/v1/sync"+c.q, ""), 400, c.msg)
	}
}

func TestSyncSinceOlderThanTheLogAnswersASnapshot(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.seed("s1", 3, nil, 1)
	rev, _ := e.store.Revision(ctx)
	if err := e.store.CompactLog(ctx, 1); err != nil {
		t.Fatal(err)
	}
	r, err := e.client(api.RoleBootServer).Sync(ctx, 1, 0, 0)
	if err != nil || !r.Snapshot || r.Revision < rev {
		t.Fatalf("since=1 after compaction: snapshot %v rev %d (%v), want a snapshot at >= %d", r.Snapshot, r.Revision, err, rev)
	}
}

// A boot server's health is judged by the interval it says it keeps, not
// the manager's: one beating every 30 s is healthy 60 s after its last
// heartbeat where the manager's 10 s would call it stale; each answer
// names the manager's interval for boot servers that follow it.
func TestHealthByTheBootServersOwnInterval(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bs := e.client(api.RoleBootServer)
	got, err := bs.Heartbeat(ctx, api.Heartbeat{IntervalSeconds: 30})
	if err != nil || got.HeartbeatInterval != 30 || got.ManagerHeartbeatInterval != 10 {
		t.Fatalf("heartbeat: %+v %v", got, err)
	}
	viewer := e.client(api.RoleViewer)
	for _, c := range []struct {
		after time.Duration
		want  string
	}{{60 * time.Second, api.HealthHealthy}, {30 * time.Second, api.HealthStale}, {210 * time.Second, api.HealthDown}} {
		e.clock.Step(c.after)
		if l, err := viewer.ListBootServers(ctx); err != nil || len(l) != 1 || l[0].Health != c.want {
			t.Fatalf("after +%v: %+v %v, want %s", c.after, l, err, c.want)
		}
	}
	// A test's agent beats every 200 ms: accepted, judged by it.
	if got, err := bs.Heartbeat(ctx, api.Heartbeat{IntervalSeconds: 0.2}); err != nil || got.HeartbeatInterval != 0.2 || got.Health != api.HealthHealthy {
		t.Fatalf("a 200 ms heartbeat: %+v %v", got, err)
	}
	e.clock.Step(time.Second)
	if l, _ := viewer.ListBootServers(ctx); len(l) != 1 || l[0].Health != api.HealthStale {
		t.Fatalf("1 s after a 200 ms heartbeat: %+v, want stale", l)
	}
	for _, bad := range []string{`{"interval_seconds":7200}`, `{"interval_seconds":-3}`} {
		wantError(t, e.as(api.RoleBootServer, "POST", "/api/v1/bootservers/heartbeat", bad), 400, "interval_seconds")
	}
}

func TestHeartbeatHealthAndDelete(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bs := e.client(api.RoleBootServer)
	got, err := bs.Heartbeat(ctx, api.Heartbeat{SyncedRevision: 3, Version: "v9"})
	if err != nil || got.ID != e.bs.ID || got.Health != api.HealthHealthy || got.SyncedRevision != 3 || !got.LastHeartbeat.Equal(e.clock.Now()) {
		t.Fatalf("heartbeat: %+v %v", got, err)
	}
	viewer := e.client(api.RoleViewer)
	for _, c := range []struct {
		after time.Duration
		want  string
	}{{29 * time.Second, api.HealthHealthy}, {2 * time.Second, api.HealthStale}, {70 * time.Second, api.HealthDown}} {
		e.clock.Step(c.after)
		l, err := viewer.ListBootServers(ctx)
		if err != nil || len(l) != 1 || l[0].Health != c.want {
			t.Fatalf("after +%v: %+v %v, want %s", c.after, l, err, c.want)
		}
		if n := testCounter(t, e, "osim_manager_boot_servers", map[string]string{"health": c.want}); n != 1 {
			t.Fatalf("boot_servers{health=%s} = %v", c.want, n)
		}
	}
	r := e.as(api.RoleViewer, "GET", "/api/v1/bootservers/"+e.bs.ID, "")
	if r.code != 200 {
		t.Fatalf("get boot server: %d %s", r.code, r.body)
	}
	wantError(t, e.as(api.RoleBootServer, "POST", "/api/v1/bootservers/heartbeat", `{"synced_revision":"x"}`), 400, "synced_revision")
	// Registering the same name again conflicts; a bad site is named.
	join := e.client(api.RoleJoin)
	_, err = join.Register(ctx, api.RegisterRequest{Name: "bs1", Site: "s1"})
	mustStatus(t, err, 409)
	wantError(t, e.as(api.RoleJoin, "POST", "/api/v1/bootservers/register", `{"name":"bs2","site":"no site"}`), 400, "site")

	wantError(t, e.as(api.RoleAdmin, "DELETE", "/api/v1/bootservers/nothing", ""), 404, "")
}

func TestDeletingABootServerRevokesItsToken(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bs := e.client(api.RoleBootServer)
	if _, err := bs.Heartbeat(ctx, api.Heartbeat{}); err != nil {
		t.Fatal(err)
	}
	if r := e.as(api.RoleAdmin, "DELETE", "/api/v1/bootservers/"+e.bs.ID, ""); r.code != 204 {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	_, err := bs.Heartbeat(ctx, api.Heartbeat{})
	mustStatus(t, err, 401)
	wantError(t, e.as(api.RoleAdmin, "DELETE", "/api/v1/bootservers/"+e.bs.ID, ""), 404, "")
	toks, err := e.client(api.RoleAdmin).ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.BootServer == e.bs.ID {
			t.Fatalf("token %s of the deleted boot server remains", tk.ID)
		}
	}
}

func TestMetricsCarryRouteAndStoreLabels(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ts, img := e.seed("s1", 2, nil, 1)
	op := e.client(api.RoleOperator)
	if _, err := op.CreateOrders(ctx, api.OrderRequest{Targets: []string{ts[0].ID, ts[1].ID}, Image: img.ID}); err != nil {
		t.Fatal(err)
	}
	_, _ = op.GetTarget(ctx, ts[0].ID)
	_, _ = op.GetTarget(ctx, "nothing")
	e.do("GET", "/api/v1/targets", "", "")
	e.as(api.RoleViewer, "GET", "/nowhere", "")
	if _, err := e.client(api.RoleBootServer).Heartbeat(ctx, api.Heartbeat{SyncedRevision: 1}); err != nil {
		t.Fatal(err)
	}
	rev, _ := e.store.Revision(ctx)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"osim_manager_api_requests_total", map[string]string{"route": "GET /api/v1/targets/{id}", "code": "200"}, 1},
		{"osim_manager_api_requests_total", map[string]string{"route": "GET /api/v1/targets/{id}", "code": "404"}, 1},
		{"osim_manager_api_requests_total", map[string]string{"route": "GET /api/v1/targets", "code": "401"}, 1},
		{"osim_manager_api_requests_total", map[string]string{"route": "POST /api/v1/orders", "code": "201"}, 1},
		{"osim_manager_api_requests_total", map[string]string{"route": "unmatched", "code": "404"}, 1},
		{"osim_manager_api_request_duration_seconds", map[string]string{"route": "GET /api/v1/targets/{id}"}, 2},
		{"osim_manager_orders", map[string]string{"state": "pending"}, 2},
		{"osim_manager_orders", map[string]string{"state": "done"}, 0},
		{"osim_manager_boot_servers", map[string]string{"health": "healthy"}, 1},
		{"osim_manager_revision", nil, float64(rev)},
		{"osim_manager_sync_lag_revisions", map[string]string{"boot_server": e.bs.ID}, float64(rev - 1)},
		{"osim_manager_sync_clients", nil, 0},
	} {
		if got := testCounter(t, e, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// A sync moves the lag.
	if _, err := e.client(api.RoleBootServer).Sync(ctx, rev, 0, 0); err != nil {
		t.Fatal(err)
	}
	if got := testCounter(t, e, "osim_manager_sync_lag_revisions", map[string]string{"boot_server": e.bs.ID}); got != 0 {
		t.Errorf("lag after sync = %v, want 0", got)
	}
}

// TestSyncLongPollMovesPastOtherSitesWithinTheirLag: when only another
// site changes, a long-poll does not wait its whole time: it answers
// within otherSitesLag with no changes and the new revision, so an
// up-to-date boot server's revision (and the lag metric) moves on.
func TestSyncLongPollMovesPastOtherSitesWithinTheirLag(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.seed("s1", 1, nil, 1)
	e.seed("s2", 1, nil, 2)
	bs := e.client(api.RoleBootServer) // site s1
	first, err := bs.Sync(ctx, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	rev := first.Revision
	for first.Cursor != "" {
		if first, err = bs.SyncSnapshot(ctx, first.Cursor, 0); err != nil {
			t.Fatal(err)
		}
	}
	op := e.client(api.RoleOperator)
	done := make(chan api.SyncResponse, 1)
	go func() {
		r, err := bs.Sync(ctx, rev, 30*time.Second, 0)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	e.waitPolling(1)
	other, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: "other", MACs: []string{"52:54:00:ff:00:09"}, Site: "s2"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitPolling(2) // the poll's wait and otherSitesLag
	e.clock.Step(otherSitesLag)
	select {
	case r := <-done:
		if len(r.Changes) != 0 || r.Revision < other.Revision {
			t.Fatalf("answer %+v: want no changes at revision >= %d", r, other.Revision)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("long-poll still waiting %v after another site's change", otherSitesLag)
	}
}

func TestRevisionLongPollAnswersAtTheNextChangeOrAfterTheWait(t *testing.T) {
	e := newEnv(t)
	got := e.as(api.RoleViewer, "GET", "/api/v1/revision", "")
	var info api.RevisionInfo
	if got.code != 200 || json.Unmarshal([]byte(got.body), &info) != nil || info.Revision == 0 {
		t.Fatalf("revision: %d %s", got.code, got.body)
	}
	done := make(chan api.RevisionInfo, 1)
	go func() {
		g := e.as(api.RoleViewer, "GET", fmt.Sprintf("/api/v1/revision?after=%d&wait=30s", info.Revision), "")
		var out api.RevisionInfo
		json.Unmarshal([]byte(g.body), &out)
		done <- out
	}()
	select {
	case <-done:
		t.Fatal("the long-poll answered before any change")
	case <-time.After(100 * time.Millisecond):
	}
	e.as(api.RoleOperator, "POST", "/api/v1/targets", `{"hostname":"n1","macs":["52:54:00:00:00:71"],"arch":"bios","site":"s1"}`)
	select {
	case out := <-done:
		if out.Revision <= info.Revision {
			t.Fatalf("revision after a change: %d, want past %d", out.Revision, info.Revision)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll did not answer the change")
	}
	if g := e.as(api.RoleViewer, "GET", "/api/v1/revision?after=x", ""); g.code != 400 {
		t.Errorf("after=x: %d", g.code)
	}
}
