package agent

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The heartbeat carries the sums of the named metric families (counters
// over their labels, gauges) and the images whose every file is staged.
func TestTheHeartbeatSumsTheServiceMetricsAndListsStagedImages(t *testing.T) {
	reg := prometheus.NewRegistry()
	dhcp := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "osim_dhcp_packets_total"}, []string{"type"})
	dhcp.WithLabelValues("discover").Add(10)
	dhcp.WithLabelValues("request").Add(5)
	free := prometheus.NewGauge(prometheus.GaugeOpts{Name: "osim_disk_free_bytes"})
	free.Set(1 << 30)
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "osim_something_else_total"})
	other.Add(3)
	reg.MustRegister(dhcp, free, other)

	e := newEnv(t, func(c *Config) { c.Stats, c.EgressCeiling = reg, 1.25e9 })
	e.register()
	e.world()
	e.sync()
	if got := e.a.stagedImages(); len(got) != 0 {
		t.Fatalf("staged before staging: %v", got)
	}
	e.stagePass(map[string]string{})
	if got := e.a.stagedImages(); !slices.Contains(got, "img-os") {
		t.Errorf("staged images %v, want img-os among them", got)
	}
	st := e.a.stats()
	if st["osim_dhcp_packets_total"] != 15 || st["osim_disk_free_bytes"] != 1<<30 {
		t.Errorf("stats %v", st)
	}
	if _, ok := st["osim_something_else_total"]; ok {
		t.Errorf("a family not in api.BootServerStatNames reached the heartbeat: %v", st)
	}
	// The manager receives them in a heartbeat.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.a.heartbeatLoop(ctx)
	waitFor(t, "a heartbeat with stats and the egress ceiling", func() bool {
		e.fm.mu.Lock()
		defer e.fm.mu.Unlock()
		hb := e.fm.lastHeartbeat
		return hb.Stats["osim_dhcp_packets_total"] == 15 && slices.Contains(hb.StagedImages, "img-os") && hb.EgressCeiling == 1.25e9
	})
}
