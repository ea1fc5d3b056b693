// Package harness runs the TFTP benchmark matrix: it starts each peer
// server on loopback (dnsmasq in a namespace of its own), drives it with
// the bench's client, measures the server's process tree, stops it, and
// writes the tables and raw JSON.
package harness

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"osim/bench/internal/lab"
	"osim/bench/internal/peers"
	"osim/bench/internal/procstat"
	"osim/internal/testlab"
)

// Config is one invocation of the harness.
type Config struct {
	Quick   bool
	Servers []string // peer names; empty: all
	Cells   string   // comma-separated cell ID prefixes; empty: all
	Runs    int      // overrides the runs of single cells when > 0
	ConcMiB int      // overrides the file size of the concurrent cells when > 0
	Work    string   // scratch folder; empty: a fresh one under the temp dir
	Out     string   // folder for the JSON and the state file
	Bootd   string   // osim-bootd binary
	Atftpd  string   // atftpd binary
	Port    int      // first loopback port; peer i listens on Port+i, metrics on Port+100+i
	// NoPin leaves single-stream cells to the scheduler instead of putting
	// the server on CPU 0 and the clients on CPU 1.
	NoPin bool
}

// Report is everything one invocation measured.
type Report struct {
	Started  time.Time `json:"started"`
	Date     string    `json:"date"`
	Machine  string    `json:"machine"`
	Quick    bool      `json:"quick"`
	Peers    []string  `json:"peers"`
	Notes    []string  `json:"peer_notes"`
	Outcomes []Outcome `json:"outcomes"`
	Elapsed  float64   `json:"elapsed_s"`
}

// Run executes the matrix against the selected peers, in order.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := testlab.NeedRoot("network namespace for dnsmasq, peers that switch to nobody"); err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	m := NewMatrix(cfg.Quick, cfg.ConcMiB).Select(cfg.Cells)
	if cfg.Runs > 0 {
		for i := range m.Cells {
			if m.Cells[i].Kind == Single {
				m.Cells[i].Runs = cfg.Runs
			}
		}
	}
	if len(m.Cells) == 0 {
		return nil, fmt.Errorf("harness: -cells %q selects no cell", cfg.Cells)
	}
	selected, err := selectPeers(cfg.Servers)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("harness: out folder %s: %w", cfg.Out, err)
	}
	work, cleanup, err := workDir(cfg.Work)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	files, err := makeFiles(filepath.Join(work, "root"), m.Sizes)
	if err != nil {
		return nil, err
	}
	testlab.RemoveStale(ctx, peers.NetnsPrefix)
	state, err := peers.OpenState(filepath.Join(cfg.Out, "peers-running.json"))
	if err != nil {
		return nil, err
	}
	warnSystemServers()

	rep := &Report{Started: time.Now().UTC(), Date: time.Now().UTC().Format(time.DateOnly), Machine: machineNote() + ", " + loadNote(), Quick: cfg.Quick}
	base := peers.Env{
		Root: filepath.Join(work, "root"), Work: work, MaxClients: m.MaxClients(),
		Bootd: cfg.Bootd, Self: peers.SelfPath(), Atftpd: cfg.Atftpd, State: state,
	}
	for i, p := range selected {
		if ctx.Err() != nil {
			break
		}
		env := base
		env.Port, env.MetricsPort = cfg.Port+i, cfg.Port+100+i
		rep.Peers = append(rep.Peers, p.Name)
		rep.Notes = append(rep.Notes, p.Name+": "+p.Note)
		rep.Outcomes = append(rep.Outcomes, runPeer(ctx, p, env, m, files, !cfg.NoPin)...)
	}
	rep.Elapsed = time.Since(rep.Started).Seconds()
	return rep, ctx.Err()
}

