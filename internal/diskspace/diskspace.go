// Package diskspace refuses writes into a data directory before its
// filesystem runs out. Badger writes its memtables and tables through
// mmapped files: a page that cannot be allocated is a SIGBUS that kills
// the process (and kills it again at every start), not an ENOSPC that a
// caller can handle. So writes are refused while the free space is below
// a reserve that covers what Badger may still write for the writes it has
// already taken (the rest of the current memtable, the flushes of the
// others, the compaction they trigger) and a blob chunk.
package diskspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"osim/internal/clock"
	"osim/metrics"
)

// ErrInsufficient is what every refusal wraps (HTTP 507).
var ErrInsufficient = errors.New("insufficient storage")

// Error says which data dir refused a write, and why.
type Error struct {
	Dir     string
	Free    int64 // bytes available on its filesystem
	Need    int64 // bytes the write itself asked for
	Reserve int64 // bytes kept free for what is already accepted
	Flush   int64 // bytes of Free set aside for the database's flush (the ballast was released)
}

func (e *Error) Error() string {
	need := ""
	if e.Need > 0 {
		need = fmt.Sprintf("%s for this write plus ", Bytes(e.Need))
	}
	flush := ""
	if e.Flush > 0 {
		flush = fmt.Sprintf(", and %s more for the database's own flush while the disk is this full", Bytes(e.Flush))
	}
	return fmt.Sprintf("data dir %s: %s free on its filesystem, needs %s%s kept free (reserve)%s: free space on its filesystem",
		e.Dir, Bytes(e.Free), need, Bytes(e.Reserve), flush)
}

func (e *Error) Unwrap() error { return ErrInsufficient }

// Bytes prints n in binary units ("17.5 MiB").
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// BadgerReserve is the space a Badger database with opts may still write
// after the last write it accepted: the rest of the current memtable's
// write-ahead log (an mmapped file of twice the memtable size), the
// level-0 table its flush writes, and a level-0 compaction, which writes
// its output before it deletes its input.
func BadgerReserve(opts badger.Options) int64 {
	return opts.MemTableSize * int64(2+1+opts.NumLevelZeroTables)
}

// OpenMin is the free space a Badger database with opts needs to open
// and close without a fault: the write-ahead logs it replays become
// memtables that are flushed to tables through mmapped files.
func OpenMin(opts badger.Options) int64 {
	return opts.MemTableSize + 4<<20
}

// BallastName is the file in the guarded dir that holds Options.Ballast
// bytes of the filesystem for the process's own use.
const BallastName = ".osim-ballast"

// Guard checks one directory's filesystem. Its zero value is not usable;
// make one with New.
type Guard struct {
	dir     string
	reserve int64
	ballast int64
	clock   clock.Clock
	statfs  func(dir string) (int64, error)
	log     *slog.Logger
	maxAge  time.Duration

	mu      sync.Mutex
	free    int64
	sampled time.Time
	held    int64 // ballast bytes on disk now
	refused bool  // the last check refused: log the way back once

	refusals    prometheus.Counter
	freeDesc    *prometheus.Desc
	reserveDesc *prometheus.Desc
	heldDesc    *prometheus.Desc
	lowDesc     *prometheus.Desc
}

// Options tune a Guard.
type Options struct {
	// Ballast, if above 0, is the size of a file (BallastName) the guard
	// keeps in dir. Writes are refused below the reserve, but another
	// process may still fill the filesystem; Badger's next flush (at the
	// latest when the process closes it) would then fault. When the free
	// space falls below the ballast's size, the guard deletes the file,
	// so that the space is there for the flush; it makes it again when
	// the reserve and the ballast fit.
	Ballast int64
	// MaxAge is how long a free-space reading is trusted while the free
	// space is well above the reserve (default 200ms); near it, a write
	// that would pass or names its size reads again, and a refusal
	// trusts a reading for a tenth of that.
	MaxAge time.Duration
	// Logger (default slog.Default) gets one line per change of state.
	Logger *slog.Logger
	// Clock (nil: the real clock) and Statfs (default: unix.Statfs, bytes
	// available to an unprivileged process) are for tests.
	Clock  clock.Clock
	Statfs func(dir string) (int64, error)
}

