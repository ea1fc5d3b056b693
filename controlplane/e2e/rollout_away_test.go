package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
)

// TestRolloutWaveWaitsForItsBootServer: a rollout's wave starts while no
// boot server of the site runs: its order waits to be staged and no power
// cycle is asked (a machine powered now would boot its disk); the wave is
// running, nothing is lost or failed. When the boot server comes back it
// stages the order, the manager asks the cycle, the boot server runs it,
// and its outcome (here a failure: the libvirt domain does not exist) is
// on the target and on the wave's order, which then fails: a machine that
// cannot be started does not hold the wave forever.
func TestRolloutWaveWaitsForItsBootServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	store, hs, c := inProcessManagerWith(t, true)
	img := uploadImage(t, c, "deb", []byte(strings.Repeat("vmlinuz ", 500)))
	tg := must(c.CreateTarget(ctx, api.TargetSpec{Hostname: "vm-away", MACs: []string{"02:0c:00:00:00:01"}, Site: "A",
		Power: &api.PowerSpec{Driver: "libvirt", Domain: "osim-no-such-domain"}}))(t)
	var ro api.Rollout
	if err := c.Do(ctx, "POST", "/rollouts", nil, api.RolloutRequest{Orders: api.OrderRequest{Targets: []string{tg.ID}, Image: img.ID},
		Policy: api.RolloutPolicy{WaveSize: 1}}, &ro); err != nil {
		t.Fatal(err)
	}
	if ro.Waves[0].State != api.WaveRunning {
		t.Fatalf("wave 1: %+v", ro.Waves[0])
	}
	var reqs []api.PowerRequest
	time.Sleep(500 * time.Millisecond)
	if err := c.Do(ctx, "GET", "/targets/"+tg.ID+"/power", nil, nil, &reqs); err != nil || len(reqs) != 0 {
		t.Fatalf("power requests before the order is staged: %v %+v", err, reqs)
	}
	// The site's boot server comes (back).
	startAgent(t, t.TempDir(), hs.URL, siteJoinToken(t, store, "A"), "bs-a", "A")
	waitFor(t, 60*time.Second, "the rollout to ask the power cycle of the staged order", func() (bool, string) {
		reqs = nil
		err := c.Do(ctx, "GET", "/targets/"+tg.ID+"/power", nil, nil, &reqs)
		return err == nil && len(reqs) == 1, fmt.Sprintf("%v %+v", err, reqs)
	})
	if reqs[0].Action != "cycle" || !reqs[0].NetworkBoot {
		t.Fatalf("the wave's power request: %+v", reqs[0])
	}
	var pr api.PowerRequest
	waitFor(t, 60*time.Second, "the boot server to run the power request", func() (bool, string) {
		pr = must(c.GetPowerRequest(ctx, reqs[0].ID))(t)
		return pr.State == api.PowerFailed || pr.State == api.PowerDone, fmt.Sprintf("%s %s", pr.State, pr.Message)
	})
	if pr.State != api.PowerFailed || pr.BootServer == "" || !strings.Contains(pr.Message, "osim-no-such-domain") {
		t.Fatalf("power request %+v: want failed by the boot server, naming the domain", pr)
	}
	orders := must(c.ListOrders(ctx, "", tg.ID, "", "", 10))(t)
	evs := must(c.ListEvents(ctx, 0, api.EventFilter{Order: orders.Orders[0].ID, Type: api.EventPower}))(t)
	if len(evs.Events) != 1 || evs.Events[0].Phase != api.PowerFailed {
		t.Fatalf("the power failure on the wave's order: %+v", evs.Events)
	}
	// The machine cannot be started: its order fails (the wave does not
	// wait for it forever) and the one-wave rollout ends.
	waitFor(t, 30*time.Second, "the rollout to end", func() (bool, string) {
		if err := c.Do(ctx, "GET", "/rollouts/"+ro.ID, nil, nil, &ro); err != nil {
			return false, err.Error()
		}
		return ro.State == api.RolloutDone, fmt.Sprintf("%s %+v", ro.State, ro.Waves)
	})
	o := must(c.GetOrder(ctx, orders.Orders[0].ID))(t)
	if o.State != api.OrderFailed || !strings.Contains(o.Message, "starting the machine failed") || !strings.Contains(o.Message, "osim-no-such-domain") {
		t.Fatalf("order %s %q: want failed, saying the machine could not be started", o.State, o.Message)
	}
	if ro.Waves[0].Failed != 1 || ro.Failures != 1 {
		t.Fatalf("wave %+v, failures %d", ro.Waves[0], ro.Failures)
	}
}
