package mdb

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/badgerkv"
	"osim/internal/clock"
	"osim/internal/storeformat"
)

// Options tune a DB. The zero value is usable with Open.
type Options struct {
	// Clock stamps Created/Updated/transition times (nil: the real clock).
	Clock clock.Clock
	// Logger receives the store's own logs and Badger's warnings and
	// errors (default slog.Default()).
	Logger *slog.Logger
	// LogRetention is how many revisions of change log to keep; older
	// entries are dropped as writes go on (default 1_000_000).
	LogRetention uint64
	// Rand is the source of ids and order tokens (default crypto/rand).
	Rand io.Reader
	// BlobDir is where blob files live: BlobDir/sha256/ab/abcd… for
	// complete blobs, BlobDir/partial/<sha> for uploads in progress.
	// Open defaults it to <dir>/blobs; New requires it.
	BlobDir string
	// Version is the osim build writing the store (a backup's header
	// names it).
	Version string
	// MaxBlobSize caps the size an upload may announce (default
	// DefaultMaxBlobSize).
	MaxBlobSize int64
	// Space, if set, is asked before every write that can grow the store
	// (deletes are never refused: they are how space comes back). Its
	// refusal is returned wrapped in ErrNoSpace.
	Space SpaceGuard
}

// SpaceGuard refuses a write of need more bytes when the data dir's free
// space is too low (internal/diskspace implements it).
type SpaceGuard interface {
	Check(need int64) error
}

// DefaultMaxBlobSize is Options.MaxBlobSize when it is zero: a whole-disk
// image of a large server, compressed.
const DefaultMaxBlobSize = 64 << 30

// DefaultLogRetention is Options.LogRetention when it is zero.
const DefaultLogRetention = 1_000_000

// chunkSize is the most objects one write transaction creates.
const chunkSize = 1000

// DB is the Badger implementation of Store. It uses only keys under "mdb/"
// (see README.md for the layout).
type DB struct {
	db      *badger.DB
	ownDB   bool
	opts    Options
	log     *slog.Logger
	blobDir string

	// mu serializes every read-write transaction of the store: writes
	// never conflict with each other, and validation done under mu stays
	// true until the commit.
	mu sync.Mutex

	rev    atomic.Uint64 // last committed revision
	evSeq  atomic.Uint64 // last committed event seq
	logMin uint64        // oldest retained log revision (0: never compacted); under mu

	nmu    sync.Mutex
	notify chan struct{} // closed and replaced after every commit
	// waiting counts the callers blocked in wait, so a test writes
	// only once its waiter waits.
	waiting atomic.Int32

	blobMu    sync.Mutex
	blobLocks map[string]*blobLock // only while someone holds or writes it
	// backups running, and the blob files whose removal waits for them
	// (under blobMu).
	backups          int
	deferredRemovals []string

	countMu     sync.Mutex
	orderCounts map[api.OrderState]int    // orders per state, as committed
	ordersEnded map[api.OrderState]uint64 // orders that entered each final state since Open

	discovered atomic.Uint64 // targets registered by discovery since Open (discovered.go)
}

// Open opens (or creates) the MDB in dir: the Badger database in
// <dir>/db, blobs under <dir>/blobs. The DB owns the Badger database and
// closes it on Close.
func Open(dir string, opts Options) (*DB, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BlobDir == "" {
		opts.BlobDir = filepath.Join(dir, "blobs")
	}
	bo := BadgerOptions(filepath.Join(dir, "db"), opts.Logger)
	bdb, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("mdb: open %s: %w", dir, err)
	}
	d, err := New(bdb, opts)
	if err != nil {
		bdb.Close()
		return nil, err
	}
	d.ownDB = true
	return d, nil
}

// Layout is the MDB's on-disk format: the keys below and their encodings.
// A change that an older build would misread raises Current and adds the
// migration from the format before (see internal/storeformat and
// docs/production.md, "Upgrades").
var Layout = storeformat.Layout{Name: "MDB", Key: keyFormat, Current: 1}

// BadgerOptions are the options Open uses for a database in dir: synced
// writes (a committed revision survives a crash) and quiet logs. A
// process that opens its one Badger database itself may start from them.
func BadgerOptions(dir string, logger *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(BadgerLogger{L: logger}).
		WithSyncWrites(true).
		WithNumVersionsToKeep(1).
		WithMemTableSize(64 << 20).
		WithValueThreshold(1 << 20).
		WithCompactL0OnClose(true)
}

