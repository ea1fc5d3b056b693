package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"osim/internal/clock"
)

// Mode is how the service answers on port 67.
type Mode uint8

// Modes. The zero value is proxy mode.
const (
	ModeProxy Mode = iota // proxyDHCP: PXE boot answers only, next to the site's DHCP server
	ModeFull              // the only DHCP server: addresses from Pools, plus the boot answer for PXE clients
)

func (m Mode) String() string {
	if m == ModeFull {
		return "full"
	}
	return "proxy"
}

// ParseMode reads a mode name as written in configuration files.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "proxy":
		return ModeProxy, nil
	case "full":
		return ModeFull, nil
	}
	return 0, fmt.Errorf("dhcp: unknown mode %q (want proxy or full)", s)
}

// Outcomes of full mode.
const (
	OutcomeLeaseOffer    Outcome = "lease_offer"    // DHCPOFFER with an address
	OutcomeLeaseAck      Outcome = "lease_ack"      // DHCPACK: lease bound or extended
	OutcomeLeaseNak      Outcome = "lease_nak"      // DHCPNAK: the client's notion of its address is wrong
	OutcomeInform        Outcome = "inform"         // DHCPACK to DHCPINFORM: options only
	OutcomeDeclined      Outcome = "declined"       // DHCPDECLINE: address quarantined (no reply)
	OutcomeReleased      Outcome = "released"       // DHCPRELEASE: address freed (no reply)
	OutcomeNoPool        Outcome = "no_pool"        // no pool serves the client's subnet
	OutcomePoolExhausted Outcome = "pool_exhausted" // no free address for a DISCOVER
	OutcomeOtherServer   Outcome = "other_server"   // REQUEST selecting another server's offer
	OutcomeNoLease       Outcome = "no_lease"       // REQUEST/RELEASE/DECLINE for an address we hold no record of for this client
	OutcomeLeaseError    Outcome = "lease_error"    // the lease store failed
	OutcomeLeaseKept     Outcome = "lease_kept"     // DHCPACK for the time a lease has left: the disk is too full to extend it
	OutcomeDiskFull      Outcome = "disk_full"      // a new lease not given: the data dir is too full to store it
	// Refusals: dropped before anything is allocated, counted by reason
	// in osim_dhcp_refused_total.
	OutcomeRelayNotAllowed Outcome = "relay_not_allowed" // giaddr not in the pool's allowed_relays
	OutcomeUnknownCap      Outcome = "unknown_cap"       // unknown clients hold the pool's max_unknown_leases
)

// ErrPoolExhausted reports that a pool has no free address.
var ErrPoolExhausted = errors.New("pool exhausted")

// Defaults of Full.
const (
	DefaultOfferHold   = 30 * time.Second
	DefaultDeclineHold = 10 * time.Minute
)

// Full hands out addresses from Pools, keeping leases in Leases. Its
// methods are safe for concurrent use: every change is one store
// transaction.
type Full struct {
	Pools       []Pool
	Leases      LeaseStore
	Clock       clock.Clock   // lease times; nil: the system clock
	OfferHold   time.Duration // how long an offered address waits for its REQUEST; 0: DefaultOfferHold
	DeclineHold time.Duration // quarantine of a declined address; 0: DefaultDeclineHold
	Metrics     *LeaseMetrics // nil: not counted

	// cursors remember, per pool (keyed by its first address), where the
	// search for a free address resumes: just after the last one handed
	// out. Walking from the start of the range each time cost the k-th
	// new client k lease reads (8 ms a DISCOVER at 2,000 clients).
	curMu   sync.Mutex
	cursors map[netip.Addr]netip.Addr

	unknown unknownHolds
}

// cursor is where the search for a free address in p starts.
func (f *Full) cursor(p Pool) netip.Addr {
	f.curMu.Lock()
	defer f.curMu.Unlock()
	if c, ok := f.cursors[p.Start]; ok && p.InRange(c) {
		return c
	}
	return p.Start
}

// advance moves p's cursor past ip, wrapping at the end of the range.
func (f *Full) advance(p Pool, ip netip.Addr) {
	next := ip.Next()
	if !p.InRange(next) {
		next = p.Start
	}
	f.curMu.Lock()
	defer f.curMu.Unlock()
	if f.cursors == nil {
		f.cursors = map[netip.Addr]netip.Addr{}
	}
	f.cursors[p.Start] = next
}

