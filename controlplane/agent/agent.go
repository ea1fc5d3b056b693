// Package agent is the boot server's side of the control plane: it
// registers with the manager, keeps the site's part of the MDB in the
// process's Badger (long-poll sync, snapshots), stages image blobs,
// buffers events upward, and answers the dataplane's seams (dhcp.Backend,
// httpboot.Scripts/Files/Tokens/StatusSink, tftp.Resolver) from its local
// copy only, so PXE keeps working while the manager is away.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/api"
	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
	"osim/dataplane/tftp"
)

// Config wires an Agent.
type Config struct {
	// DB is the process's one Badger; the agent owns agent/ and evq/.
	DB *badger.DB
	// BlobDir holds staged blobs (sha256/<sha>) and downloads in progress
	// (partial/<sha>).
	BlobDir string
	// Client talks to the manager; the agent sets its Token (the join
	// token until registered, then the boot server credential).
	Client    *api.Client
	JoinToken string
	Name      string
	Site      string
	Addresses []string
	Subnets   []string
	Version   string
	// DefaultBootFiles are the NBPs (TFTP paths in the local root) for
	// orders without a boot image, by canonical arch.
	DefaultBootFiles map[dhcp.Arch]string
	// Unknown is what unknown MACs get; 0 answers dhcp.ErrUnknownMAC.
	Unknown dhcp.Action
	// Fallback serves TFTP names that are not staged image files.
	Fallback tftp.Resolver
	// FallbackFiles serves HTTP names that are not staged image files.
	FallbackFiles httpboot.Files
	Clock         func() time.Time
	Logger        *slog.Logger
	Registry      prometheus.Registerer
	// SyncWait is the long-poll wait (default 25s); SyncLimit the changes
	// asked per request (0: the manager's default).
	SyncWait  time.Duration
	SyncLimit int
	// HeartbeatInterval defaults to 10s.
	HeartbeatInterval time.Duration
	// UploadBatch is the most events per upload (default 500).
	UploadBatch int
	// BackoffMin and BackoffMax bound the jittered exponential backoff
	// (1s, 30s); Rand returns [0,1) for the jitter (math/rand/v2 default).
	BackoffMin, BackoffMax time.Duration
	Rand                   func() float64
	// StageRetries is how many times a blob download is tried in one
	// staging pass before the order's stage_failed event (default 3).
	StageRetries int
	// Space, if set, is asked before the agent writes to the data dir.
	Space SpaceGuard
}

// Agent is a boot server's control-plane agent.
type Agent struct {
	cfg Config
	db  *badger.DB
	log *slog.Logger
	now func() time.Time
	m   *agentMetrics

	mu       sync.RWMutex
	v        *view
	gen      uint64
	rev      uint64
	macKey   string // the sorted live MAC set, for PolicyChanged
	liveMACs []net.HardwareAddr
	policyCh chan struct{}

	id        atomic.Value // boot server id (string)
	emitMu    sync.Mutex
	evWake    chan struct{}
	stageWake chan struct{}
	viewSeq   atomic.Uint64 // bumps on every view change, for blob GC

	syncLimit int // reduced after a sync answer too large for one txn; sync goroutine only

	seen coalescer // events from unauthenticated traffic, once per seenEvery
}

type credential struct {
	ID    string `json:"id"`
	Token string `json:"token"`
	Name  string `json:"name"`
	Site  string `json:"site"`
}

