package dhcp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// LeaseState is where an address stands in its lease's life.
type LeaseState uint8

// Lease states. An expired lease in any state frees its address.
const (
	LeaseOffered  LeaseState = iota + 1 // held for a client between OFFER and REQUEST
	LeaseBound                          // ACKed: the client uses it until Expires
	LeaseDeclined                       // a client found it in use (DHCPDECLINE): quarantined until Expires
	LeaseReleased                       // the client gave it back; kept so the client gets it again
)

var leaseStateNames = map[LeaseState]string{
	LeaseOffered: "offered", LeaseBound: "bound", LeaseDeclined: "declined", LeaseReleased: "released",
}

func (s LeaseState) String() string {
	if n, ok := leaseStateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state-%d", uint8(s))
}

// Lease is the record of one address.
type Lease struct {
	IP      netip.Addr
	MAC     net.HardwareAddr // nil for a declined address
	State   LeaseState
	Expires time.Time
}

// Active reports whether the lease still holds its address at now.
func (l Lease) Active(now time.Time) bool {
	return l.State != LeaseReleased && now.Before(l.Expires)
}

// LeaseStore keeps leases. It is this package's seam: BadgerLeases keeps
// them under the key prefix "lease/" of the process's Badger database.
type LeaseStore interface {
	// Update runs fn in one atomic transaction, isolated from the other
	// updates. fn may run more than once (BadgerLeases runs it again alone
	// when the commit of the group it was in failed), so it must have no
	// effects outside tx.
	Update(ctx context.Context, fn func(LeaseTx) error) error
	// View runs fn on a consistent read-only view. fn must not call
	// Update (BadgerLeases holds the view's lock while fn runs) and
	// should be quick: updates wait for it.
	View(fn func(LeaseTx) error) error
}

// LeaseTx is one transaction on a LeaseStore.
type LeaseTx interface {
	// Get returns the lease on ip; ok is false if there is none.
	Get(ip netip.Addr) (l Lease, ok bool, err error)
	// ByMAC returns the address last leased to mac; the lease on it may
	// since have gone to another client, so check Get(ip).MAC.
	ByMAC(mac net.HardwareAddr) (ip netip.Addr, ok bool, err error)
	// Put stores l, and indexes it by MAC when it has one.
	Put(l Lease) error
	// Each calls fn for every lease (read-only use; not conflict-tracked).
	Each(fn func(Lease) error) error
}

// leaseVersion is the first byte of an encoded lease.
const leaseVersion = 1

// encodeLease: version, state, expiry (Unix ns, big endian), MAC (0 or 6 bytes).
// The address is in the key.
func encodeLease(l Lease) []byte {
	b := make([]byte, 10, 16)
	b[0], b[1] = leaseVersion, byte(l.State)
	binary.BigEndian.PutUint64(b[2:], uint64(l.Expires.UnixNano()))
	return append(b, l.MAC...)
}

func decodeLease(ip netip.Addr, b []byte) (Lease, error) {
	if len(b) < 10 || b[0] != leaseVersion || (len(b) != 10 && len(b) != 16) {
		return Lease{}, fmt.Errorf("dhcp: lease for %s: bad record of %d bytes (version %d)", ip, len(b), firstByte(b))
	}
	l := Lease{IP: ip, State: LeaseState(b[1]), Expires: time.Unix(0, int64(binary.BigEndian.Uint64(b[2:])))}
	if _, ok := leaseStateNames[l.State]; !ok {
		return Lease{}, fmt.Errorf("dhcp: lease for %s: unknown state %d", ip, b[1])
	}
	if len(b) == 16 {
		l.MAC = net.HardwareAddr(append([]byte(nil), b[10:]...))
	}
	return l, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}
