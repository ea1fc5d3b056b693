package httpboot

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// PXE is unauthenticated: anyone on the segment can GET /ipxe/<mac> and
// read the order's status token from the script. What can be bound is
// where the token is used from: a status report is accepted only from an
// address the order's target is known to hold (the address that first
// fetched the order's script here, its DHCP lease, its address in the
// MDB), when any is known.

// Target is what an OrderTargets backend knows of a live order's target.
type Target struct {
	// MACs are the target's MACs; with Config.Leases, their leases bind
	// the order's token.
	MACs []net.HardwareAddr
	// Addrs are addresses the target is known to hold (its fixed address
	// in the MDB).
	Addrs []netip.Addr
}

// OrderTargets tells who a live order's target is; ErrUnknownOrder for an
// order that is unknown or no longer live. Optional: Config.Targets, or
// the Tokens backend when it implements it too.
type OrderTargets interface {
	OrderTarget(ctx context.Context, order string) (Target, error)
}

// Leases tells which address a MAC holds a DHCP lease on (full DHCP mode);
// optional.
type Leases interface {
	LeasedAddr(ctx context.Context, mac net.HardwareAddr) (netip.Addr, bool)
}

// LeasesFunc adapts a function to Leases.
type LeasesFunc func(ctx context.Context, mac net.HardwareAddr) (netip.Addr, bool)

// LeasedAddr calls f.
func (f LeasesFunc) LeasedAddr(ctx context.Context, mac net.HardwareAddr) (netip.Addr, bool) {
	return f(ctx, mac)
}

// maxFetches bounds the script fetches remembered; only orders a backend
// answered with are recorded, so the live orders of one boot server fit.
const maxFetches = 1 << 17

// fetches remembers, per order, the address that first fetched its script
// with its current token (a retried order has a new token: a new binding).
// In memory only: after a restart the next fetch binds again.
type fetches struct {
	mu sync.Mutex
	m  map[string]fetch
}

type fetch struct {
	token string
	addr  netip.Addr
}

// record binds order's token to addr unless an address is already bound to
// that token: the first fetch wins, so a stranger fetching the script
// after the target did gains nothing.
func (f *fetches) record(order, token string, addr netip.Addr) {
	if !addr.IsValid() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]fetch{}
	}
	if old, ok := f.m[order]; ok && old.token == token {
		return
	}
	if len(f.m) >= maxFetches {
		for k := range f.m { // full: forget one (that order binds again on its next fetch)
			delete(f.m, k)
			break
		}
	}
	f.m[order] = fetch{token: token, addr: addr}
}

// addr is the address bound to order's token by a script fetch.
func (f *fetches) addr(order, token string) (netip.Addr, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fe, ok := f.m[order]
	if !ok || fe.token != token {
		return netip.Addr{}, false
	}
	return fe.addr, true
}

// boundAddrs lists the addresses order's token may be used from; empty when
// none is known (then the report is accepted and counted as unbound).
func (h *Handler) boundAddrs(ctx context.Context, order, token string) ([]netip.Addr, error) {
	var out []netip.Addr
	if a, ok := h.fetches.addr(order, token); ok {
		out = append(out, a)
	}
	if h.targets == nil {
		return out, nil
	}
	t, err := h.targets.OrderTarget(ctx, order)
	if err != nil {
		return nil, err
	}
	out = append(out, t.Addrs...)
	if h.leases != nil {
		for _, mac := range t.MACs {
			if a, ok := h.leases.LeasedAddr(ctx, mac); ok {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// clientAddr is the request's peer address without its port (IPv4-mapped
// addresses unmapped), or the zero Addr.
func clientAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// refusalLog lets one warn line per reason through per period and counts
// the rest, so a flood of bad tokens leaves a trace without flooding the log.
type refusalLog struct {
	mu         sync.Mutex
	period     time.Duration
	last       map[string]time.Time
	suppressed map[string]int
}

// allow reports whether a line for reason may be logged now, and how many
// were suppressed since the last one.
func (l *refusalLog) allow(reason string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.suppressed = map[string]time.Time{}, map[string]int{}
	}
	if last, ok := l.last[reason]; ok && now.Sub(last) < l.period {
		l.suppressed[reason]++
		return false, 0
	}
	n := l.suppressed[reason]
	l.last[reason], l.suppressed[reason] = now, 0
	return true, n
}
