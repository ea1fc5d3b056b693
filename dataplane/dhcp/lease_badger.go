package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Keys under this subsystem's prefix: "lease/ip/" + 4 address bytes → the
// encoded lease; "lease/mac/" + 6 MAC bytes → 4 address bytes.
var (
	leaseIPPrefix  = []byte("lease/ip/")
	leaseMACPrefix = []byte("lease/mac/")
)

// maxGroup bounds how many updates share one Badger transaction.
const maxGroup = 256

// BadgerLeases is a LeaseStore in a Badger database owned by the caller
// (one per process); it uses only keys under "lease/", and it must be the
// only writer of them.
//
// Every lease is also held in memory (about 100 bytes each): transactions
// read from there, and write to Badger. Reading leases through Badger's
// levels was the largest part of a DORA's CPU once they had left the
// memtable, as the lease table of a busy site does.
// Memory changes only after Badger has committed.
//
// Offers are held in memory only: an offer is a hold of a few seconds
// between DISCOVER and REQUEST, and a server that restarts in between
// forgets it as Kea does (the client's REQUEST gets a NAK and it starts
// over). So a DISCOVER costs no write at all; the REQUEST writes the bound
// lease.
//
// Updates are group-committed: while one Badger transaction commits, the
// updates that arrive queue up, and the next one runs them all, in arrival
// order, in a single transaction. Each caller still returns only after its
// changes are committed, but a burst of DISCOVERs pays one commit (one trip
// through Badger's write pipeline, one transaction marker) per group
// instead of one per packet.
type BadgerLeases struct {
	db    *badger.DB
	space SpaceGuard // nil: writes are not checked

	// mu guards queue and leading. One goroutine at a time leads: it
	// takes the queue and commits it; the others wait for their op.
	// Serializing the writers is what lets transactions read from memory
	// without conflict tracking.
	mu      sync.Mutex
	queue   []*leaseOp
	leading bool

	// mem is read by the leader without memMu (only the leader writes
	// it) and by View under memMu's read lock.
	memMu sync.RWMutex
	mem   leaseTable

	commits atomic.Uint64 // Badger transactions committed, for tests
}

// leaseTable is the leases by address and the MAC index: Badger's, with
// the offers on top. Keys and values hold no pointers, so the garbage
// collector never scans the maps, however many leases a site has.
type leaseTable struct {
	byIP  map[[4]byte]memLease
	byMAC map[[6]byte][4]byte
	// storedMAC is the MAC index as Badger holds it (without offers), so
	// an unchanged index entry is not written again.
	storedMAC map[[6]byte][4]byte
}

// memLease is a Lease without its address (the key) and without pointers.
type memLease struct {
	expires int64 // Unix ns, as encoded
	mac     [6]byte
	hasMAC  bool
	state   LeaseState
}

func newLeaseTable() leaseTable {
	return leaseTable{byIP: map[[4]byte]memLease{}, byMAC: map[[6]byte][4]byte{}, storedMAC: map[[6]byte][4]byte{}}
}

func (m memLease) lease(ip [4]byte) Lease {
	l := Lease{IP: netip.AddrFrom4(ip), State: m.state, Expires: time.Unix(0, m.expires)}
	if m.hasMAC {
		l.MAC = net.HardwareAddr(slices.Clone(m.mac[:]))
	}
	return l
}

func (m leaseTable) get(ip netip.Addr) (Lease, bool) {
	ml, ok := m.byIP[ip.As4()]
	if !ok {
		return Lease{}, false
	}
	return ml.lease(ip.As4()), true
}

func (m leaseTable) mac(mac net.HardwareAddr) (netip.Addr, bool) {
	if len(mac) != 6 {
		return netip.Addr{}, false
	}
	ip, ok := m.byMAC[[6]byte(mac)]
	return netip.AddrFrom4(ip), ok
}

// set records l (checked by checkLease) and indexes its MAC.
func (m leaseTable) set(l Lease) {
	ml := memLease{expires: l.Expires.UnixNano(), state: l.State}
	if len(l.MAC) == 6 {
		ml.mac, ml.hasMAC = [6]byte(l.MAC), true
		m.byMAC[ml.mac] = l.IP.As4()
	}
	m.byIP[l.IP.As4()] = ml
}