// New guards dir, keeping reserve bytes free.
func New(dir string, reserve int64, o Options) *Guard {
	if o.MaxAge <= 0 {
		o.MaxAge = 200 * time.Millisecond
	}
	o.Clock = clock.Or(o.Clock)
	if o.Statfs == nil {
		o.Statfs = Available
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	g := &Guard{dir: dir, reserve: reserve, ballast: max(0, o.Ballast), clock: o.Clock, statfs: o.Statfs,
		log: o.Logger.With("component", "disk"), maxAge: o.MaxAge}
	labels := prometheus.Labels{"dir": dir}
	g.refusals = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: "disk", Name: "refused_writes_total",
		Help:        "Writes refused because the data dir's free space is below its reserve (alert on any increase).",
		ConstLabels: labels,
	})
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, "disk", name), help, nil, labels)
	}
	g.freeDesc = desc("free_bytes", "Bytes available on the data dir's filesystem.")
	g.reserveDesc = desc("reserve_bytes", "Bytes the data dir keeps free: writes are refused below it.")
	g.heldDesc = desc("ballast_bytes", "Bytes the ballast file holds for Badger's flushes (0: released, the disk was nearly full).")
	g.lowDesc = desc("low", "1 while the free space is below the reserve: writes are refused (read-only).")
	return g
}