// New makes a DB on a Badger database the caller owns (and closes after
// the DB). opts.BlobDir is required.
func New(bdb *badger.DB, opts Options) (*DB, error) {
	opts.Clock = clock.Or(opts.Clock)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LogRetention == 0 {
		opts.LogRetention = DefaultLogRetention
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.MaxBlobSize <= 0 {
		opts.MaxBlobSize = DefaultMaxBlobSize
	}
	if opts.BlobDir == "" {
		return nil, fmt.Errorf("mdb: %w: Options.BlobDir is required with New", ErrInvalid)
	}
	for _, sub := range []string{"sha256", "partial"} {
		if err := os.MkdirAll(filepath.Join(opts.BlobDir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("mdb: blob dir: %w", err)
		}
	}
	found, err := Layout.Open(bdb)
	if err != nil {
		return nil, fmt.Errorf("mdb: %w", err)
	}
	if msg := Layout.Describe(found); msg != "" {
		opts.Logger.Info(msg, "component", "mdb")
	}
	d := &DB{db: bdb, opts: opts, log: opts.Logger.With("component", "mdb"), blobDir: opts.BlobDir,
		notify: make(chan struct{}), blobLocks: map[string]*blobLock{}}
	err = bdb.View(func(txn *badger.Txn) error {
		for _, m := range []struct {
			key []byte
			set func(uint64)
		}{
			{keyRev, d.rev.Store},
			{keyEvSeq, d.evSeq.Store},
			{keyLogMin, func(v uint64) { d.logMin = v }},
		} {
			v, err := badgerkv.GetU64(txn, m.key)
			if err != nil {
				return err
			}
			m.set(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mdb: load counters: %w", err)
	}
	if err := d.indexHostnames(); err != nil {
		return nil, fmt.Errorf("mdb: index host names: %w", err)
	}
	// Orders per state are counted once here, then kept by every commit:
	// the manager's metrics ask on every scrape.
	if d.orderCounts, err = d.scanOrderCounts(); err != nil {
		return nil, fmt.Errorf("mdb: count orders: %w", err)
	}
	return d, nil
}

// Close closes the Badger database if Open opened it.
func (d *DB) Close() error {
	if d.ownDB {
		return d.db.Close()
	}
	return nil
}

// BadgerLogger passes Badger's warnings and errors to slog and drops its
// info and debug chatter.
type BadgerLogger struct{ L *slog.Logger }

func (b BadgerLogger) Errorf(f string, a ...any) {
	b.L.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b BadgerLogger) Warningf(f string, a ...any) {
	b.L.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (BadgerLogger) Infof(string, ...any)  {}
func (BadgerLogger) Debugf(string, ...any) {}

// Keys. Every key starts with "mdb/".
var (
	keyFormat = []byte("mdb/meta/format") // Layout's
	keyRev    = []byte("mdb/meta/rev")
	keyEvSeq  = []byte("mdb/meta/evseq")
	keyLogMin = []byte("mdb/meta/logmin")

	pTarget    = "mdb/t/"      // + id → Target JSON
	pMAC       = "mdb/mac/"    // + mac → target id
	pSiteTgt   = "mdb/ts/"     // + site/id → ""
	pOrder     = "mdb/o/"      // + id → Order JSON
	pOrderTgt  = "mdb/ot/"     // + target/order → ""
	pLiveSite  = "mdb/ol/"     // + site/order → "" (live orders only)
	pImage     = "mdb/img/"    // + id → Image JSON
	pImageName = "mdb/imgn/"   // + name/version → id
	pBS        = "mdb/bs/"     // + id → BootServer JSON
	pBSName    = "mdb/bsn/"    // + name → id
	pToken     = "mdb/tok/"    // + id → Token JSON
	pTokenHash = "mdb/tokh/"   // + hash → id
	pEvent     = "mdb/ev/"     // + seq 8B → Event JSON
	pOrigin    = "mdb/origin/" // + origin → last OriginSeq 8B
	pUpload    = "mdb/upload/" // + sha → announced size 8B
	pLog       = "mdb/log/"    // + rev 8B + idx 4B → site "\n" Change JSON
)

func k(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func logKey(rev uint64, idx uint32) []byte {
	b := append([]byte(pLog), badgerkv.U64(rev)...)
	return binary.BigEndian.AppendUint32(b, idx)
}

// scan calls fn for every key with prefix, in order, starting after
// prefix+after (exclusive) when after is set; fn returns false to stop.
func scan(txn *badger.Txn, prefix, after string, values bool, fn func(key []byte, item *badger.Item) (bool, error)) error {
	o := badger.DefaultIteratorOptions
	o.Prefix = []byte(prefix)
	o.PrefetchValues = values
	it := txn.NewIterator(o)
	defer it.Close()
	start := []byte(prefix)
	if after != "" {
		start = k(prefix, after, "\x00")
	}
	for it.Seek(start); it.Valid(); it.Next() {
		item := it.Item()
		more, err := fn(item.Key(), item)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// wtx is one read-write transaction of the store, run under d.mu.
type wtx struct {
	d     *DB
	txn   *badger.Txn
	now   time.Time
	rev   uint64 // 0 until something synced changes
	evSeq uint64 // last event seq assigned (starts at d.evSeq)
	evs   bool
	// changes in this revision, one per (site, kind, id): a second write
	// of the same object in one transaction replaces the first.
	changes []logEntry
	pos     map[string]int
	// orderDelta is how this transaction changes the orders per state,
	// ended how many orders it moved into each final state.
	orderDelta map[api.OrderState]int
	ended      map[api.OrderState]uint64
	// discovered counts the targets discovery registered in this transaction.
	discovered uint64
}

// countOrder records an order entering state to from state from ("": a
// new order) for CountOrders.
func (w *wtx) countOrder(from, to api.OrderState) {
	if w.orderDelta == nil {
		w.orderDelta = map[api.OrderState]int{}
	}
	if from != "" {
		w.orderDelta[from]--
	}
	w.orderDelta[to]++
	if to.Final() {
		if w.ended == nil {
			w.ended = map[api.OrderState]uint64{}
		}
		w.ended[to]++
	}
}

type logEntry struct {
	site string // "" for every site
	c    api.Change
}

func (d *DB) begin() *wtx {
	return &wtx{d: d, txn: d.db.NewTransaction(true), now: d.opts.Clock.Now().UTC(),
		evSeq: d.evSeq.Load(), pos: map[string]int{}}
}

// bump assigns this transaction's revision and returns it.
func (w *wtx) bump() uint64 {
	if w.rev == 0 {
		w.rev = w.d.rev.Load() + 1
	}
	return w.rev
}

func (w *wtx) logChange(site string, c api.Change) {
	c.Rev = w.bump()
	key := site + "\x00" + c.Kind + "\x00" + c.ID
	if i, ok := w.pos[key]; ok {
		w.changes[i].c = c
		return
	}
	w.pos[key] = len(w.changes)
	w.changes = append(w.changes, logEntry{site, c})
}

func (w *wtx) setJSON(key []byte, v any) error {
	b, err := badgerkv.JSON(key, v)
	if err != nil {
		return fmt.Errorf("mdb: %w", err)
	}
	return w.set(key, b)
}

func (w *wtx) set(key, val []byte) error {
	if err := w.txn.Set(key, val); err != nil {
		return fmt.Errorf("mdb: write %s: %w", key, err)
	}
	return nil
}

func (w *wtx) del(key []byte) error {
	if err := w.txn.Delete(key); err != nil {
		return fmt.Errorf("mdb: delete %s: %w", key, err)
	}
	return nil
}

// newID returns prefix + 12 random hex digits not used under keyPrefix.
func (w *wtx) newID(prefix, keyPrefix string) (string, error) {
	for range 16 {
		var b [6]byte
		if _, err := io.ReadFull(w.d.opts.Rand, b[:]); err != nil {
			return "", fmt.Errorf("mdb: random id: %w", err)
		}
		id := prefix + hex.EncodeToString(b[:])
		ok, err := badgerkv.Exists(w.txn, k(keyPrefix, id))
		if err != nil {
			return "", err
		}
		if !ok {
			return id, nil
		}
	}
	return "", fmt.Errorf("mdb: no free %s id after 16 tries (is Options.Rand random?)", prefix)
}

func (w *wtx) token() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(w.d.opts.Rand, b[:]); err != nil {
		return "", fmt.Errorf("mdb: random token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// nextSeq assigns an event seq.
func (w *wtx) nextSeq() uint64 {
	w.evSeq++
	w.evs = true
	return w.evSeq
}

// putEvent stores e with a fresh seq and returns it.
func (w *wtx) putEvent(e api.Event) (api.Event, error) {
	e.Seq = w.nextSeq()
	if e.Time.IsZero() {
		e.Time = w.now
	}
	return e, w.setJSON(k(pEvent, string(badgerkv.U64(e.Seq))), e)
}

// commit writes the counters and the log, commits, publishes the new
// counters and wakes waiters.
func (w *wtx) commit() error {
	defer w.txn.Discard()
	if w.rev != 0 {
		if err := w.set(keyRev, badgerkv.U64(w.rev)); err != nil {
			return err
		}
		for i, e := range w.changes {
			b, err := json.Marshal(e.c)
			if err != nil {
				return fmt.Errorf("mdb: encode change: %w", err)
			}
			v := make([]byte, 0, len(e.site)+1+len(b))
			v = append(append(append(v, e.site...), '\n'), b...)
			if err := w.set(logKey(w.rev, uint32(i)), v); err != nil {
				return err
			}
		}
	}
	if w.evs {
		if err := w.set(keyEvSeq, badgerkv.U64(w.evSeq)); err != nil {
			return err
		}
	}
	if err := w.txn.Commit(); err != nil {
		return fmt.Errorf("mdb: commit: %w", err)
	}
	if w.rev != 0 {
		w.d.rev.Store(w.rev)
	}
	if w.evs {
		w.d.evSeq.Store(w.evSeq)
	}
	w.d.discovered.Add(w.discovered)
	if len(w.orderDelta) > 0 {
		w.d.countMu.Lock()
		for st, n := range w.orderDelta {
			w.d.orderCounts[st] += n
		}
		for st, n := range w.ended {
			if w.d.ordersEnded == nil {
				w.d.ordersEnded = map[api.OrderState]uint64{}
			}
			w.d.ordersEnded[st] += n
		}
		w.d.countMu.Unlock()
	}
	w.d.wake()
	if w.rev != 0 {
		w.d.autoCompact()
	}
	return nil
}

func (d *DB) wake() {
	d.nmu.Lock()
	close(d.notify)
	d.notify = make(chan struct{})
	d.nmu.Unlock()
}

// wait blocks until cond() holds or ctx ends.
func (d *DB) wait(ctx context.Context, cond func() bool) error {
	for {
		d.nmu.Lock()
		ch := d.notify
		d.nmu.Unlock()
		if cond() {
			return nil
		}
		d.waiting.Add(1)
		select {
		case <-ch:
			d.waiting.Add(-1)
		case <-ctx.Done():
			d.waiting.Add(-1)
			return ctx.Err()
		}
	}
}

// update runs fn in a write transaction under d.mu and commits it.
func (d *DB) update(ctx context.Context, fn func(w *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.updateLocked(fn)
}

func (d *DB) updateLocked(fn func(w *wtx) error) error {
	if err := d.roomFor(0); err != nil {
		return err
	}
	return d.updateFreeingLocked(fn)
}

// roomFor asks opts.Space whether need more bytes (beyond the Badger
// write the caller is about to make) may be written.
func (d *DB) roomFor(need int64) error {
	if d.opts.Space == nil {
		return nil
	}
	if err := d.opts.Space.Check(need); err != nil {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return nil
}

// updateFreeing is update for writes that delete: never refused for space.
func (d *DB) updateFreeing(ctx context.Context, fn func(w *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.updateFreeingLocked(fn)
}

func (d *DB) updateFreeingLocked(fn func(w *wtx) error) error {
	w := d.begin()
	if err := fn(w); err != nil {
		w.txn.Discard()
		return err
	}
	return w.commit()
}

func (d *DB) view(ctx context.Context, fn func(txn *badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.db.View(fn)
}

// Revision returns the last committed revision.
func (d *DB) Revision(ctx context.Context) (uint64, error) {
	return d.rev.Load(), ctx.Err()
}

// WaitRevision blocks until the revision passes after.
func (d *DB) WaitRevision(ctx context.Context, after uint64) (uint64, error) {
	err := d.wait(ctx, func() bool { return d.rev.Load() > after })
	return d.rev.Load(), err
}

func limitOf(n, def, max int) int {
	if n <= 0 {
		return def
	}
	if n > max {
		return max
	}
	return n
}
