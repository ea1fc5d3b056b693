// Package agent is the boot server's side of the control plane: it
// registers with the manager, keeps the site's part of the MDB in the
// process's Badger (long-poll sync, snapshots), stages image blobs,
// buffers events upward, and answers the dataplane's seams (dhcp.Backend,
// httpboot.Scripts/Files/Tokens/StatusSink, tftp.Resolver) from its local
// copy only, so PXE keeps working while the manager is away.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	"osim/internal/badgerkv"
	"osim/internal/clock"
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
	// Clock runs the backoffs, the heartbeat, the staging retries and
	// the events' times; nil is the system clock.
	Clock    clock.Clock
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// PowerParallel bounds the power actions run at once (default
	// DefaultPowerParallel).
	PowerParallel int
	// Stats is where the heartbeat reads the boot server's service
	// counters (api.BootServerStatNames; the process's registry); nil:
	// the heartbeat carries none.
	Stats prometheus.Gatherer
	// SyncWait is the long-poll wait (default 25s); SyncLimit the changes
	// asked per request (0: the manager's default).
	SyncWait  time.Duration
	SyncLimit int
	// EgressCeiling is the bytes/s the boot server should deliver at
	// most, told to the manager in every heartbeat (0: not set).
	EgressCeiling float64
	// HeartbeatInterval is how often the agent heartbeats. Unset, it is
	// 10 s until the manager's answer names its interval
	// (manager_heartbeat_interval_seconds), which it then follows.
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
	// DiscoveryImage is the boot image (kind boot: the osim installer's
	// kernel and initrds) unknown MACs boot under Unknown discovery, in
	// osim.mode=discover; it is staged always. DiscoverThen is the
	// installer's osim.discover_then: poweroff (default) or wait.
	DiscoveryImage string
	DiscoverThen   string
	// BootLoop says when a target without a live order loops (bootloop.go).
	BootLoop BootLoopConfig
}

// Agent is a boot server's control-plane agent: it registers, heartbeats
// and syncs itself, and owns the parts that do the rest: the local view
// with the dataplane's seams (embedded, so *Agent is the dhcp.Backend,
// httpboot and tftp seams and the XDP policy source), the stager and the
// event queue.
type Agent struct {
	*localView
	cfg   Config
	db    *badger.DB
	log   *slog.Logger
	m     *agentMetrics
	space guard
	q     *eventQueue
	st    *stager

	id        atomic.Value // boot server id (string)
	syncLimit int          // reduced after a sync answer too large for one txn; sync goroutine only
	// followManager: no interval configured, so the heartbeat takes the
	// manager's.
	followManager bool
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
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SyncWait == 0 {
		cfg.SyncWait = 25 * time.Second
	}
	followManager := cfg.HeartbeatInterval == 0
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
	a := &Agent{cfg: cfg, db: cfg.DB, log: cfg.Logger.With("component", "agent"), space: guard{cfg.Space}, followManager: followManager}
	a.id.Store("")
	var cred credential
	var found bool
	err := a.db.View(func(txn *badger.Txn) (err error) {
		if found, err = badgerkv.GetJSON(txn, keyCred, &cred); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if a.localView, err = openLocalView(a.db, a.log); err != nil {
		return nil, err
	}
	if found {
		a.cfg.Client.Token = cred.Token
		a.id.Store(cred.ID)
	}
	if a.m, err = newMetrics(cfg.Registry); err != nil {
		return nil, err
	}
	blobs := blobDir(cfg.BlobDir)
	a.q = &eventQueue{db: a.db, client: cfg.Client, batch: cfg.UploadBatch, space: a.space, backoff: a.newBackoff,
		m: a.m, log: a.log, clock: cfg.Clock, wake: make(chan struct{}, 1)}
	l := a.localView
	l.cfg, l.blobs, l.q, l.m, l.clock = &a.cfg, blobs, a.q, a.m, cfg.Clock
	a.st = &stager{db: a.db, client: cfg.Client, retries: cfg.StageRetries, blobs: blobs, view: l, q: a.q,
		space: a.space, backoff: a.newBackoff, clock: cfg.Clock, m: a.m, log: a.log}
	pending, err := a.q.countPending()
	if err != nil {
		return nil, err
	}
	if l.disc, err = newDiscovery(&a.cfg); err != nil {
		return nil, err
	}
	a.m.addPending(int64(pending))
	a.m.syncedRevision.Set(float64(l.rev))
	a.m.ordersLive.Set(float64(len(l.v.orders)))
	return a, nil
}

// Emit buffers e for the manager (see eventQueue.Emit).
func (a *Agent) Emit(e api.Event) error { return a.q.Emit(e) }

// ID is the boot server id the manager gave at registration ("" before).
func (a *Agent) ID() string { return a.id.Load().(string) }

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
	for _, loop := range []func(context.Context){a.syncLoop, a.heartbeatLoop, a.st.run, a.q.run, a.powerLoop} {
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
			if err := a.db.Update(func(txn *badger.Txn) error { return badgerkv.SetJSON(txn, keyCred, cred) }); err != nil {
				return fmt.Errorf("agent: storing the credential of boot server %s: %w", cred.ID, err)
			}
			a.cfg.Client.Token = cred.Token
			a.id.Store(cred.ID)
			a.log.Info("registered", "id", cred.ID, "name", a.cfg.Name, "site", a.cfg.Site)
			return nil
		}
		var ae *api.Error
		switch {
		case errors.As(err, &ae) && ae.Code == http.StatusConflict:
			a.m.reachable.Set(1)
			a.m.regRefused.WithLabelValues(strconv.Itoa(ae.Code)).Inc()
			a.log.Warn("the manager refuses the name: serving from the local copy and retrying",
				"name", a.cfg.Name, "site", a.cfg.Site, "err", err)
		case errors.As(err, &ae) && ae.Code >= 400 && ae.Code < 500 && ae.Code != http.StatusTooManyRequests:
			a.m.regRefused.WithLabelValues(strconv.Itoa(ae.Code)).Inc()
			return fmt.Errorf("agent: register %q at site %q: %w", a.cfg.Name, a.cfg.Site, err)
		default:
			a.m.reachable.Set(0)
			a.log.Warn("register failed, retrying", "err", err)
		}
		if !bo.sleep(ctx) {
			return ctx.Err()
		}
	}
}

