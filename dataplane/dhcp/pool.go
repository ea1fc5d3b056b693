package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Pool is the address range this server hands out on one subnet, with the
// options its clients get (full DHCP mode).
type Pool struct {
	Network   netip.Prefix // the subnet, e.g. 10.0.0.0/24
	Start     netip.Addr   // first address handed out
	End       netip.Addr   // last address handed out (inclusive)
	Router    netip.Addr   // option 3; invalid: not sent
	DNS       []netip.Addr // option 6
	Domain    string       // option 15
	LeaseTime time.Duration
	// AllowedRelays are the relay agents (giaddr) whose requests this
	// pool serves; empty: none, only clients on the directly attached
	// subnet. giaddr is spoofable by anyone on a served segment.
	AllowedRelays []netip.Prefix
	// UnknownLeaseTime is the lease of a client the backend does not
	// know, until it is known; 0 or more than LeaseTime: LeaseTime.
	UnknownLeaseTime time.Duration
	// MaxUnknown caps the addresses unknown clients hold at once
	// (offered or bound); 0: no cap.
	MaxUnknown int
}

// PoolConfig is a pool as written in configuration files (YAML).
type PoolConfig struct {
	Network   string   `yaml:"network"`    // CIDR, e.g. 10.0.0.0/24
	Start     string   `yaml:"start"`      // first address of the range
	End       string   `yaml:"end"`        // last address of the range
	Router    string   `yaml:"router"`     // optional
	DNS       []string `yaml:"dns"`        // optional
	Domain    string   `yaml:"domain"`     // optional
	LeaseTime string   `yaml:"lease_time"` // Go duration; default 1h
	// AllowedRelays are relay addresses (or CIDRs) whose giaddr this pool
	// accepts; default none: relayed requests are dropped.
	AllowedRelays []string `yaml:"allowed_relays"`
	// UnknownLeaseTime is the lease of clients the backend does not know;
	// default 5m, at least 1m.
	UnknownLeaseTime string `yaml:"unknown_lease_time"`
	// MaxUnknownLeases caps the addresses unknown clients hold at once:
	// a count ("40"), a share of the range ("50%"), or "off"; default 50%.
	MaxUnknownLeases string `yaml:"max_unknown_leases"`
}

// Defaults of a PoolConfig.
const (
	DefaultLeaseTime        = time.Hour       // lease_time
	DefaultUnknownLeaseTime = 5 * time.Minute // unknown_lease_time
	DefaultMaxUnknownShare  = 50              // max_unknown_leases, percent of the range
)

// NewPools validates pool configs; each mistake is reported with the entry
// and the value at fault.
func NewPools(cfgs []PoolConfig) ([]Pool, error) {
	var errs []error
	pools := make([]Pool, 0, len(cfgs))
	for i, c := range cfgs {
		p, err := newPool(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("dhcp: pools[%d] (%s): %w", i, c.Network, err))
			continue
		}
		for j, q := range pools {
			if q.Network.Overlaps(p.Network) {
				errs = append(errs, fmt.Errorf("dhcp: pools[%d] (%s): overlaps pools[%d] (%s)", i, c.Network, j, q.Network))
			}
		}
		pools = append(pools, p)
	}
	return pools, errors.Join(errs...)
}

