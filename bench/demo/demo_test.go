// Package demo holds `make run` (run.sh). The test runs the demo end to end,
// as processes: a manager, a boot server with its agent, simulated targets.
package demo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"osim/internal/testlab"
)

// TestMakeRunDemoBringsEveryTargetToDone runs bench/demo/run.sh with six
// targets and OSIM_DEMO_EXIT=1: every order must reach done.
func TestMakeRunDemoBringsEveryTargetToDone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary and runs the whole demo")
	}
	testlab.RequireRoot(t, "the demo's network namespaces")
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "make", "-C", repo, "build")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repo, "bench/demo/run.sh"))
	cmd.Env = append(os.Environ(), "OSIM_DEMO_TARGETS=6", "OSIM_DEMO_EXIT=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err = cmd.Run()
	t.Logf("demo (%v):\n%s", time.Since(t0).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("demo failed: %v", err)
	}
	for _, want := range []string{"disk image the installers stream", "mass reimage: 6 orders created", "all 6 targets done"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}