func (a *Agent) heartbeatLoop(ctx context.Context) {
	every := a.cfg.HeartbeatInterval
	t, tick := a.cfg.Clock.NewTicker(every)
	defer func() { t.Stop() }()
	for {
		bs, err := a.cfg.Client.Heartbeat(ctx, api.Heartbeat{SyncedRevision: a.Revision(), Version: a.cfg.Version,
			PendingEvents: int(a.m.pendingValue()), BootArches: a.bootArches(),
			Stats: a.stats(), StagedImages: a.stagedImages(), EgressCeiling: a.cfg.EgressCeiling,
			IntervalSeconds: every.Seconds()})
		if err != nil && ctx.Err() == nil {
			a.m.reachable.Set(0)
			a.log.Debug("heartbeat failed", "err", err)
		} else if err == nil {
			a.m.reachable.Set(1)
			// The manager expects another interval: follow it (1 s to
			// 1 h), unless one was configured here.
			if d := time.Duration(bs.ManagerHeartbeatInterval * float64(time.Second)); a.followManager && d != every &&
				d >= time.Second && d <= time.Hour {
				a.log.Info("heartbeat interval: the manager's", "interval", d, "was", every)
				t.Stop()
				every = d
				t, tick = a.cfg.Clock.NewTicker(every)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
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
// doubling from BackoffMin up to BackoffMax; sleep waits on clock.
type backoff struct {
	min, max, cur time.Duration
	rand          func() float64
	clock         clock.Clock
}

func (a *Agent) newBackoff() *backoff {
	return &backoff{min: a.cfg.BackoffMin, max: a.cfg.BackoffMax, rand: a.cfg.Rand, clock: a.cfg.Clock}
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

// sleep waits the next backoff or until ctx ends; false when ctx ended.
func (b *backoff) sleep(ctx context.Context) bool {
	t, fire := b.clock.NewTimer(b.next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-fire:
		return true
	}
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