func selectPeers(names []string) ([]peers.Peer, error) {
	all := peers.All()
	if len(names) == 0 {
		return all, nil
	}
	var out []peers.Peer
	for _, p := range all {
		if slices.Contains(names, p.Name) {
			out = append(out, p)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(all, func(p peers.Peer) bool { return p.Name == n }) {
			return nil, fmt.Errorf("harness: unknown server %q", n)
		}
	}
	return out, nil
}

// workDir makes the scratch folder: 0711 so that nobody (the peers' user)
// can reach root/ inside it but cannot create files in it.
func workDir(dir string) (string, func(), error) {
	keep := dir != ""
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("", "osim-tftpbench-")
	} else {
		err = os.MkdirAll(dir, 0o711)
	}
	if err != nil {
		return "", nil, fmt.Errorf("harness: work folder: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return "", nil, fmt.Errorf("harness: chmod work folder %s: %w", dir, err)
	}
	return dir, func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}, nil
}

// runPeer starts one peer, runs its cells, and stops it.
func runPeer(ctx context.Context, p peers.Peer, env peers.Env, m Matrix, files Files, pin bool) []Outcome {
	var cells []Cell
	for _, c := range m.Cells {
		if !p.CeilingOnly() || c.Ceiling {
			cells = append(cells, c)
		}
	}
	if len(cells) == 0 {
		return nil
	}
	skipAll := func(why string) []Outcome {
		var out []Outcome
		for _, c := range cells {
			out = append(out, Outcome{Server: p.Name, Cell: c.ID, Label: c.Label, Kind: c.Kind, Skipped: why})
		}
		return out
	}
	slog.Info("starting peer", "server", p.Name, "port", env.Port)
	r, base, err := startIdle(ctx, p, env)
	if err != nil {
		slog.Error("peer did not start", "server", p.Name, "err", err)
		return skipAll(err.Error())
	}
	defer func() {
		if err := r.Stop(); err != nil {
			slog.Warn("stopping peer", "server", p.Name, "err", err)
		}
	}()
	var out []Outcome
	for i, c := range cells {
		if ctx.Err() != nil {
			break
		}
		slog.Info("cell", "server", p.Name, "cell", c.ID, "label", c.Label)
		o := runCell(ctx, r, c, files[c.File], pin)
		slog.Info("cell done", "server", p.Name, "cell", c.ID, "mbps", fmt.Sprintf("%.1f", o.MBps), "failed", o.Failed, "notes", o.Notes)
		out = append(out, o)
		if i == len(cells)-1 || ctx.Err() != nil {
			break
		}
		// Cells must not inherit the previous one's leftovers: wait for the
		// server to be idle again, and restart it if it does not get there
		// (dnsmasq keeps serving queued RRQs of long-gone clients) or died.
		restart := ""
		if r.Exited() {
			restart = "server died during this cell (" + r.ExitReason() + "): restarted for the next cell"
		} else if left, idle := settle(ctx, r, base, m.SettleLimit); !idle {
			restart = fmt.Sprintf("still busy %.0fs after (%s): restarted for the next cell", m.SettleLimit.Seconds(), left)
		}
		if restart == "" {
			continue
		}
		out[len(out)-1].Notes = append(out[len(out)-1].Notes, restart)
		slog.Warn("restarting peer", "server", p.Name, "after", c.ID, "why", restart)
		r.Stop()
		nr, nbase, err := startIdle(ctx, p, env)
		if err != nil {
			// r stays the stopped peer, so the deferred Stop is a no-op.
			return append(out, skipAll("restart failed: " + err.Error())[i+1:]...)
		}
		r, base = nr, nbase
	}
	if len(out) > 0 && r.Exited() {
		last := &out[len(out)-1]
		last.Notes = append(last.Notes, "server died during this cell ("+r.ExitReason()+")")
	}
	return out
}

// startIdle starts a peer and takes its idle baseline.
func startIdle(ctx context.Context, p peers.Peer, env peers.Env) (*peers.Running, procstat.Load, error) {
	r, err := p.Start(ctx, env)
	if err != nil {
		return nil, procstat.Load{}, err
	}
	lab.Sleep(ctx, 300*time.Millisecond) // let the readiness probe's transfer end
	return r, procstat.Count(r.PID), nil
}

// settle waits until the server holds no more than its baseline.
func settle(ctx context.Context, r *peers.Running, base procstat.Load, limit time.Duration) (string, bool) {
	deadline := time.Now().Add(limit)
	for {
		s := snapshot(ctx, r, base)
		if s.idle() {
			return "", true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return s.String(), false
		}
		lab.Sleep(ctx, 250*time.Millisecond)
	}
}
