// Package procedure runs an image's pre and post procedures with /bin/sh
// -c and keeps what the report needs: the exit code and the last
// TailBytes of output, control characters stripped.
package procedure

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"osim/controlplane/api"
)

// TailBytes of combined output are kept.
const TailBytes = 2048

// Timeout bounds one procedure: a script that hangs (waiting on a
// network that is not there, a prompt) fails its step instead of
// holding the machine forever.
var Timeout = 30 * time.Minute

// Result is one run's outcome.
type Result struct {
	Name       string
	ExitCode   int // -1: did not start or was killed
	OutputTail string
}

// Env is the environment a procedure sees: PATH, OSIM_ORDER, OSIM_DISK,
// OSIM_ROOT (post only: the mounted installed root), and OSIM_PARAM_<name>
// per parameter (characters other than letters and digits become _).
func Env(order, disk, root string, params map[string]string) []string {
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "OSIM_ORDER=" + order, "OSIM_DISK=" + disk}
	if root != "" {
		env = append(env, "OSIM_ROOT="+root)
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		env = append(env, "OSIM_PARAM_"+envName(k)+"="+params[k])
	}
	return env
}

func envName(k string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, k)
}

// Run runs p.Script with shell -c. A non-zero exit is an error naming the
// procedure and its code; the Result is filled either way.
func Run(ctx context.Context, shell string, p api.Procedure, env []string) (Result, error) {
	tail := &tailBuffer{}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, shell, "-c", p.Script)
	// The script's children go with it: its own process group, killed whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Dir = env, tail, tail, "/"
	err := cmd.Run()
	res := Result{Name: p.Name, ExitCode: cmd.ProcessState.ExitCode(), OutputTail: tail.String()}
	if cmd.ProcessState == nil {
		res.ExitCode = -1
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return res, fmt.Errorf("procedure %q: killed after %v", p.Name, Timeout)
	case errors.As(err, &ee):
		return res, fmt.Errorf("procedure %q exited with %d", p.Name, res.ExitCode)
	default:
		return res, fmt.Errorf("procedure %q: %w", p.Name, err)
	}
}

// tailBuffer keeps the last TailBytes written.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*TailBytes {
		t.b = append(t.b[:0], t.b[len(t.b)-TailBytes:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b[max(0, len(t.b)-TailBytes):]
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r >= 0x20 && r != 0x7f && r != 0xfffd {
			return r
		}
		return -1
	}, strings.ToValidUTF8(string(b), ""))
}
