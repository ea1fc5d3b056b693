package procedure

import (
	"context"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
)

func TestProcedureSeesItsEnvironment(t *testing.T) {
	env := Env("o1", "/dev/vda", "/mnt/root", map[string]string{"ssh.key": "ssh-ed25519 AAA", "x": "1"})
	res, err := Run(context.Background(), "/bin/sh", api.Procedure{Name: "env", Script: `echo "$OSIM_ORDER $OSIM_DISK $OSIM_ROOT $OSIM_PARAM_ssh_key $OSIM_PARAM_x"`}, env)
	if err != nil || res.ExitCode != 0 {
		t.Fatal(err, res)
	}
	if want := "o1 /dev/vda /mnt/root ssh-ed25519 AAA 1\n"; res.OutputTail != want {
		t.Errorf("output %q, want %q", res.OutputTail, want)
	}
}

func TestNonZeroExitIsAnErrorWithTheTailClean(t *testing.T) {
	script := `i=0; while [ $i -lt 500 ]; do echo "line $i"; i=$((i+1)); done; printf 'bell\007esc\033[31m\n' >&2; exit 3`
	res, err := Run(context.Background(), "/bin/sh", api.Procedure{Name: "fails", Script: script}, Env("o", "d", "", nil))
	if err == nil || !strings.Contains(err.Error(), `"fails" exited with 3`) || res.ExitCode != 3 {
		t.Fatalf("err %v, code %d", err, res.ExitCode)
	}
	if len(res.OutputTail) > TailBytes || !strings.HasSuffix(res.OutputTail, "bellesc[31m\n") || strings.Contains(res.OutputTail, "line 0\n") {
		t.Errorf("tail (%d bytes) ends %q", len(res.OutputTail), res.OutputTail[max(0, len(res.OutputTail)-40):])
	}
}

func TestAHangingProcedureIsKilledAtItsTimeout(t *testing.T) {
	old := Timeout
	Timeout = 200 * time.Millisecond
	t.Cleanup(func() { Timeout = old })
	start := time.Now()
	_, err := Run(t.Context(), "/bin/sh", api.Procedure{Name: "hang", When: api.WhenPre, Script: "echo waiting; sleep 30"}, nil)
	if err == nil || !strings.Contains(err.Error(), "killed after") {
		t.Fatalf("err = %v, want killed after the timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v to give up", d)
	}
}
