// Package peers starts and stops the TFTP servers the bench compares:
// osim-bootd, tftpd-hpa, atftpd, dnsmasq (in a namespace of its own, since
// it only serves TFTP on port 69) and the bare Go sender that marks the
// ceiling. Each runs in the foreground as a child of the bench, in its own
// process group, so stopping it also stops what it forked.
package peers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"osim/bench/internal/procstat"
	"osim/bench/internal/tftpclient"
)

// Env is what a peer is started with.
type Env struct {
	Root string // folder to serve, readable by nobody
	Work string // scratch folder for logs, writable by root only
	Port int    // loopback UDP port to listen on (dnsmasq: ignored, it has 69)
	// MetricsPort is where osim-bootd serves /metrics.
	MetricsPort int
	// MaxClients is the concurrency the peer must allow where it has a cap.
	MaxClients int
	// Bootd is the osim-bootd binary, Self this bench's binary, Atftpd the
	// unpacked atftpd.
	Bootd, Self, Atftpd string
	// State records the pids started, so a later run can end them if this
	// one is killed before it cleans up.
	State *State
}

// Peer is a server the bench knows how to start.
type Peer struct {
	Name string
	// Note says how the peer is run, for the results.
	Note  string
	start func(ctx context.Context, env Env) (*Running, error)
}

// CeilingOnly: the peer is a bare sender that runs the ceiling cells only.
func (p Peer) CeilingOnly() bool { return p.Name == Ceiling || p.Name == CeilingGSO }

// Start launches the peer and returns once it answers a read.
func (p Peer) Start(ctx context.Context, env Env) (*Running, error) {
	r, err := p.start(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("peers: start %s: %w", p.Name, err)
	}
	if err := r.awaitReady(ctx); err != nil {
		r.Stop()
		return nil, fmt.Errorf("peers: %s not answering: %w; log %s: %s", p.Name, err, r.Log, tail(r.Log))
	}
	return r, nil
}

// Running is a started peer.
type Running struct {
	Name string
	PID  int
	Addr netip.AddrPort // where RRQs go
	// Listen opens a client socket that can reach Addr.
	Listen tftpclient.ListenFunc
	// Metrics is the /metrics URL of osim-bootd, empty for the others.
	Metrics string
	Log     string

	cmd     *exec.Cmd
	cg      *procstat.Cgroup // nil where cgroup v2 is not usable
	exited  chan struct{}
	waitErr error
	state   *State
	cleanup []func()

	stopOnce sync.Once
	stopErr  error
}

// ProbeFile is the small file every root holds for readiness probes.
const ProbeFile = "probe.bin"

func (r *Running) awaitReady(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r.Exited() {
			return fmt.Errorf("exited: %v", r.waitErr)
		}
		c, err := r.Listen()
		if err != nil {
			return err
		}
		res := tftpclient.Get(ctx, c, tftpclient.Config{
			Server: r.Addr, File: ProbeFile, Timeout: 200 * time.Millisecond, Retries: 1,
		})
		c.Close()
		if res.Err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return res.Err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Exited reports whether the process has ended.
func (r *Running) Exited() bool {
	select {
	case <-r.exited:
		return true
	default:
		return false
	}
}

// ExitReason says how an ended peer ended, with its log's last lines.
func (r *Running) ExitReason() string {
	if !r.Exited() {
		return "running"
	}
	return fmt.Sprintf("%v; log: %s", r.waitErr, tail(r.Log))
}

// Stop ends the peer's process group: SIGTERM, then SIGKILL after 3 s.
// It then runs the peer's cleanups (e.g. deleting its namespace). Calls
// after the first do nothing.
func (r *Running) Stop() error {
	r.stopOnce.Do(func() { r.stopErr = r.stop() })
	return r.stopErr
}

func (r *Running) stop() error {
	var err error
	if !r.Exited() {
		syscall.Kill(-r.PID, syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(3 * time.Second):
			syscall.Kill(-r.PID, syscall.SIGKILL)
			<-r.exited
			err = fmt.Errorf("peers: %s (pid %d) ignored SIGTERM, killed", r.Name, r.PID)
		}
	}
	r.state.Remove(r.PID)
	if r.cg != nil {
		// Children that outlived the leader (tftpd-hpa transfers) are in
		// its cgroup; removing it kills them.
		if cerr := r.cg.Remove(); cerr != nil && err == nil {
			err = cerr
		}
	} else {
		// Without a cgroup, the leader's group; its id cannot have been
		// reused while members remain.
		syscall.Kill(-r.PID, syscall.SIGKILL)
	}
	for i := len(r.cleanup) - 1; i >= 0; i-- {
		r.cleanup[i]()
	}
	return err
}

// CPU is the CPU time of the peer and everything it started, so far.
func (r *Running) CPU() (time.Duration, error) {
	if r.cg != nil {
		return r.cg.CPU()
	}
	return procstat.CPU(r.PID)
}

// launch starts cmd in its own process group with output to a log file.
func launch(name string, cmd *exec.Cmd, env Env, addr netip.AddrPort) (*Running, error) {
	logPath := filepath.Join(env.Work, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("log for %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	// Pdeathsig covers a bench killed hard; peers that change user lose it
	// (the kernel clears it on credential changes), and the State file is
	// the fallback for them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cg, err := procstat.NewCgroup(name)
	if err != nil {
		slog.Warn("CPU measured from /proc instead of a cgroup: children not reaped are missed", "server", name, "err", err)
	} else {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cg.FD()
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		if cg != nil {
			cg.Remove()
		}
		return nil, fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	r := &Running{
		Name: name, PID: cmd.Process.Pid, Addr: addr, Listen: tftpclient.Loopback, Log: logPath,
		cmd: cmd, cg: cg, exited: make(chan struct{}), state: env.State,
	}
	env.State.Add(r.PID, cmd.Args)
	go func() {
		r.waitErr = cmd.Wait()
		lf.Close()
		close(r.exited)
	}()
	return r, nil
}

func loopback(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
}

// tail returns the last lines of a log, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// ErrMissing is returned when a peer's binary is not there.
var ErrMissing = errors.New("peers: binary missing")

func need(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%w: %s", ErrMissing, path)
	}
	return nil
}
