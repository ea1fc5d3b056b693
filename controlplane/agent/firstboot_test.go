package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/dataplane/httpboot"
)

// TestFirstBootTokensOutliveTheOrderForTheReportWindow: a done order
// leaves the local view, but its token takes first-boot reports for
// FirstBootWindow; a failed order's answers 410, an unknown one 404.
func TestFirstBootTokensOutliveTheOrderForTheReportWindow(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.diskWorld()
	e.sync()
	ctx := context.Background()
	if tok, err := e.a.FirstBootToken(ctx, "o-disk"); err != nil || tok != "tok-o-disk" {
		t.Fatalf("live order: %q, %v", tok, err)
	}
	o := order("o-disk", "t-disk", "52:54:00:00:00:0a", api.OrderDone, "img-disk", "img-inst")
	e.fm.putOrder(o)
	f := order("o-failed", "t-disk", "52:54:00:00:00:0a", api.OrderFailed, "img-disk", "img-inst")
	e.fm.putOrder(f)
	e.sync()
	if tok, err := e.a.FirstBootToken(ctx, "o-disk"); err != nil || tok != "tok-o-disk" {
		t.Fatalf("done order within the window: %q, %v", tok, err)
	}
	if _, err := e.a.FirstBootToken(ctx, "o-failed"); !errors.Is(err, httpboot.ErrReportWindowClosed) {
		t.Errorf("failed order: %v, want window closed", err)
	}
	if _, err := e.a.FirstBootToken(ctx, "o-none"); !errors.Is(err, httpboot.ErrUnknownOrder) {
		t.Errorf("unknown order: %v, want unknown", err)
	}
	if err := e.a.FirstBootReport(ctx, httpboot.FirstBootReport{Order: "o-disk", Procedure: "motd", ExitCode: 2,
		OutputTail: `oops\n`, Client: "10.0.0.9", Time: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	evs := e.localEvents(api.EventFirstBoot)
	if len(evs) != 1 || evs[0].Order != "o-disk" || evs[0].Target != "t-disk" || evs[0].Data["procedure"] != "motd" ||
		evs[0].Data["exit_code"] != "2" || evs[0].Data["output_tail"] != `oops\n` {
		t.Errorf("events = %+v", evs)
	}
	e.clock.Step(FirstBootWindow + time.Minute)
	if _, err := e.a.FirstBootToken(ctx, "o-disk"); !errors.Is(err, httpboot.ErrReportWindowClosed) {
		t.Errorf("after the window: %v, want window closed", err)
	}
}

func TestDoneTokensAreBoundedInCount(t *testing.T) {
	var d doneTokens
	now := time.Now()
	for i := range MaxFirstBootOrders + 10 {
		id := fmt.Sprintf("o-%d", i)
		d.remember(api.Change{Kind: api.ChangeOrder, ID: id, Order: &api.Order{ID: id, State: api.OrderDone, Token: "t"}}, now)
	}
	if _, ok, _ := d.get("o-0"); ok {
		t.Error("the oldest done order is still kept past the bound")
	}
	if _, ok, _ := d.get(fmt.Sprintf("o-%d", MaxFirstBootOrders+9)); !ok {
		t.Error("the newest done order is not kept")
	}
	if len(d.by) != MaxFirstBootOrders || len(d.order) != MaxFirstBootOrders {
		t.Errorf("%d kept, %d ids, want %d", len(d.by), len(d.order), MaxFirstBootOrders)
	}
}

// TestSecretsStayOffTheCommandLineButReachThePlan: a boot server renders
// the plan with the secret (the seed may need it) but never a command line.
func TestSecretsStayOffTheCommandLineButReachThePlan(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	_, inst := e.diskWorld()
	inst.Defaults = map[string]string{"root_password": "x", "quiet": "1"}
	e.fm.putImage(inst)
	o := order("o-disk", "t-disk", "52:54:00:00:00:0a", api.OrderStaged, "img-disk", "img-inst")
	o.Params = map[string]string{"root_password": "hunter2 with spaces"}
	o.SecretParams = []string{"root_password"}
	e.fm.putOrder(o)
	e.sync()
	ctx := context.Background()
	plan, err := e.a.Plan(ctx, "o-disk", "http://10.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	p := plan.(api.InstallPlan)
	if p.Params["root_password"] != "hunter2 with spaces" || !slices.Equal(p.SecretParams, []string{"root_password"}) {
		t.Errorf("plan params %v secrets %v", p.Params, p.SecretParams)
	}
	mac, _ := net.ParseMAC("52:54:00:00:00:0a")
	b, err := e.a.Script(ctx, mac)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Params["root_password"]; ok || b.Params["quiet"] != "1" {
		t.Errorf("the command line's parameters = %v: want the secret dropped, the rest kept", b.Params)
	}
}
