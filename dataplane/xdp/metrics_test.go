package xdp

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestAttachedSaysWhenXDPDidNotAttach checks osim_xdp_attached, what the
// XDP-detached alert reads: a Program asked to attach to an interface
// that is not there falls back to userspace and reports 0 for it; one
// that was never to attach (Userspace) reports nothing, so choosing the
// userspace classifier on purpose raises no alert.
func TestAttachedSaysWhenXDPDidNotAttach(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fell, err := Attach("osim-nosuch0", DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer fell.Close()
	if fell.Mode() != ModeUserspace || fell.Attached() {
		t.Fatalf("mode %s, attached %v; want userspace, not attached", fell.Mode(), fell.Attached())
	}
	chosen, err := Userspace(DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		p    *Program
		want string
	}{
		{"attach failed", fell, `
# HELP osim_xdp_attached 1 while the XDP program is attached to the interface it was asked for; 0 when it did not attach (the userspace classifier stands in) or was detached since.
# TYPE osim_xdp_attached gauge
osim_xdp_attached{interface="osim-nosuch0"} 0
`},
		{"userspace on purpose", chosen, ""},
	} {
		reg := prometheus.NewRegistry()
		reg.MustRegister(c.p)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(c.want), "osim_xdp_attached"); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if n, err := testutil.GatherAndCount(reg, "osim_xdp_mode"); err != nil || n != 1 {
			t.Errorf("%s: osim_xdp_mode: %d series, %v; want 1", c.name, n, err)
		}
	}
}