func (f *Full) now() time.Time {
	if f.Clock != nil {
		return f.Clock.Now()
	}
	return time.Now()
}

// Respond answers one request in full mode: req arrived on in; peer is what
// the backend said of its MAC. A nil reply with a non-replied Outcome means
// silence; err explains OutcomeLeaseError, OutcomePoolExhausted and
// OutcomeUnknownCap.
func (f *Full) Respond(ctx context.Context, req *dhcpv4.DHCPv4, in Inbound, peer Peer) (*dhcpv4.DHCPv4, Outcome, error) {
	server := addr4(in.ServerIP)
	local := server
	if ci := addr4(req.ClientIPAddr); ci.IsValid() && !ci.IsUnspecified() {
		local = ci // a bound client (RENEW, INFORM, RELEASE) says where it is
	}
	pool, ok := SelectPool(f.Pools, addr4(req.GatewayIPAddr), local)
	if !ok {
		return nil, OutcomeNoPool, nil
	}
	// A relayed request from a relay the pool does not name is dropped
	// before any lease is read or written: giaddr is whatever the
	// sender wrote, and the replies go to giaddr, never to the sender.
	if gi := addr4(req.GatewayIPAddr); gi.IsValid() && !gi.IsUnspecified() && !pool.RelayAllowed(gi) {
		f.Metrics.count(OutcomeRelayNotAllowed, pool)
		return nil, OutcomeRelayNotAllowed, nil
	}
	t := fullTxn{f: f, req: req, pool: pool, server: server, mac: req.ClientHWAddr, now: f.now(), known: peer.Known}
	var (
		reply *dhcpv4.DHCPv4
		o     Outcome
		err   error
	)
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		reply, o, err = t.discover(ctx, peer.Reserved)
	case dhcpv4.MessageTypeRequest:
		reply, o, err = t.request(ctx, in.ServerIP)
	case dhcpv4.MessageTypeDecline:
		o, err = t.decline(ctx)
	case dhcpv4.MessageTypeRelease:
		o, err = t.release(ctx)
	case dhcpv4.MessageTypeInform:
		reply, o = t.reply(dhcpv4.MessageTypeInform, netip.Addr{}, 0), OutcomeInform
	default:
		return nil, OutcomeNotOurs, nil
	}
	if err != nil && o == "" {
		o = OutcomeLeaseError
	}
	if reply == nil && o.Replied() {
		o = OutcomeMalformed
	}
	f.Metrics.count(o, pool)
	return reply, o, err
}

// fullTxn is one request being answered.
type fullTxn struct {
	f      *Full
	req    *dhcpv4.DHCPv4
	pool   Pool
	server netip.Addr
	mac    net.HardwareAddr
	now    time.Time
	known  bool // the backend knows the client
}

// lease is the lease time t's client gets.
func (t fullTxn) lease() time.Duration { return t.pool.leaseTime(t.known) }

// track records who holds ip until expires: an unknown client counts
// against the pool's cap, a known one (perhaps just become known) not.
func (t fullTxn) track(ip netip.Addr, expires time.Time) {
	if t.known {
		t.f.unknown.drop(ip)
		return
	}
	t.f.unknown.hold(t.pool, ip, expires)
}

// capped reports whether an unknown client may not take ip: the pool's
// unknown clients hold MaxUnknown addresses, and ip is not already this
// client's (its own lease is renewed or offered again whatever the cap).
func (t fullTxn) capped(tx LeaseTx, ip netip.Addr) (bool, error) {
	if t.known || t.pool.MaxUnknown <= 0 {
		return false, nil
	}
	l, ok, err := tx.Get(ip)
	if err != nil {
		return false, err
	}
	if ok && macEqual(l.MAC, t.mac) && l.State != LeaseDeclined && l.Active(t.now) {
		return false, nil
	}
	return t.f.unknown.count(t.pool, t.now) >= t.pool.MaxUnknown, nil
}