// each visits the leases in no particular order.
func (m leaseTable) each(fn func(Lease) error, skip func([4]byte) bool) error {
	for ip, ml := range m.byIP {
		if skip != nil && skip(ip) {
			continue
		}
		if err := fn(ml.lease(ip)); err != nil {
			return err
		}
	}
	return nil
}

// leaseOp is one Update waiting for its group.
type leaseOp struct {
	ctx  context.Context
	fn   func(LeaseTx) error
	done chan error    // its result, once its group is committed
	lead chan struct{} // closed when it is to lead the next group
}

// OpenBadgerLeases keeps leases in db, reading the ones already there.
func OpenBadgerLeases(db *badger.DB) (*BadgerLeases, error) {
	s := &BadgerLeases{db: db, mem: newLeaseTable()}
	err := db.View(func(txn *badger.Txn) error {
		err := eachStoredLease(txn, func(l Lease) error {
			if err := checkLease(l); err != nil {
				return err
			}
			s.mem.set(l)
			return nil
		})
		if err != nil {
			return err
		}
		opts := badger.DefaultIteratorOptions
		opts.Prefix = leaseMACPrefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[len(leaseMACPrefix):]
			var ip netip.Addr
			err := it.Item().Value(func(v []byte) error {
				var ok bool
				ip, ok = netip.AddrFromSlice(v)
				if len(k) != 6 || !ok || !ip.Is4() {
					return fmt.Errorf("dhcp: lease index entry %x: bad record %x", k, v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			s.mem.byMAC[[6]byte(k)] = ip.As4()
			s.mem.storedMAC[[6]byte(k)] = ip.As4()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dhcp: load leases: %w", err)
	}
	return s, nil
}

// Update runs fn in a transaction shared with the updates queued at the
// same time, and commits it to Badger before it returns.
func (s *BadgerLeases) Update(ctx context.Context, fn func(LeaseTx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("dhcp: lease update: %w", err)
	}
	op := &leaseOp{ctx: ctx, fn: fn, done: make(chan error, 1), lead: make(chan struct{})}
	s.mu.Lock()
	s.queue = append(s.queue, op)
	if s.leading {
		s.mu.Unlock()
		select {
		case err := <-op.done:
			return err
		case <-op.lead: // the last leader handed over: op is first in the queue
		}
		s.mu.Lock()
	}
	s.leading = true
	batch := s.queue
	if len(batch) > maxGroup {
		batch = batch[:maxGroup]
	}
	s.queue = slices.Clone(s.queue[len(batch):])
	s.mu.Unlock()

	s.commitGroup(batch)
	s.handOver()
	return <-op.done
}

// handOver gives the lead to the first update queued meanwhile, or ends it.
func (s *BadgerLeases) handOver() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		close(s.queue[0].lead) // it takes the queue that built up meanwhile
	} else {
		s.leading = false
	}
}

// run calls op's fn on tx; a panic in fn becomes op's error, so one bad
// update cannot take the leader, and with it every later update, down.
func (op *leaseOp) run(tx LeaseTx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("dhcp: lease update panicked: %v", r)
		}
	}()
	return op.fn(tx)
}

// commitGroup runs every op of batch, in order, and commits what they
// wrote in one Badger transaction. An op whose fn fails leaves no write
// behind and gets its error; if the commit itself fails, each op runs
// again alone so one op's trouble cannot fail the others.
func (s *BadgerLeases) commitGroup(batch []*leaseOp) {
	group := &groupTx{s: s, leaseTable: newLeaseTable()}
	results := make([]error, len(batch))
	for i, op := range batch {
		results[i] = group.stage(op)
	}
	if err := s.commit(group); err != nil && len(batch) > 1 {
		for _, op := range batch {
			op.done <- s.updateAlone(op)
		}
		return
	} else if err != nil {
		results[0] = err
	}
	for i, op := range batch {
		op.done <- results[i]
	}
}

// updateAlone runs one op in its own transaction.
func (s *BadgerLeases) updateAlone(op *leaseOp) error {
	group := &groupTx{s: s, leaseTable: newLeaseTable()}
	if err := group.stage(op); err != nil {
		return err
	}
	return s.commit(group)
}

// commit writes g's changes to Badger in one transaction (none when they
// are offers only), then to memory.
func (s *BadgerLeases) commit(g *groupTx) error {
	if len(g.writes) > 0 {
		if err := s.roomForWrite(); err != nil {
			return err
		}
		// Blind writes: nothing was read through Badger, so nothing can
		// conflict.
		err := s.db.Update(func(txn *badger.Txn) error {
			for _, w := range g.writes {
				if err := txn.Set(w.key, w.val); err != nil {
					return fmt.Errorf("dhcp: store %q: %w", w.key, err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("dhcp: lease update: %w", err)
		}
		s.commits.Add(1)
	}
	s.memMu.Lock()
	for ip, l := range g.byIP {
		s.mem.byIP[ip] = l
	}
	for mac, ip := range g.byMAC {
		s.mem.byMAC[mac] = ip
	}
	for mac, ip := range g.storedMAC {
		s.mem.storedMAC[mac] = ip
	}
	s.memMu.Unlock()
	return nil
}

// View runs fn on the leases as committed, and the offers. fn must not
// call Update: the commit waits for the read lock fn holds.
func (s *BadgerLeases) View(fn func(LeaseTx) error) error {
	s.memMu.RLock()
	defer s.memMu.RUnlock()
	return fn(memLeaseTx{s.mem})
}

// CountActive counts bound, unexpired leases at now without building a
// Lease (and its MAC) per record: a scrape of half a million leases.
func (s *BadgerLeases) CountActive(now time.Time) int {
	t := now.UnixNano()
	s.memMu.RLock()
	defer s.memMu.RUnlock()
	n := 0
	for _, ml := range s.mem.byIP {
		if ml.state == LeaseBound && t < ml.expires {
			n++
		}
	}
	return n
}

// eachActive calls fn with the address of every lease that holds it at
// now (Lease.Active), under the view's lock: fn must be quick.
func (s *BadgerLeases) eachActive(now time.Time, fn func(netip.Addr)) {
	t := now.UnixNano()
	s.memMu.RLock()
	defer s.memMu.RUnlock()
	for ip, ml := range s.mem.byIP {
		if ml.state != LeaseReleased && t < ml.expires {
			fn(netip.AddrFrom4(ip))
		}
	}
}

// memLeaseTx reads the committed leases; it refuses writes.
type memLeaseTx struct{ m leaseTable }

func (t memLeaseTx) Get(ip netip.Addr) (Lease, bool, error) { l, ok := t.m.get(ip); return l, ok, nil }

func (t memLeaseTx) ByMAC(mac net.HardwareAddr) (netip.Addr, bool, error) {
	ip, ok := t.m.mac(mac)
	return ip, ok, nil
}

func (t memLeaseTx) Put(l Lease) error {
	return fmt.Errorf("dhcp: store lease for %s: read-only transaction", l.IP)
}

// Each visits the leases in no particular order.
func (t memLeaseTx) Each(fn func(Lease) error) error { return t.m.each(fn, nil) }

// groupTx is a group's changes over the committed leases: what the ops
// before the current one wrote, and the Badger writes that make them.
type groupTx struct {
	s *BadgerLeases
	leaseTable
	writes []kv
}

type kv struct{ key, val []byte }

// stage runs op over the group; its writes join the group only if it
// succeeds.
func (g *groupTx) stage(op *leaseOp) error {
	if err := op.ctx.Err(); err != nil {
		return fmt.Errorf("dhcp: lease update: %w", err)
	}
	st := &stagedLeaseTx{base: g}
	if err := op.run(st); err != nil {
		return err
	}
	for _, l := range st.puts {
		g.put(l)
	}
	return nil
}

func (g *groupTx) get(ip netip.Addr) (Lease, bool) {
	if l, ok := g.leaseTable.get(ip); ok {
		return l, true
	}
	return g.s.mem.get(ip)
}

func (g *groupTx) mac(mac net.HardwareAddr) (netip.Addr, bool) {
	if ip, ok := g.leaseTable.mac(mac); ok {
		return ip, true
	}
	return g.s.mem.mac(mac)
}

// put records l and, unless it is an offer, its Badger writes. A
// renewal leaves the MAC index as it is: it is not written again.
func (g *groupTx) put(l Lease) {
	g.set(l)
	if l.State == LeaseOffered {
		return
	}
	g.writes = append(g.writes, kv{ipKey(l.IP), encodeLease(l)})
	if len(l.MAC) == 6 {
		if prev, ok := g.stored(l.MAC); !ok || prev != l.IP {
			a := l.IP.As4()
			g.writes = append(g.writes, kv{append(slices.Clip(leaseMACPrefix), l.MAC...), a[:]})
			g.storedMAC[[6]byte(l.MAC)] = l.IP.As4()
		}
	}
}

// stored is the MAC index entry as Badger holds it after the group.
func (g *groupTx) stored(mac net.HardwareAddr) (netip.Addr, bool) {
	if ip, ok := g.storedMAC[[6]byte(mac)]; ok {
		return netip.AddrFrom4(ip), true
	}
	ip, ok := g.s.mem.storedMAC[[6]byte(mac)]
	return netip.AddrFrom4(ip), ok
}

// stagedLeaseTx is one op's view inside a group: its own Puts are held
// back until it succeeds, and its reads see them first, then what the
// ops before it in the group wrote, then the committed leases.
type stagedLeaseTx struct {
	base *groupTx
	puts []Lease
}

func (t *stagedLeaseTx) Get(ip netip.Addr) (Lease, bool, error) {
	for i := len(t.puts) - 1; i >= 0; i-- {
		if t.puts[i].IP == ip {
			return t.puts[i], true, nil
		}
	}
	l, ok := t.base.get(ip)
	return l, ok, nil
}

func (t *stagedLeaseTx) ByMAC(mac net.HardwareAddr) (netip.Addr, bool, error) {
	for i := len(t.puts) - 1; i >= 0; i-- {
		if macEqual(t.puts[i].MAC, mac) {
			return t.puts[i].IP, true, nil
		}
	}
	ip, ok := t.base.mac(mac)
	return ip, ok, nil
}

func (t *stagedLeaseTx) Put(l Lease) error {
	if err := checkLease(l); err != nil {
		return err
	}
	l.MAC = slices.Clone(l.MAC)
	t.puts = append(t.puts, l)
	return nil
}

// Each visits the committed leases and the group's earlier ops' (not this
// op's own staged Puts: it is for read-only use), in no particular order.
func (t *stagedLeaseTx) Each(fn func(Lease) error) error {
	if err := t.base.each(fn, nil); err != nil {
		return err
	}
	return t.base.s.mem.each(fn, func(ip [4]byte) bool { _, shadowed := t.base.byIP[ip]; return shadowed })
}

// checkLease rejects what the encoding cannot hold.
func checkLease(l Lease) error {
	if !l.IP.Is4() {
		return fmt.Errorf("dhcp: store lease: %v is not an IPv4 address", l.IP)
	}
	if len(l.MAC) != 0 && len(l.MAC) != 6 {
		return fmt.Errorf("dhcp: store lease for %s: MAC %s is not 6 bytes", l.IP, l.MAC)
	}
	return nil
}

func ipKey(ip netip.Addr) []byte {
	a := ip.As4()
	return append(slices.Clip(leaseIPPrefix), a[:]...)
}

// eachStoredLease visits the leases Badger holds, in address order: what
// OpenBadgerLeases loads.
func eachStoredLease(txn *badger.Txn, fn func(Lease) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = leaseIPPrefix
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		ip, ok := netip.AddrFromSlice(k[len(leaseIPPrefix):])
		if !ok {
			return fmt.Errorf("dhcp: lease key %q: bad address", k)
		}
		var l Lease
		if err := it.Item().Value(func(v []byte) (err error) { l, err = decodeLease(ip, v); return err }); err != nil {
			return err
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}
