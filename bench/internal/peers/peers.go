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
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"osim/bench/internal/lab"
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
		return nil, fmt.Errorf("peers: %s not answering: %w; log %s: %s", p.Name, err, r.Log, r.Tail())
	}
	return r, nil
}

// Running is a started peer: its process, and where to reach it.
type Running struct {
	*lab.Proc
	Addr netip.AddrPort // where RRQs go
	// Listen opens a client socket that can reach Addr.
	Listen tftpclient.ListenFunc
	// Metrics is the /metrics URL of osim-bootd, empty for the others.
	Metrics string

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
			return fmt.Errorf("exited: %v", r.Err())
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
		lab.Sleep(ctx, 100*time.Millisecond)
	}
}

// Stop ends the peer's process group (SIGTERM, then SIGKILL after 3 s),
// then runs the peer's cleanups (e.g. deleting its namespace). Calls after
// the first do nothing.
func (r *Running) Stop() error {
	r.stopOnce.Do(func() {
		r.stopErr = r.Proc.Stop()
		r.state.Remove(r.PID)
		for i := len(r.cleanup) - 1; i >= 0; i-- {
			r.cleanup[i]()
		}
	})
	return r.stopErr
}

// launch starts argv (in namespace ns, "" here) in its own process group,
// in a cgroup that meters its CPU, with output to a log file.
func launch(name string, argv []string, ns string, env Env, addr netip.AddrPort) (*Running, error) {
	p, err := lab.Start(lab.Spec{Name: name, Argv: argv, Netns: ns, Log: filepath.Join(env.Work, name+".log"),
		Grace: 3 * time.Second, Meter: true})
	if err != nil {
		return nil, err
	}
	env.State.Add(p.PID, p.Args)
	return &Running{Proc: p, Addr: addr, Listen: tftpclient.Loopback, state: env.State}, nil
}

func loopback(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
}

// ErrMissing is returned when a peer's binary is not there.
var ErrMissing = errors.New("peers: binary missing")

func need(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%w: %s", ErrMissing, path)
	}
	return nil
}
