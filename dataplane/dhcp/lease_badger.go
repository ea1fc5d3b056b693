package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Keys under this subsystem's prefix: "lease/ip/" + 4 address bytes → the
// encoded lease; "lease/mac/" + 6 MAC bytes → 4 address bytes.
var (
	leaseIPPrefix  = []byte("lease/ip/")
	leaseMACPrefix = []byte("lease/mac/")
)

// leaseRetries bounds how often Update reruns a transaction that lost a
// conflict.
const leaseRetries = 64

// BadgerLeases is a LeaseStore in a Badger database owned by the caller
// (one per process); it uses only keys under "lease/".
type BadgerLeases struct {
	db *badger.DB
	// mu serializes this store's read-write transactions: when thousands
	// of machines boot at once, each allocation would otherwise conflict
	// with most others and retry. Badger's conflict detection still covers
	// writers outside mu (another BadgerLeases on the same database).
	mu sync.Mutex
}

// NewBadgerLeases keeps leases in db.
func NewBadgerLeases(db *badger.DB) *BadgerLeases { return &BadgerLeases{db: db} }

// Update runs fn in a Badger read-write transaction, again when the commit
// reports a conflict (another transaction wrote a key fn read).
func (s *BadgerLeases) Update(ctx context.Context, fn func(LeaseTx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range leaseRetries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dhcp: lease update: %w", err)
		}
		err := s.db.Update(func(txn *badger.Txn) error { return fn(badgerLeaseTx{txn}) })
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("dhcp: lease update: still conflicting after %d attempts: %w", leaseRetries, badger.ErrConflict)
}

// View runs fn in a Badger read-only transaction.
func (s *BadgerLeases) View(fn func(LeaseTx) error) error {
	return s.db.View(func(txn *badger.Txn) error { return fn(badgerLeaseTx{txn}) })
}

type badgerLeaseTx struct{ txn *badger.Txn }

func ipKey(ip netip.Addr) []byte {
	a := ip.As4()
	return append(append([]byte(nil), leaseIPPrefix...), a[:]...)
}

func (t badgerLeaseTx) Get(ip netip.Addr) (Lease, bool, error) {
	item, err := t.txn.Get(ipKey(ip))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, fmt.Errorf("dhcp: read lease for %s: %w", ip, err)
	}
	var l Lease
	err = item.Value(func(v []byte) (err error) { l, err = decodeLease(ip, v); return err })
	return l, err == nil, err
}

func (t badgerLeaseTx) ByMAC(mac net.HardwareAddr) (netip.Addr, bool, error) {
	item, err := t.txn.Get(append(append([]byte(nil), leaseMACPrefix...), mac...))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return netip.Addr{}, false, nil
	}
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("dhcp: read lease index for %s: %w", mac, err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("dhcp: read lease index for %s: %w", mac, err)
	}
	ip, ok := netip.AddrFromSlice(v)
	if !ok || !ip.Is4() {
		return netip.Addr{}, false, fmt.Errorf("dhcp: lease index for %s: bad address of %d bytes", mac, len(v))
	}
	return ip, true, nil
}

func (t badgerLeaseTx) Put(l Lease) error {
	if !l.IP.Is4() {
		return fmt.Errorf("dhcp: store lease: %v is not an IPv4 address", l.IP)
	}
	if len(l.MAC) != 0 && len(l.MAC) != 6 {
		return fmt.Errorf("dhcp: store lease for %s: MAC %s is not 6 bytes", l.IP, l.MAC)
	}
	if err := t.txn.Set(ipKey(l.IP), encodeLease(l)); err != nil {
		return fmt.Errorf("dhcp: store lease for %s: %w", l.IP, err)
	}
	if len(l.MAC) == 6 {
		a := l.IP.As4()
		if err := t.txn.Set(append(append([]byte(nil), leaseMACPrefix...), l.MAC...), a[:]); err != nil {
			return fmt.Errorf("dhcp: store lease index for %s: %w", l.MAC, err)
		}
	}
	return nil
}

func (t badgerLeaseTx) Each(fn func(Lease) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = leaseIPPrefix
	it := t.txn.NewIterator(opts)
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