// usable reports whether ip may be given to t.mac: no record, a record of
// this client (not declined), or a record that has expired.
func (t fullTxn) usable(tx LeaseTx, ip netip.Addr) (bool, error) {
	l, ok, err := tx.Get(ip)
	if err != nil || !ok {
		return err == nil, err
	}
	if l.State == LeaseDeclined {
		return !t.now.Before(l.Expires), nil
	}
	return macEqual(l.MAC, t.mac) || !l.Active(t.now), nil
}

// pick chooses the address to offer: the reservation, else the client's
// previous address, else the one it asks for (option 50), else a free
// address of the range (RFC 2131 §4.3.1): the next one after the last
// handed out, wrapping around once, so a burst of new clients costs about
// one lease read each.
func (t fullTxn) pick(tx LeaseTx, reserved netip.Addr) (netip.Addr, error) {
	dynamic := func(ip netip.Addr) bool {
		return t.pool.InRange(ip) && ip != t.server && ip != t.pool.Router
	}
	var candidates []netip.Addr
	if reserved.IsValid() && t.pool.Network.Contains(reserved) {
		candidates = append(candidates, reserved)
	}
	prev, ok, err := tx.ByMAC(t.mac)
	if err != nil {
		return netip.Addr{}, err
	}
	if ok && dynamic(prev) {
		candidates = append(candidates, prev)
	}
	if want := addr4(t.req.RequestedIPAddress()); dynamic(want) {
		candidates = append(candidates, want)
	}
	for _, ip := range candidates {
		if free, err := t.usable(tx, ip); err != nil || free {
			return ip, err
		}
	}
	start := t.f.cursor(t.pool)
	for ip := start; ; {
		if dynamic(ip) {
			free, err := t.usable(tx, ip)
			if err != nil {
				return netip.Addr{}, err
			}
			if free {
				t.f.advance(t.pool, ip)
				return ip, nil
			}
		}
		if ip = ip.Next(); !t.pool.InRange(ip) {
			ip = t.pool.Start
		}
		if ip == start {
			break
		}
	}
	return netip.Addr{}, fmt.Errorf("dhcp: no address for %s in %s (%s-%s): %w", t.mac, t.pool.Network, t.pool.Start, t.pool.End, ErrPoolExhausted)
}

func (t fullTxn) discover(ctx context.Context, reserved netip.Addr) (*dhcpv4.DHCPv4, Outcome, error) {
	var ip netip.Addr
	// An offer is held in memory, but the REQUEST that takes it must be
	// stored: while the disk is too full for that, offer nothing new.
	if err := storeRoom(t.f.Leases); err != nil {
		held := false
		_ = t.f.Leases.View(func(tx LeaseTx) error {
			if prev, ok, _ := tx.ByMAC(t.mac); ok {
				l, ok, _ := tx.Get(prev)
				held = ok && l.State == LeaseBound && l.Active(t.now) && macEqual(l.MAC, t.mac)
				ip = prev
			}
			return nil
		})
		if !held {
			return nil, OutcomeDiskFull, err
		}
	}
	err := t.f.Leases.Update(ctx, func(tx LeaseTx) error {
		var err error
		if ip, err = t.pick(tx, reserved); err != nil {
			return err
		}
		if capped, err := t.capped(tx, ip); err != nil || capped {
			if capped {
				err = fmt.Errorf("dhcp: %s in %s: %d addresses held by unknown clients: %w", t.mac, t.pool.Network, t.pool.MaxUnknown, ErrUnknownCap)
			}
			return err
		}
		l, ok, err := tx.Get(ip)
		if err != nil {
			return err
		}
		if ok && l.State == LeaseBound && l.Active(t.now) && macEqual(l.MAC, t.mac) {
			t.track(ip, l.Expires) // an unknown one counted again after a restart
			return nil             // already the client's: the offer changes nothing
		}
		expires := t.now.Add(hold(t.f.OfferHold, DefaultOfferHold))
		t.track(ip, expires)
		return tx.Put(Lease{IP: ip, MAC: t.mac, State: LeaseOffered, Expires: expires})
	})
	switch {
	case errors.Is(err, ErrPoolExhausted):
		return nil, OutcomePoolExhausted, err
	case errors.Is(err, ErrUnknownCap):
		return nil, OutcomeUnknownCap, err
	case err != nil:
		if ip.IsValid() && !t.known {
			t.f.unknown.drop(ip) // nothing was offered
		}
		return nil, OutcomeLeaseError, err
	}
	return t.reply(dhcpv4.MessageTypeOffer, ip, t.lease()), OutcomeLeaseOffer, nil
}

