package dhcp

import (
	"container/heap"
	"errors"
	"net/netip"
	"sync"
	"time"
)

// ErrUnknownCap reports that a pool's unknown clients already hold all the
// addresses they may (Pool.MaxUnknown).
var ErrUnknownCap = errors.New("unknown clients' address cap reached")

// Peer is what the backend said of a client, as full mode needs it.
type Peer struct {
	Reserved netip.Addr // the backend's address for the client; invalid: none
	// Known: the backend has a record of the client (a target). Unknown
	// clients get Pool.UnknownLeaseTime and count against Pool.MaxUnknown.
	Known bool
}

// unknownHolds are the addresses unknown clients hold (offered or bound),
// by pool, so a DISCOVER checks a pool's cap without reading its leases.
// They live in memory only: after a restart, an unknown client is counted
// again from its next DISCOVER or renewal, and the leases unknown clients
// took before are short (Pool.UnknownLeaseTime).
type unknownHolds struct {
	mu     sync.Mutex
	byIP   map[netip.Addr]unknownHold
	byPool map[netip.Addr]int // by the pool's first address
	expiry holdHeap           // one entry per hold made; stale ones skipped
}

type unknownHold struct {
	pool    netip.Addr
	expires time.Time
}

// count is the number of unexpired holds in pool p at now.
func (u *unknownHolds) count(p Pool, now time.Time) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pruneLocked(now)
	return u.byPool[p.Start]
}

// hold records that an unknown client holds ip of p until expires.
func (u *unknownHolds) hold(p Pool, ip netip.Addr, expires time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.byIP == nil {
		u.byIP, u.byPool = map[netip.Addr]unknownHold{}, map[netip.Addr]int{}
	}
	if h, ok := u.byIP[ip]; ok {
		u.byPool[h.pool]--
	}
	u.byIP[ip] = unknownHold{pool: p.Start, expires: expires}
	u.byPool[p.Start]++
	heap.Push(&u.expiry, holdEntry{ip: ip, expires: expires})
}

// drop forgets ip: released, declined, let go, or now a known client's.
func (u *unknownHolds) drop(ip netip.Addr) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.dropLocked(ip)
}

func (u *unknownHolds) dropLocked(ip netip.Addr) {
	if h, ok := u.byIP[ip]; ok {
		delete(u.byIP, ip)
		u.byPool[h.pool]--
	}
}

// pruneLocked drops the holds expired at now. Each hold made pushed one
// entry, so the heap is bounded by the holds made within the longest hold.
func (u *unknownHolds) pruneLocked(now time.Time) {
	for len(u.expiry) > 0 && !now.Before(u.expiry[0].expires) {
		e := heap.Pop(&u.expiry).(holdEntry)
		if h, ok := u.byIP[e.ip]; ok && !now.Before(h.expires) {
			u.dropLocked(e.ip)
		}
	}
}

type holdEntry struct {
	ip      netip.Addr
	expires time.Time
}

// holdHeap is a min-heap of hold expiries.
type holdHeap []holdEntry

func (h holdHeap) Len() int           { return len(h) }
func (h holdHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h holdHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *holdHeap) Push(x any)        { *h = append(*h, x.(holdEntry)) }
func (h *holdHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
