package dhcp

import (
	"errors"
	"fmt"
	"net/netip"
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
}

// DefaultLeaseTime is a pool's lease time when its config names none.
const DefaultLeaseTime = time.Hour

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
	return p, errors.Join(errs...)
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