// Available returns the bytes an unprivileged process may still write on
// dir's filesystem (statfs f_bavail).
func Available(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("diskspace: statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Dir is the guarded directory.
func (g *Guard) Dir() string { return g.dir }

// Reserve is the space kept free.
func (g *Guard) Reserve() int64 { return g.reserve }

// Prepare is called once before the database opens: it takes account of
// a ballast left by an earlier run, and returns an error naming the dir
// and its free space if less than need is available even without the
// ballast (the caller exits with it: opening would risk a fault). low
// says the process starts read-only: the free space is below the reserve.
func (g *Guard) Prepare(need int64) (low bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fi, err := os.Stat(g.ballastPath()); err == nil {
		g.held = fi.Size()
	}
	free, err := g.readLocked()
	if err != nil {
		return false, err
	}
	if free < need && g.held > 0 {
		g.releaseLocked(free)
		free, _ = g.readLocked()
	}
	if free < need {
		return true, fmt.Errorf("data dir %s: %s free on its filesystem, %s needed to open the database without risking a crash: free space and start again",
			g.dir, Bytes(free), Bytes(need))
	}
	g.tendLocked(free)
	return g.free-(g.ballast-g.held) < g.reserve, nil
}

// CloseRoom reports whether need bytes are free for the database's last
// flush. When not, the caller leaves the database unclosed: its
// write-ahead log already holds every acknowledged write, and a flush
// into a full filesystem through mmap would be a fault (SIGBUS).
func (g *Guard) CloseRoom(need int64) bool {
	free, err := g.Free()
	return err != nil || free >= need
}

// Watch reads the free space every interval until ctx ends, so that the
// ballast goes when another process fills the disk even while nothing
// here writes, and comes back with the space.
func (g *Guard) Watch(ctx context.Context, interval time.Duration) {
	t, tick := g.clock.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		g.mu.Lock()
		if free, err := g.readLocked(); err == nil {
			g.tendLocked(free)
		}
		g.mu.Unlock()
	}
}

func (g *Guard) ballastPath() string { return filepath.Join(g.dir, BallastName) }

// tendLocked releases the ballast when free is below its size and makes
// it again when the reserve and the ballast fit.
func (g *Guard) tendLocked(free int64) {
	switch {
	case g.ballast == 0:
	case g.held > 0 && free < g.held:
		g.releaseLocked(free)
	case g.held == 0 && free >= g.reserve+g.ballast:
		if err := allocate(g.ballastPath(), g.ballast); err != nil {
			g.log.Warn("could not make the ballast file", "dir", g.dir, "err", err)
			return
		}
		g.held = g.ballast
		g.free -= g.ballast
		g.log.Info("ballast file made", "dir", g.dir, "ballast", Bytes(g.ballast), "free", Bytes(g.free))
	}
}

func (g *Guard) releaseLocked(free int64) {
	if err := os.Remove(g.ballastPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		g.log.Error("could not delete the ballast file", "dir", g.dir, "err", err)
		return
	}
	g.log.Warn("filesystem nearly full: ballast file deleted so that the database can still flush; writes are refused until the reserve is free",
		"dir", g.dir, "free", Bytes(free), "ballast", Bytes(g.held), "reserve", Bytes(g.reserve))
	g.free += g.held
	g.held = 0
}

// allocate makes path with size bytes really allocated (not sparse).
func allocate(path string, size int64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// Free reads the free space now.
func (g *Guard) Free() (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.readLocked()
}

func (g *Guard) readLocked() (int64, error) {
	free, err := g.statfs(g.dir)
	g.sampled = g.clock.Now()
	if err != nil {
		return g.free, err
	}
	g.free = free
	return free, nil
}

// Check returns nil if need more bytes can be written with the reserve
// still free, else an *Error (wrapping ErrInsufficient) and counts the
// refusal. A statfs failure does not refuse: the filesystem, not this
// guard, then decides.
func (g *Guard) Check(need int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	free := g.free
	// Near the reserve every write that would be accepted reads afresh;
	// a refusal trusts the last reading for a tenth of MaxAge, or a
	// refused DHCP flood on a full disk would be a statfs per packet. A
	// write that names its size (a blob, a download) always reads.
	age := g.clock.Now().Sub(g.sampled)
	near := free-need < 2*g.reserve
	wouldRefuse := free-(g.ballast-g.held)-need < g.reserve
	if g.sampled.IsZero() || age >= g.maxAge || (near && (need > 0 || !wouldRefuse || age >= g.maxAge/10)) {
		var err error
		if free, err = g.readLocked(); err != nil {
			return nil
		}
		g.tendLocked(free)
		free = g.free
	}
	// A released ballast's space is the flush's, not the writes'.
	flush := g.ballast - g.held
	if free-flush-need >= g.reserve {
		if g.refused {
			g.refused = false
			g.log.Info("free space above the reserve again: writes accepted", "dir", g.dir, "free", Bytes(free))
		}
		return nil
	}
	if !g.refused {
		g.refused = true
		g.log.Warn("free space below the reserve: writes refused (read-only) until space is freed",
			"dir", g.dir, "free", Bytes(free), "need", Bytes(need), "reserve", Bytes(g.reserve))
	}
	g.refusals.Inc()
	return &Error{Dir: g.dir, Free: free, Need: need, Reserve: g.reserve, Flush: flush}
}

// Describe and Collect export osim_disk_free_bytes (read at scrape time),
// osim_disk_reserve_bytes, osim_disk_ballast_bytes, osim_disk_low and
// osim_disk_refused_writes_total, labelled with the dir.
func (g *Guard) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{g.freeDesc, g.reserveDesc, g.heldDesc, g.lowDesc} {
		ch <- d
	}
	g.refusals.Describe(ch)
}

func (g *Guard) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	free, err := g.readLocked()
	held := g.held
	g.mu.Unlock()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(g.freeDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(g.freeDesc, prometheus.GaugeValue, float64(free))
		low := 0.0
		if free-(g.ballast-held) < g.reserve {
			low = 1
		}
		ch <- prometheus.MustNewConstMetric(g.lowDesc, prometheus.GaugeValue, low)
	}
	ch <- prometheus.MustNewConstMetric(g.reserveDesc, prometheus.GaugeValue, float64(g.reserve))
	ch <- prometheus.MustNewConstMetric(g.heldDesc, prometheus.GaugeValue, float64(held))
	g.refusals.Collect(ch)
}
