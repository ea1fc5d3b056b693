package console

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
)

// The target page shows the iPXE script the boot server would answer
// with: the installer's kernel and command line for a staged order, with
// the order's token masked; local boot without an order.
func TestTheTargetPageShowsItsNextBootScriptWithTheTokenMasked(t *testing.T) {
	e := newEnv(t)
	ts := seedTargets(t, e, 2)
	img := seedImage(t, e)
	ctx := t.Context()
	b := e.browser()
	b.signIn(api.RoleViewer)
	if a := b.get("/ui/targets/" + ts[1].ID); !strings.Contains(a.body, "no live order") || !strings.Contains(a.body, "exit") {
		t.Errorf("target without an order: want the local boot script:\n%s", a.body)
	}
	l, err := e.admin.PlaceOrders(ctx, api.OrderRequest{Targets: []string{ts[0].ID}, Image: img.ID})
	if err != nil {
		t.Fatal(err)
	}
	o := l.Orders[0]
	if a := b.get("/ui/targets/" + ts[0].ID); !strings.Contains(a.body, "is pending: the boot server does not answer") {
		t.Errorf("pending order: want why there is no script")
	}
	if _, err := e.store.Transition(ctx, o.ID, api.OrderStaged, "test"); err != nil {
		t.Fatal(err)
	}
	full, _ := e.store.GetOrder(ctx, o.ID)
	a := b.get("/ui/targets/" + ts[0].ID)
	page := html.UnescapeString(a.body)
	for _, want := range []string{"kernel " + bootBase + "/files/images/" + img.ID + "/vmlinuz", "initrd --name initrd.img",
		"console=ttyS0", "token=" + maskedToken, "# osim: order " + o.ID} {
		if !strings.Contains(page, want) {
			t.Errorf("the script lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(a.body, full.Token) {
		t.Error("the order's real token is on the page")
	}
}

// A target with a power spec gets power buttons (operators); a click
// queues a request the page then lists; a viewer's forged one is refused.
func TestPowerButtonsQueueARequestForTheBootServer(t *testing.T) {
	e := newEnv(t)
	tg, err := e.admin.CreateTarget(t.Context(), api.TargetSpec{Hostname: "vm-1", MACs: []string{"52:54:00:00:0b:01"}, Site: "s1",
		Power: &api.PowerSpec{Driver: "libvirt", Domain: "vm-1"}})
	if err != nil {
		t.Fatal(err)
	}
	op := e.browser()
	op.signIn(api.RoleOperator)
	if a := op.get("/ui/targets/" + tg.ID); !strings.Contains(a.body, `id="power-form"`) || !strings.Contains(a.body, "libvirt") {
		t.Fatalf("no power form for a target with a power spec")
	}
	a := op.post("/ui/targets/"+tg.ID+"/power", url.Values{"csrf": {op.csrf()}, "action": {"cycle"}, "network_boot": {"on"}}, nil)
	if a.code != http.StatusSeeOther {
		t.Fatalf("power cycle: %d %s", a.code, a.body)
	}
	page := op.get("/ui/targets/" + tg.ID).body
	if !strings.Contains(page, "power cycle queued") || !strings.Contains(page, `id="power-requests"`) || !strings.Contains(page, "(network boot)") {
		t.Errorf("the target page does not show the queued request:\n%s", page)
	}
	viewer := e.browser()
	viewer.signIn(api.RoleViewer)
	if strings.Contains(viewer.get("/ui/targets/"+tg.ID).body, `id="power-form"`) {
		t.Error("a viewer sees the power form")
	}
	if a := viewer.post("/ui/targets/"+tg.ID+"/power", url.Values{"csrf": {viewer.csrf()}, "action": {"off"}}, nil); a.code != http.StatusForbidden {
		t.Errorf("viewer power off: %d", a.code)
	}
}

// The reimage form's "in waves" starts a rollout; its page shows the
// waves and pauses and aborts it.
func TestReimageInWavesStartsARolloutThePageDrives(t *testing.T) {
	e := newEnv(t)
	ts := seedTargets(t, e, 4)
	img := seedImage(t, e)
	op := e.browser()
	op.signIn(api.RoleOperator)
	csrf := op.csrf()
	ids := []string{}
	for _, tg := range ts {
		ids = append(ids, tg.ID)
	}
	a := op.post("/ui/reimage", url.Values{"csrf": {csrf}, "targets": {strings.Join(ids, ",")}, "image": {img.ID}, "confirm": {"yes"},
		"waves": {"on"}, "wave_size": {"2"}, "failure_budget": {"1"}, "manual": {"on"}, "max_per_site": {"1"}, "window": {"00:00-23:59/UTC"}}, nil)
	if a.code != http.StatusSeeOther || !strings.HasPrefix(a.header.Get("Location"), "/ui/rollouts/ro-") {
		t.Fatalf("rollout: %d %s %s", a.code, a.header.Get("Location"), a.body)
	}
	page := op.get(a.header.Get("Location")).body
	if !strings.Contains(page, "rollout of 2 waves started") || !strings.Contains(page, `id="waves"`) || !strings.Contains(page, "stop after 1 failures") ||
		!strings.Contains(page, "at most 1 in flight per site, only 00:00-23:59 UTC") {
		t.Fatalf("rollout page:\n%s", page)
	}
	// Inside the window (the manager runs on real time: all day but the
	// last minute) the wave has started, one of its two in flight (the
	// site's cap), the other waiting: the page says so.
	if time.Now().UTC().Format("15:04") != "23:59" && (!strings.Contains(page, `id="admission"`) || !strings.Contains(page, "Holding: waiting for room in flight: site") ||
		!regexp.MustCompile(`<td class="num">1</td><td class="num">0</td><td class="num">1</td><td class="num">1</td><td>site</td>`).MatchString(page)) {
		t.Fatalf("rollout page without its admission:\n%s", page)
	}
	if a := op.post("/ui/reimage", url.Values{"csrf": {csrf}, "targets": {ids[0]}, "image": {img.ID}, "confirm": {"yes"},
		"waves": {"on"}, "window": {"22:00"}}, nil); a.code != http.StatusUnprocessableEntity || !strings.Contains(a.body, "window: ") {
		t.Errorf("a window without an end: %d", a.code)
	}
	id := strings.TrimPrefix(a.header.Get("Location"), "/ui/rollouts/")
	if a := op.post("/ui/rollouts/"+id+"/pause", url.Values{"csrf": {csrf}}, nil); a.code != http.StatusSeeOther {
		t.Fatalf("pause: %d", a.code)
	}
	if a := op.post("/ui/rollouts/"+id+"/abort", url.Values{"csrf": {csrf}, "cancel_running": {"on"}}, nil); a.code != http.StatusSeeOther {
		t.Fatalf("abort: %d", a.code)
	}
	if page := op.get("/ui/rollouts").body; !strings.Contains(page, id) || !strings.Contains(page, "aborted") {
		t.Fatalf("rollouts list:\n%s", page)
	}
	if a := op.post("/ui/reimage", url.Values{"csrf": {csrf}, "targets": {ids[0]}, "image": {img.ID}, "confirm": {"yes"},
		"waves": {"on"}, "wave_size": {"x"}}, nil); a.code != http.StatusUnprocessableEntity || !strings.Contains(a.body, "wave size") {
		t.Errorf("a bad wave size: %d", a.code)
	}
}
