package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/agent"
	"osim/controlplane/api"
	"osim/controlplane/manager"
	"osim/controlplane/mdb"
)

// runningAgent is an in-process agent on its own Badger.
type runningAgent struct {
	a      *agent.Agent
	db     *badger.DB
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// siteJoinToken makes a single-use join token for one boot server of site.
func siteJoinToken(t *testing.T, store manager.Store, site string) string {
	t.Helper()
	info, err := manager.NewToken(context.Background(), store, api.TokenRequest{Role: api.RoleJoin, Site: site}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return info.Secret
}

func startAgent(t *testing.T, dir, url, join, name, site string) *runningAgent {
	t.Helper()
	return startAgentWith(t, dir, url, join, name, site, nil)
}

// startAgentWith is startAgent with tweak applied to the agent's Config.
func startAgentWith(t *testing.T, dir, url, join, name, site string, tweak func(*agent.Config)) *runningAgent {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := agent.Config{DB: db, BlobDir: filepath.Join(dir, "blobs"), Client: api.NewClient(url, "", false),
		JoinToken: join, Name: name, Site: site, Registry: reg, Stats: reg,
		SyncWait: 500 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{a: a, db: db, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	t.Cleanup(ra.close)
	return ra
}

// close stops Run and closes the Badger (idempotent).
func (r *runningAgent) close() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	<-r.done
	r.db.Close()
}

// waitConverged waits until the agent's persisted view equals the
// manager's view of its site at the manager's current revision.
func waitConverged(t *testing.T, store *mdb.DB, ra *runningAgent, site string) {
	t.Helper()
	waitFor(t, 30*time.Second, "site "+site+" to converge", func() (bool, string) {
		select {
		case err := <-ra.done:
			t.Fatalf("agent of %s stopped: %v", site, err)
		default:
		}
		rev, err := store.Revision(context.Background())
		if err != nil {
			return false, err.Error()
		}
		want := managerView(t, store, site)
		got, arev := agentView(t, ra.a)
		if arev != rev {
			return false, fmt.Sprintf("agent at revision %d, manager at %d", arev, rev)
		}
		if d := diffViews(want, got); d != "" {
			return false, d
		}
		return true, ""
	})
}

// inProcessManager runs manager.New over mdb.Open behind httptest and
// returns its store, its server and an admin client.
func inProcessManager(t *testing.T) (*mdb.DB, *httptest.Server, *api.Client) {
	t.Helper()
	return inProcessManagerWith(t, false)
}

// inProcessManagerWith is inProcessManager; with run, the manager's
// background work (janitor, rollout engine every 200 ms) runs too.
func inProcessManagerWith(t *testing.T, run bool) (*mdb.DB, *httptest.Server, *api.Client) {
	t.Helper()
	store, err := mdb.Open(t.TempDir(), mdb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := manager.New(manager.Config{Store: store, Logger: slog.New(slog.DiscardHandler), RolloutTick: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if run {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { srv.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	admin, err := manager.CreateToken(context.Background(), store, api.RoleAdmin, "e2e", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return store, hs, api.NewClient(hs.URL, admin.Secret, false)
}

// TestSyncInProcess runs a manager (manager.New over mdb.Open behind
// httptest) and two agents of sites A and B, makes targets, an image,
// orders and updates (a target moves from A to B, an order is cancelled,
// a target deleted), and checks that each agent's persisted view equals
// mdb.SiteView of its site, tokens included. Then one agent is closed,
// changes are made, and it reopens on the same Badger: it resumes from
// its revision without a snapshot and converges.
func TestSyncInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, hs, c := inProcessManager(t)
	img := uploadImage(t, c, "deb", []byte(strings.Repeat("kernel ", 5000)))

	dirA, dirB := t.TempDir(), t.TempDir()
	joinB := siteJoinToken(t, store, "B")
	agA := startAgent(t, dirA, hs.URL, siteJoinToken(t, store, "A"), "bs-a", "A")
	agB := startAgent(t, dirB, hs.URL, joinB, "bs-b", "B")

	var targets []api.Target
	for i := range 12 {
		site := "A"
		if i%2 == 1 {
			site = "B"
		}
		tg, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("node-%02d", i), Site: site, Arch: "bios",
			MACs: []string{fmt.Sprintf("02:e2:00:00:00:%02x", i)}, Labels: map[string]string{"grp": fmt.Sprintf("g%d", i%3), "site": site}})
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, tg)
	}
	// Orders by selector, per site: grp=g0 at A, grp=g1 at B.
	if _, err := c.CreateOrders(ctx, api.OrderRequest{Selector: "grp=g0,site=A", Image: img.ID, All: true}); err != nil {
		t.Fatal(err)
	}
	obs, err := c.CreateOrders(ctx, api.OrderRequest{Selector: "grp=g1,site=B", Image: img.ID, Params: map[string]string{"disk": "sda"}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) == 0 {
		t.Fatal("no orders at B")
	}
	waitConverged(t, store, agA, "A")
	waitConverged(t, store, agB, "B")
	// The sync carries the installer's token (the user API strips it).
	_, ords, _, _, _ := agB.a.View()
	for _, o := range ords {
		if o.Token == "" {
			t.Errorf("order %s reached the boot server without its token", o.ID)
		}
	}

	// Updates: move a target with a live order from A to B, cancel an
	// order, delete a target.
	var moved api.Target
	for _, tg := range targets {
		if tg.Site == "A" && tg.Labels["grp"] == "g0" {
			moved = tg
			break
		}
	}
	siteB := "B"
	if _, err := c.UpdateTarget(ctx, moved.ID, api.TargetPatch{Site: &siteB}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CancelOrder(ctx, obs[0].ID); err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Labels["grp"] == "g2" && tg.Site == "A" {
			if err := c.DeleteTarget(ctx, tg.ID); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	waitConverged(t, store, agA, "A")
	waitConverged(t, store, agB, "B")
	if _, ords, _, _, _ := agB.a.View(); !hasTargetOrder(ords, moved.ID) {
		t.Errorf("the moved target's live order did not follow it to B")
	}

	// Restart: close B, change things, reopen on the same Badger.
	revBefore := agB.a.Revision()
	agB.close()
	for i := range 5 {
		if _, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("late-%d", i), Site: "B", Arch: "efi-x64",
			MACs: []string{fmt.Sprintf("02:e2:00:00:01:%02x", i)}, Labels: map[string]string{"grp": "late"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateOrders(ctx, api.OrderRequest{Selector: "grp=late", Image: img.ID, All: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RetryOrder(ctx, obs[0].ID); err != nil {
		t.Fatal(err)
	}
	agB2 := startAgent(t, dirB, hs.URL, joinB, "bs-b", "B") // the stored credential, not the used token
	if got := agB2.a.Revision(); got != revBefore {
		t.Errorf("reopened agent at revision %d, closed at %d", got, revBefore)
	}
	waitConverged(t, store, agB2, "B")
	waitConverged(t, store, agA, "A")
	if n := gathered(t, agB2.reg, "osim_agent_snapshot_total"); n != 0 {
		t.Errorf("the reopened agent took %v snapshot(s); it should have resumed from revision %d", n, revBefore)
	}
	if n := gathered(t, agB2.reg, "osim_agent_sync_requests_total", "result", "snapshot"); n != 0 {
		t.Errorf("the reopened agent was answered %v snapshot(s)", n)
	}
	if n := gathered(t, agB2.reg, "osim_agent_sync_requests_total", "result", "changes"); n == 0 {
		t.Errorf("the reopened agent applied no incremental changes")
	}
	if n := gathered(t, agA.reg, "osim_agent_snapshot_total"); n != 1 {
		t.Errorf("agent A took %v snapshots, want exactly the first one", n)
	}
}

func hasTargetOrder(orders []api.Order, target string) bool {
	for _, o := range orders {
		if o.Target == target {
			return true
		}
	}
	return false
}

// TestEventsAboutAMachineThatMovedAwayDoNotWedgeTheUpload: boot server A
// buffered an event about a machine whose target then moved to site B.
// The manager refuses it (403 foreign_site); A drops exactly that event
// and its own site's events behind it still arrive. Before, A resent the
// same refused batch forever and nothing of its site reached the manager.
func TestEventsAboutAMachineThatMovedAwayDoNotWedgeTheUpload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, hs, c := inProcessManager(t)
	img := uploadImage(t, c, "deb", []byte(strings.Repeat("kernel ", 100)))
	var tgs []api.Target
	for i := range 2 {
		tgs = append(tgs, must(c.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("mv-%d", i), Site: "A", Arch: "bios",
			MACs: []string{fmt.Sprintf("02:e3:00:00:00:%02x", i)}}))(t))
	}
	ords := must(c.CreateOrders(ctx, api.OrderRequest{Selector: "", Target: tgs[0].ID, Image: img.ID}))(t)
	agA := startAgent(t, t.TempDir(), hs.URL, siteJoinToken(t, store, "A"), "bs-a", "A")
	waitConverged(t, store, agA, "A")
	waitFor(t, 20*time.Second, "A's own events to drain", func() (bool, string) {
		n := gathered(t, agA.reg, "osim_agent_events_pending")
		return n == 0, fmt.Sprintf("%v pending", n)
	})

	siteB := "B"
	must(c.UpdateTarget(ctx, tgs[0].ID, api.TargetPatch{Site: &siteB}))(t)
	// What A recorded about the machine before it moved, then its own.
	for _, e := range []api.Event{
		{Type: api.EventInstallStatus, Order: ords[0].ID, Phase: "done"},
		{Type: api.EventInventory, MAC: tgs[0].MACs[0], Data: map[string]string{"cpu": "moved"}},
		{Type: api.EventInventory, MAC: tgs[1].MACs[0], Data: map[string]string{"cpu": "mine"}},
	} {
		if err := agA.a.Emit(e); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "A's buffer to drain past the refused events", func() (bool, string) {
		n := gathered(t, agA.reg, "osim_agent_events_pending")
		return n == 0, fmt.Sprintf("%v pending, %v refused", n, gathered(t, agA.reg, "osim_agent_events_refused_total"))
	})
	// At least the two emitted here; A may have recorded more about the
	// moved machine (staging its order) before its sync saw the move.
	if n := gathered(t, agA.reg, "osim_agent_events_refused_total"); n < 2 {
		t.Errorf("events_refused_total %v, want at least the 2 about the moved machine", n)
	}
	if tg := must(c.GetTarget(ctx, tgs[1].ID))(t); tg.Facts["cpu"] != "mine" {
		t.Errorf("A's own target's inventory did not arrive: %v", tg.Facts)
	}
	if tg := must(c.GetTarget(ctx, tgs[0].ID))(t); tg.Facts["cpu"] == "moved" {
		t.Errorf("the moved target took A's facts: %v", tg.Facts)
	}
	if o := must(c.GetOrder(ctx, ords[0].ID))(t); o.State == api.OrderDone {
		t.Errorf("A marked the moved machine's order done")
	}
}

// must returns v or fails the test with err.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