// request answers a DHCPREQUEST in its four states (RFC 2131 §4.3.2).
func (t fullTxn) request(ctx context.Context, serverIP net.IP) (*dhcpv4.DHCPv4, Outcome, error) {
	sid, want := t.req.ServerIdentifier(), addr4(t.req.RequestedIPAddress())
	ciaddr := addr4(t.req.ClientIPAddr)
	if ciaddr.IsUnspecified() {
		ciaddr = netip.Addr{}
	}
	var ip netip.Addr
	switch {
	case sid != nil && !sid.Equal(serverIP):
		// SELECTING another server's offer: let ours go.
		err := t.f.Leases.Update(ctx, func(tx LeaseTx) error {
			prev, ok, err := tx.ByMAC(t.mac)
			if err != nil || !ok {
				return err
			}
			l, ok, err := tx.Get(prev)
			if err != nil || !ok || l.State != LeaseOffered || !macEqual(l.MAC, t.mac) {
				return err
			}
			l.Expires = t.now // an expired offer: free, and like every offer never written
			t.f.unknown.drop(prev)
			return tx.Put(l)
		})
		if err != nil {
			return nil, OutcomeLeaseError, err
		}
		return nil, OutcomeOtherServer, nil
	case sid != nil && !want.IsValid():
		return t.nak("selecting without a requested address"), OutcomeLeaseNak, nil
	case sid != nil: // SELECTING our offer: option 50 must name it
		ip = want
	case want.IsValid(): // INIT-REBOOT
		ip = want
	case ciaddr.IsValid(): // RENEWING or REBINDING
		ip = ciaddr
	default:
		return t.nak("no requested address"), OutcomeLeaseNak, nil
	}
	if !t.pool.Network.Contains(ip) {
		return t.nak(fmt.Sprintf("%s is not on network %s", ip, t.pool.Network)), OutcomeLeaseNak, nil
	}
	var (
		o    Outcome
		why  string
		held Lease // the client's lease as it was, if bound and running
	)
	err := t.f.Leases.Update(ctx, func(tx LeaseTx) error {
		o, why, held = "", "", Lease{}
		l, ok, err := tx.Get(ip)
		if err != nil {
			return err
		}
		if ok && l.State == LeaseBound && macEqual(l.MAC, t.mac) && l.Active(t.now) {
			held = l
		}
		switch {
		case !ok && sid != nil:
			o, why = OutcomeLeaseNak, fmt.Sprintf("%s was not offered to you", ip)
		case !ok: // RFC 2131 §4.3.2: no record of this client, remain silent
			o = OutcomeNoLease
			return nil
		case !macEqual(l.MAC, t.mac) || l.State == LeaseDeclined:
			if sid == nil && !l.Active(t.now) {
				o = OutcomeNoLease // not ours to confirm or deny
				return nil
			}
			o, why = OutcomeLeaseNak, fmt.Sprintf("%s is leased to another client", ip)
		}
		if o != "" {
			return nil
		}
		o = OutcomeLeaseAck
		expires := t.now.Add(t.lease())
		t.track(ip, expires)
		return tx.Put(Lease{IP: ip, MAC: t.mac, State: LeaseBound, Expires: expires})
	})
	switch {
	case errors.Is(err, ErrNoSpace) && held.IP.IsValid():
		// The disk is too full to extend it: confirm what the client
		// already holds, for the time it has left, and write nothing.
		return t.reply(dhcpv4.MessageTypeAck, ip, held.Expires.Sub(t.now).Truncate(time.Second)), OutcomeLeaseKept, nil
	case errors.Is(err, ErrNoSpace):
		return nil, OutcomeDiskFull, err
	case err != nil:
		return nil, OutcomeLeaseError, err
	case o == OutcomeLeaseNak:
		return t.nak(why), o, nil
	case o == OutcomeLeaseAck:
		return t.reply(dhcpv4.MessageTypeAck, ip, t.lease()), o, nil
	}
	return nil, o, nil
}