// New opens the agent's part of the store: it removes a half-written
// snapshot generation left by a crash, loads the current view and, if the
// boot server registered before, its credential.
func New(cfg Config) (*Agent, error) {
	if cfg.DB == nil || cfg.Client == nil || cfg.BlobDir == "" {
		return nil, errors.New("agent: DB, Client and BlobDir are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SyncWait == 0 {
		cfg.SyncWait = 25 * time.Second
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.UploadBatch <= 0 {
		cfg.UploadBatch = 500
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(30*time.Second, cfg.BackoffMin)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.StageRetries <= 0 {
		cfg.StageRetries = 3
	}
	for _, d := range []string{"sha256", "partial"} {
		if err := os.MkdirAll(filepath.Join(cfg.BlobDir, d), 0o755); err != nil {
			return nil, fmt.Errorf("agent: blob dir: %w", err)
		}
	}
	a := &Agent{cfg: cfg, db: cfg.DB, log: cfg.Logger, now: cfg.Clock,
		policyCh: make(chan struct{}, 1), evWake: make(chan struct{}, 1), stageWake: make(chan struct{}, 1),
		seen: coalescer{every: seenEvery, max: maxCoalesce}}
	a.id.Store("")
	var cred credential
	var found bool
	err := a.db.View(func(txn *badger.Txn) error {
		var err error
		if a.gen, err = getU64(txn, keyGen); err != nil {
			return err
		}
		if a.rev, err = getU64(txn, keyRev); err != nil {
			return err
		}
		found, err = getJSON(txn, keyCred, &cred)
		return err
	})
	if err != nil {
		return nil, err
	}
	cur := genPrefix(a.gen)
	n, err := deleteKeys(a.db, prefixGens, func(k []byte) bool { return bytes.HasPrefix(k, cur) })
	if err != nil {
		return nil, err
	}
	if n > 0 {
		a.log.Info("agent: removed an unfinished snapshot", "keys", n)
	}
	if a.v, err = loadView(a.db, a.gen, false); err != nil {
		return nil, err
	}
	if found {
		a.cfg.Client.Token = cred.Token
		a.id.Store(cred.ID)
	}
	pending, err := a.countPending()
	if err != nil {
		return nil, err
	}
	if a.m, err = newMetrics(cfg.Registry); err != nil {
		return nil, err
	}
	a.m.addPending(int64(pending))
	a.m.syncedRevision.Set(float64(a.rev))
	a.m.ordersLive.Set(float64(len(a.v.orders)))
	a.macKey, a.liveMACs = liveMACsOf(a.v)
	return a, nil
}

// ID is the boot server id the manager gave at registration ("" before).
func (a *Agent) ID() string { return a.id.Load().(string) }

// Revision is the synced revision N.
func (a *Agent) Revision() uint64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.rev
}

// View returns the persisted view (sorted by id) and its revision, read
// from Badger, for comparison with the manager's.
func (a *Agent) View() (targets []api.Target, orders []api.Order, images []api.Image, rev uint64, err error) {
	return a.readView()
}

// Run registers (once; later starts reuse the stored credential), then
// heartbeats, syncs, stages and uploads events until ctx ends. It returns
// nil when ctx ends, an error when the manager refuses the join token
// (401, 403: only a new token helps). A name taken by another boot server
// (409) is not an error: registration is retried with backoff, since the
// operator may delete the stale boot server; meanwhile the dataplane
// keeps answering from the local copy.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.register(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){a.syncLoop, a.heartbeatLoop, a.stageLoop, a.uploadLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// register trades the join token for a credential, once: the credential
// is stored before it is used, and later starts reuse it.
func (a *Agent) register(ctx context.Context) error {
	if a.ID() != "" {
		return nil
	}
	if a.cfg.JoinToken == "" {
		return errors.New("agent: not registered and no join token")
	}
	bo := a.newBackoff()
	for {
		a.cfg.Client.Token = a.cfg.JoinToken
		resp, err := a.cfg.Client.Register(ctx, api.RegisterRequest{Name: a.cfg.Name, Site: a.cfg.Site,
			Addresses: a.cfg.Addresses, Subnets: a.cfg.Subnets, Version: a.cfg.Version, BootArches: a.bootArches()})
		if err == nil {
			a.m.reachable.Set(1)
			cred := credential{ID: resp.BootServer.ID, Token: resp.Token, Name: a.cfg.Name, Site: a.cfg.Site}
			if err := a.db.Update(func(txn *badger.Txn) error { return setJSON(txn, keyCred, cred) }); err != nil {
				return fmt.Errorf("agent: storing the credential of boot server %s: %w", cred.ID, err)
			}
			a.cfg.Client.Token = cred.Token
			a.id.Store(cred.ID)
			a.log.Info("agent: registered", "id", cred.ID, "name", a.cfg.Name, "site", a.cfg.Site)
			return nil
		}
		var ae *api.Error
		switch {
		case errors.As(err, &ae) && ae.Code == http.StatusConflict:
			a.m.reachable.Set(1)
			a.m.regRefused.WithLabelValues(strconv.Itoa(ae.Code)).Inc()
			a.log.Warn("agent: the manager refuses the name: serving from the local copy and retrying",
				"name", a.cfg.Name, "site", a.cfg.Site, "err", err)
		case errors.As(err, &ae) && ae.Code >= 400 && ae.Code < 500 && ae.Code != http.StatusTooManyRequests:
			a.m.regRefused.WithLabelValues(strconv.Itoa(ae.Code)).Inc()
			return fmt.Errorf("agent: register %q at site %q: %w", a.cfg.Name, a.cfg.Site, err)
		default:
			a.m.reachable.Set(0)
			a.log.Warn("agent: register failed, retrying", "err", err)
		}
		if !sleep(ctx, bo.next()) {
			return ctx.Err()
		}
	}
}

func (a *Agent) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		_, err := a.cfg.Client.Heartbeat(ctx, api.Heartbeat{SyncedRevision: a.Revision(), Version: a.cfg.Version,
			PendingEvents: int(a.m.pendingValue()), BootArches: a.bootArches()})
		if err != nil && ctx.Err() == nil {
			a.m.reachable.Set(0)
			a.log.Debug("agent: heartbeat failed", "err", err)
		} else if err == nil {
			a.m.reachable.Set(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// bootArches names the arches of DefaultBootFiles as the manager knows
// them (api.Arches), sorted: the manager warns about orders for targets
// of other arches when their boot image has no NBP either.
func (a *Agent) bootArches() []string {
	var out []string
	for arch := range a.cfg.DefaultBootFiles {
		if n := arch.Canonical().String(); api.ValidArch(n) && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// backoff is jittered exponential: each wait is drawn from [d/2, d), d
// doubling from BackoffMin up to BackoffMax.
type backoff struct {
	min, max, cur time.Duration
	rand          func() float64
}

func (a *Agent) newBackoff() *backoff {
	return &backoff{min: a.cfg.BackoffMin, max: a.cfg.BackoffMax, rand: a.cfg.Rand}
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur/2 + time.Duration(b.rand()*float64(b.cur/2))
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
