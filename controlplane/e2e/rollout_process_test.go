package e2e

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"osim/controlplane/api"
)

// TestProcessManagerKilledMidRollout: a rollout of three waves runs in a
// real osim-manager; the manager is SIGKILLed while wave 2 runs and
// restarted on the same data dir; the rollout goes on from the MDB: wave
// 2 is watched to its end (its orders cancelled here, as if installs had
// ended) and wave 3 starts, with nothing made twice.
func TestProcessManagerKilledMidRollout(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startManager(t, t.TempDir())
	img := uploadImage(t, m.admin, "deb", bytes.Repeat([]byte("vmlinuz "), 1000))
	for i := range 6 {
		if _, err := m.admin.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("w%d", i), Site: "A",
			MACs: []string{fmt.Sprintf("02:0b:00:00:00:%02x", i)}, Labels: map[string]string{"role": "web"}}); err != nil {
			t.Fatal(err)
		}
	}
	var ro api.Rollout
	if err := m.admin.Do(ctx, "POST", "/rollouts", nil, api.RolloutRequest{
		Orders: api.OrderRequest{Selector: "role=web", Image: img.ID, All: true},
		Policy: api.RolloutPolicy{WaveSize: 2, Start: "manual"}}, &ro); err != nil {
		t.Fatal(err)
	}
	get := func() api.Rollout {
		t.Helper()
		var r api.Rollout
		if err := m.admin.Do(ctx, "GET", "/rollouts/"+ro.ID, nil, nil, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// endWave cancels the running wave's orders: as the installs ending
	// would, it lets the engine end the wave.
	endWave := func(i int) {
		t.Helper()
		r := get()
		var ol api.OrderList
		if err := m.admin.Do(ctx, "GET", "/orders", map[string][]string{"batch": {r.Waves[i].Batch}}, nil, &ol); err != nil || len(ol.Orders) != 2 {
			t.Fatalf("wave %d orders: %v %+v", i+1, err, ol)
		}
		for _, o := range ol.Orders {
			if _, err := m.admin.CancelOrder(ctx, o.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	waveState := func(i int, want string) {
		t.Helper()
		waitFor(t, 30*time.Second, fmt.Sprintf("wave %d %s", i+1, want), func() (bool, string) {
			r := get()
			return r.Waves[i].State == want, fmt.Sprintf("%+v", r.Waves)
		})
	}
	waveState(0, api.WaveRunning)
	endWave(0)
	waveState(1, api.WaveRunning)
	m.kill()
	m.restart()
	if r := get(); r.Waves[1].State != api.WaveRunning || r.Waves[2].State != api.WaveWaiting {
		t.Fatalf("after the restart: %+v", r.Waves)
	}
	endWave(1)
	waveState(2, api.WaveRunning)
	endWave(2)
	waitFor(t, 30*time.Second, "the rollout done", func() (bool, string) {
		r := get()
		return r.State == api.RolloutDone, r.State
	})
	var all api.OrderList
	if err := m.admin.Do(ctx, "GET", "/orders", nil, nil, &all); err != nil || len(all.Orders) != 6 {
		t.Fatalf("orders in all: %d (%v), want 6: nothing made twice", len(all.Orders), err)
	}
	m.stop()
}