// decline quarantines the address the client found in use (RFC 2131 §4.3.3).
func (t fullTxn) decline(ctx context.Context) (Outcome, error) {
	ip := addr4(t.req.RequestedIPAddress())
	if !t.pool.Network.Contains(ip) {
		return OutcomeNoLease, nil
	}
	o := OutcomeNoLease
	err := t.f.Leases.Update(ctx, func(tx LeaseTx) error {
		o = OutcomeNoLease
		l, ok, err := tx.Get(ip)
		if err != nil || (ok && !macEqual(l.MAC, t.mac)) {
			return err // another client's address: a stray or forged DECLINE
		}
		o = OutcomeDeclined
		t.f.unknown.drop(ip)
		return tx.Put(Lease{IP: ip, State: LeaseDeclined, Expires: t.now.Add(hold(t.f.DeclineHold, DefaultDeclineHold))})
	})
	if err != nil {
		return OutcomeLeaseError, err
	}
	return o, nil
}

// release frees the client's address (RFC 2131 §4.3.4); the record stays
// so the client gets the same address again if it is still free.
func (t fullTxn) release(ctx context.Context) (Outcome, error) {
	ip := addr4(t.req.ClientIPAddr)
	o := OutcomeNoLease
	err := t.f.Leases.Update(ctx, func(tx LeaseTx) error {
		o = OutcomeNoLease
		l, ok, err := tx.Get(ip)
		if err != nil || !ok || !macEqual(l.MAC, t.mac) || l.State == LeaseDeclined {
			return err
		}
		o = OutcomeReleased
		t.f.unknown.drop(ip)
		if l.State == LeaseOffered {
			l.Expires = t.now // only ever offered: let the offer lapse, nothing to store
		} else {
			l.State, l.Expires = LeaseReleased, t.now
		}
		return tx.Put(l)
	})
	if err != nil {
		return OutcomeLeaseError, err
	}
	return o, nil
}

// reply builds an OFFER or ACK (mt Inform: the ACK to an INFORM) for yiaddr
// with the pool's options (RFC 2131 §4.3.1 table 3, RFC 2132).
func (t fullTxn) reply(mt dhcpv4.MessageType, yiaddr netip.Addr, lease time.Duration) *dhcpv4.DHCPv4 {
	ciaddr := net.IPv4zero
	yi := net.IPv4zero
	if mt == dhcpv4.MessageTypeInform {
		mt, ciaddr = dhcpv4.MessageTypeAck, t.req.ClientIPAddr // RFC 2131 §4.3.5: no yiaddr, no lease time
	} else {
		yi = yiaddr.AsSlice()
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithYourIP(yi),
		dhcpv4.WithClientIP(ciaddr),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(t.server.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(t.pool.Network.Bits(), 32))),
	}
	if t.pool.Router.IsValid() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(t.pool.Router.AsSlice())))
	}
	if len(t.pool.DNS) > 0 {
		dns := make([]net.IP, len(t.pool.DNS))
		for i, a := range t.pool.DNS {
			dns[i] = a.AsSlice()
		}
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDNS(dns...)))
	}
	if t.pool.Domain != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainName(t.pool.Domain)))
	}
	if lease > 0 { // RFC 2131 §4.4.5: T1 0.5 and T2 0.875 of the lease
		mods = append(mods,
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(lease)),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(lease/2)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(lease*7/8)))
	}
	return newReply(t.req, mods...)
}

// nak builds a DHCPNAK (RFC 2131 §4.3.2, table 3): no addresses, option 54
// and a message. Through a relay the broadcast bit is set (§4.1).
func (t fullTxn) nak(why string) *dhcpv4.DHCPv4 {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithYourIP(net.IPv4zero),
		dhcpv4.WithClientIP(net.IPv4zero),
		dhcpv4.WithServerIP(net.IPv4zero),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(t.server.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptMessage(why)),
	}
	if gi := addr4(t.req.GatewayIPAddr); gi.IsValid() && !gi.IsUnspecified() {
		mods = append(mods, dhcpv4.WithBroadcast(true))
	}
	return newReply(t.req, mods...)
}

func hold(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// addr4 converts a packet address; invalid if absent or not IPv4.
func addr4(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok {
		return netip.Addr{}
	}
	return a
}

func macEqual(a, b net.HardwareAddr) bool { return len(a) > 0 && string(a) == string(b) }