func newPool(c PoolConfig) (Pool, error) {
	var p Pool
	var errs []error
	net, err := netip.ParsePrefix(c.Network)
	if err != nil || !net.Addr().Is4() {
		return p, fmt.Errorf("network %q is not an IPv4 CIDR like 10.0.0.0/24", c.Network)
	}
	p.Network = net.Masked()
	addr := func(what, s string, optional bool) netip.Addr {
		if s == "" && optional {
			return netip.Addr{}
		}
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			errs = append(errs, fmt.Errorf("%s %q is not an IPv4 address", what, s))
			return netip.Addr{}
		}
		if !p.Network.Contains(a) {
			errs = append(errs, fmt.Errorf("%s %s is outside the network", what, a))
		}
		return a
	}
	p.Start = addr("start", c.Start, false)
	p.End = addr("end", c.End, false)
	p.Router = addr("router", c.Router, true)
	if p.Start.IsValid() && p.End.IsValid() && p.End.Less(p.Start) {
		errs = append(errs, fmt.Errorf("end %s is before start %s", p.End, p.Start))
	}
	for _, s := range c.DNS {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			errs = append(errs, fmt.Errorf("dns %q is not an IPv4 address", s))
			continue
		}
		p.DNS = append(p.DNS, a)
	}
	p.Domain = c.Domain
	p.LeaseTime = DefaultLeaseTime
	if c.LeaseTime != "" {
		d, err := time.ParseDuration(c.LeaseTime)
		if err != nil || d < time.Minute {
			errs = append(errs, fmt.Errorf("lease_time %q is not a duration of at least 1m", c.LeaseTime))
		} else {
			p.LeaseTime = d
		}
	}
	for i, s := range c.AllowedRelays {
		r, err := parseRelay(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("allowed_relays[%d]: %w", i, err))
			continue
		}
		p.AllowedRelays = append(p.AllowedRelays, r)
	}
	p.UnknownLeaseTime = DefaultUnknownLeaseTime
	if c.UnknownLeaseTime != "" {
		d, err := time.ParseDuration(c.UnknownLeaseTime)
		if err != nil || d < time.Minute {
			errs = append(errs, fmt.Errorf("unknown_lease_time %q is not a duration of at least 1m", c.UnknownLeaseTime))
		} else {
			p.UnknownLeaseTime = d
		}
	}
	if p.Start.IsValid() && p.End.IsValid() && !p.End.Less(p.Start) {
		n, err := maxUnknown(c.MaxUnknownLeases, p.Size())
		if err != nil {
			errs = append(errs, err)
		}
		p.MaxUnknown = n
	}
	return p, errors.Join(errs...)
}

// parseRelay reads an allowed relay: an IPv4 address or CIDR.
func parseRelay(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		return netip.PrefixFrom(a, 32), nil
	}
	if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is4() {
		return p.Masked(), nil
	}
	return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 address or CIDR", s)
}

// maxUnknown reads max_unknown_leases for a range of size addresses: a
// count, a share ("50%"), "off" (0: no cap); empty: DefaultMaxUnknownShare.
func maxUnknown(s string, size int) (int, error) {
	bad := fmt.Errorf("max_unknown_leases %q is not a count of at least 1, a share like 50%%, or off", s)
	switch {
	case s == "off":
		return 0, nil
	case s == "":
		return max(1, size*DefaultMaxUnknownShare/100), nil
	case strings.HasSuffix(s, "%"):
		pct, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
		if err != nil || pct < 1 || pct > 100 {
			return 0, bad
		}
		return max(1, size*pct/100), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, bad
	}
	return n, nil
}

// Size is the number of addresses in the range.
func (p Pool) Size() int {
	s, e := p.Start.As4(), p.End.As4()
	return int(binary.BigEndian.Uint32(e[:])-binary.BigEndian.Uint32(s[:])) + 1
}

// RelayAllowed reports whether the pool serves requests relayed by giaddr.
func (p Pool) RelayAllowed(giaddr netip.Addr) bool {
	for _, r := range p.AllowedRelays {
		if r.Contains(giaddr) {
			return true
		}
	}
	return false
}

// leaseTime is the lease a client gets: the unknown lease time until the
// backend knows it.
func (p Pool) leaseTime(known bool) time.Duration {
	if !known && p.UnknownLeaseTime > 0 && p.UnknownLeaseTime < p.LeaseTime {
		return p.UnknownLeaseTime
	}
	return p.LeaseTime
}

// InRange reports whether a is one of the addresses the pool hands out.
func (p Pool) InRange(a netip.Addr) bool {
	return a.IsValid() && !a.Less(p.Start) && !p.End.Less(a)
}

// SelectPool picks the pool for a request: the one whose subnet contains
// giaddr when a relay forwarded it (RFC 2131 §4.3.1), else the one holding
// local (ciaddr of a renewing client, or our address on the receiving
// interface).
func SelectPool(pools []Pool, giaddr, local netip.Addr) (Pool, bool) {
	want := local
	if giaddr.IsValid() && !giaddr.IsUnspecified() {
		want = giaddr
	}
	for _, p := range pools {
		if p.Network.Contains(want) {
			return p, true
		}
	}
	return Pool{}, false
}
