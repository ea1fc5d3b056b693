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
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"osim/metrics"
)

// ErrInsufficient is what every refusal wraps (HTTP 507).
var ErrInsufficient = errors.New("insufficient storage")

// Error says which data dir refused a write, and why.
type Error struct {
	Dir     string
	Free    int64 // bytes available to the process
	Need    int64 // bytes the write itself asked for
	Reserve int64 // bytes kept free for what is already accepted
}

func (e *Error) Error() string {
	need := ""
	if e.Need > 0 {
		need = fmt.Sprintf("%s for this write plus ", Bytes(e.Need))
	}
	return fmt.Sprintf("data dir %s: %s free, needs %s%s kept free (reserve): free space on its filesystem",
		e.Dir, Bytes(e.Free), need, Bytes(e.Reserve))
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
// after the last write it accepted: the unwritten rest of the current
// memtable, one level-0 table per memtable waiting to be flushed, and a
// level-0 compaction, which writes its output before it deletes its input.
func BadgerReserve(opts badger.Options) int64 {
	mt := opts.MemTableSize
	return mt * int64(1+opts.NumMemtables+opts.NumLevelZeroTables)
}

// Guard checks one directory's filesystem. Its zero value is not usable;
// make one with New.
type Guard struct {
	dir     string
	reserve int64
	now     func() time.Time
	statfs  func(dir string) (int64, error)

	maxAge  time.Duration

	mu      sync.Mutex
	free    int64
	sampled time.Time

	refusals    prometheus.Counter
	freeDesc    *prometheus.Desc
	reserveDesc *prometheus.Desc
}

// Options tune a Guard.
type Options struct {
	// MaxAge is how long a free-space reading is trusted while the free
	// space is well above the reserve (default 200ms); near it, every
	// check reads again.
	MaxAge time.Duration
	// Clock (default time.Now) and Statfs (default: unix.Statfs, bytes
	// available to an unprivileged process) are for tests.
	Clock  func() time.Time
	Statfs func(dir string) (int64, error)
}

// New guards dir, keeping reserve bytes free.
func New(dir string, reserve int64, o Options) *Guard {
	if o.MaxAge <= 0 {
		o.MaxAge = 200 * time.Millisecond
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Statfs == nil {
		o.Statfs = Available
	}
	g := &Guard{dir: dir, reserve: reserve, now: o.Clock, statfs: o.Statfs, maxAge: o.MaxAge}
	g.refusals = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: "disk", Name: "refused_writes_total",
		Help:        "Writes refused because the data dir's free space is below its reserve (alert on any increase).",
		ConstLabels: prometheus.Labels{"dir": dir},
	})
	g.freeDesc = prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, "disk", "free_bytes"),
		"Bytes available on the data dir's filesystem.", nil, prometheus.Labels{"dir": dir})
	g.reserveDesc = prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, "disk", "reserve_bytes"),
		"Bytes the data dir keeps free: writes are refused below it.", nil, prometheus.Labels{"dir": dir})
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

// Free reads the free space now.
func (g *Guard) Free() (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.readLocked()
}

func (g *Guard) readLocked() (int64, error) {
	free, err := g.statfs(g.dir)
	g.sampled = g.now()
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
	if g.sampled.IsZero() || g.now().Sub(g.sampled) >= g.maxAge || free-need < 2*g.reserve {
		var err error
		if free, err = g.readLocked(); err != nil {
			return nil
		}
	}
	if free-need >= g.reserve {
		return nil
	}
	g.refusals.Inc()
	return &Error{Dir: g.dir, Free: free, Need: need, Reserve: g.reserve}
}

// Describe and Collect export osim_disk_free_bytes (read at scrape time),
// osim_disk_reserve_bytes and osim_disk_refused_writes_total, labelled
// with the dir.
func (g *Guard) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.freeDesc
	ch <- g.reserveDesc
	g.refusals.Describe(ch)
}

func (g *Guard) Collect(ch chan<- prometheus.Metric) {
	if free, err := g.Free(); err != nil {
		ch <- prometheus.NewInvalidMetric(g.freeDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(g.freeDesc, prometheus.GaugeValue, float64(free))
	}
	ch <- prometheus.MustNewConstMetric(g.reserveDesc, prometheus.GaugeValue, float64(g.reserve))
	g.refusals.Collect(ch)
}
