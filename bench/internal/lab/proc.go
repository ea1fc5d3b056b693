package lab

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"osim/bench/internal/procstat"
)

// Spec says how to start a process under measure.
type Spec struct {
	Name string   // for errors and the cgroup's name
	Argv []string // the command; Netns wraps it in `ip netns exec`
	Env  []string // added to this process's environment
	// Netns runs the command in that namespace (`ip netns exec` execs in
	// place, so the pid is the command's).
	Netns string
	Log   string // file for its stdout and stderr
	// Grace is how long Stop waits after SIGTERM before SIGKILL; 0: 10 s.
	Grace time.Duration
	// Meter starts it in a cgroup of its own, so CPU counts the children
	// it did not reap too (cgroup v2; /proc where that is not usable).
	Meter bool
}

// Proc is a started process, the leader of its own process group, killed
// with this process (Pdeathsig) should the bench die first.
type Proc struct {
	Name string
	PID  int
	Log  string
	Args []string // as started, with the namespace wrapper

	grace    time.Duration
	cg       *Cgroup // nil: not metered, or cgroup v2 not usable
	done     chan struct{}
	err      error
	stopOnce sync.Once
	stopErr  error
}

// Start starts s.
func Start(s Spec) (*Proc, error) {
	argv := s.Argv
	if s.Netns != "" {
		argv = append([]string{"ip", "netns", "exec", s.Netns}, argv...)
	}
	f, err := os.Create(s.Log)
	if err != nil {
		return nil, fmt.Errorf("lab: log of %s: %w", s.Name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(s.Env) > 0 {
		cmd.Env = append(os.Environ(), s.Env...)
	}
	// Pdeathsig covers a bench killed hard; a process that changes user
	// loses it (the kernel clears it on credential changes).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var cg *Cgroup
	if s.Meter {
		if cg, err = NewCgroup(s.Name); err != nil {
			slog.Warn("CPU measured from /proc instead of a cgroup: children not reaped are missed", "server", s.Name, "err", err)
		} else {
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cg.FD()
		}
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		if cg != nil {
			cg.Remove()
		}
		return nil, fmt.Errorf("lab: start %s: %s: %w", s.Name, strings.Join(argv, " "), err)
	}
	p := &Proc{Name: s.Name, PID: cmd.Process.Pid, Log: s.Log, Args: argv, grace: s.Grace, cg: cg, done: make(chan struct{})}
	if p.grace == 0 {
		p.grace = 10 * time.Second
	}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how it ended (Wait's error); nil while it runs.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Stop ends the process group: SIGTERM, then SIGKILL after the grace
// (an error says so), then whatever is left in its cgroup. It returns when
// the process has ended, so what it held (a lease store) is closed. Calls
// after the first do nothing.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

func (p *Proc) stop() error {
	var err error
	if !p.Exited() {
		syscall.Kill(-p.PID, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(p.grace):
			syscall.Kill(-p.PID, syscall.SIGKILL)
			<-p.done
			err = fmt.Errorf("lab: %s (pid %d) ignored SIGTERM, killed", p.Name, p.PID)
		}
	}
	if p.cg != nil {
		// Children that outlived the leader (tftpd-hpa's transfers) are in
		// its cgroup; removing it kills them.
		if cerr := p.cg.Remove(); cerr != nil && err == nil {
			err = cerr
		}
	} else {
		// Without a cgroup, the leader's group; its id cannot have been
		// reused while members remain.
		syscall.Kill(-p.PID, syscall.SIGKILL)
	}
	return err
}

// CPU is the CPU time of the process and what it started, so far: from
// its cgroup when metered, else from /proc (its live tree).
func (p *Proc) CPU() (time.Duration, error) {
	if p.cg != nil {
		return p.cg.CPU()
	}
	return procstat.CPU(p.PID)
}

// Tail is the end of the log (its last lines, joined by " | "), for errors.
func (p *Proc) Tail() string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// ExitReason says how an ended process ended, with its log's last lines.
func (p *Proc) ExitReason() string {
	if !p.Exited() {
		return "running"
	}
	return fmt.Sprintf("%v; log: %s", p.err, p.Tail())
}

// WaitLog waits until the log holds every one of want, the process ends,
// or timeout passes.
func (p *Proc) WaitLog(ctx context.Context, timeout time.Duration, want ...string) error {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.Log)
		missing := ""
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s exited (%v): %s", p.Name, p.err, p.Tail())
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: no %q in the log within %s: %s", p.Name, missing, timeout, p.Tail())
		}
		Sleep(ctx, 50*time.Millisecond)
	}
}
