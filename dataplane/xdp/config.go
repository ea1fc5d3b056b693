package xdp

import (
	"fmt"
	"net"
)

// Action is what happens to a class before any per-client check.
type Action uint8

// Actions.
const (
	ActionPass Action = iota
	ActionDrop
)

// Unknown is the policy for clients on neither list.
type Unknown uint8

// Policies for unknown clients; the values are the BPF program's.
const (
	UnknownPass      Unknown = iota // pass, under the admission limit
	UnknownDrop                     // drop their DHCP
	UnknownDiscovery                // pass their PXE, HTTP, iPXE and proxyDHCP requests only (discovery boot); drop other DHCP
)

var unknownNames = []string{"pass", "drop", "discovery"}

func (u Unknown) String() string {
	if int(u) < len(unknownNames) {
		return unknownNames[u]
	}
	return "invalid"
}

// check refuses a value that is none of the policies.
func (u Unknown) check() error {
	if u > UnknownDiscovery {
		return fmt.Errorf("xdp: unknown-client policy %d", u)
	}
	return nil
}

// ParseUnknown reads "pass", "drop" or "discovery".
func ParseUnknown(s string) (Unknown, error) {
	for i, n := range unknownNames {
		if n == s {
			return Unknown(i), nil
		}
	}
	return 0, fmt.Errorf("xdp: unknown-client policy %q: want pass, drop or discovery", s)
}

// MaxRate bounds Rate and AdmitRate: the token arithmetic (nanotokens in
// 64 bits, at most 1000 s of refill at once) must not overflow.
const MaxRate = 1_000_000

// Config is what both the BPF program and Classifier enforce.
type Config struct {
	Ports Ports
	// Actions per class; the zero value passes everything.
	Actions [NumClasses]Action
	Unknown Unknown
	// Rate and Burst: each client's (chaddr's) token bucket, packets per
	// second; Rate 0 turns per-client limits (and admission) off.
	Rate, Burst uint32
	// AdmitRate and AdmitBurst: how fast clients not yet in the bucket
	// table and not on the allow list get a bucket; 0: no limit. This is
	// what keeps a flood of random MACs from evicting real clients.
	AdmitRate, AdmitBurst uint32
	// Clients is the size of the bucket table (an LRU); 0: 65536.
	Clients int
	// PolicySize bounds the allow + deny lists; 0: 65536.
	PolicySize int
}

// DefaultConfig passes every class, answers unknown clients as
// discovery, lets each client send 10 DHCP packets at once and 2 per
// second after, and admits 100 new clients per second (bursts of 200).
func DefaultConfig() Config {
	return Config{Ports: DefaultPorts, Unknown: UnknownDiscovery, Rate: 2, Burst: 10, AdmitRate: 100, AdmitBurst: 200}
}

func (c *Config) validate() error {
	if c.Ports.DHCP == 0 || c.Ports.Proxy == 0 || c.Ports.TFTP == 0 {
		return fmt.Errorf("xdp: ports %+v: DHCP, proxyDHCP and TFTP ports are required", c.Ports)
	}
	if c.Ports.TFTPLow > c.Ports.TFTPHigh {
		return fmt.Errorf("xdp: TFTP transfer ports %d-%d: empty range", c.Ports.TFTPLow, c.Ports.TFTPHigh)
	}
	if c.Rate > MaxRate || c.AdmitRate > MaxRate {
		return fmt.Errorf("xdp: rate %d, admission rate %d: at most %d", c.Rate, c.AdmitRate, MaxRate)
	}
	if c.Rate > 0 && c.Burst == 0 {
		return fmt.Errorf("xdp: rate %d/s with burst 0: every client would be dropped", c.Rate)
	}
	if c.AdmitRate > 0 && c.AdmitBurst == 0 {
		return fmt.Errorf("xdp: admission rate %d/s with burst 0: no new client would be admitted", c.AdmitRate)
	}
	if err := c.Unknown.check(); err != nil {
		return err
	}
	if c.Clients <= 0 {
		c.Clients = 65536
	}
	if c.PolicySize <= 0 {
		c.PolicySize = 65536
	}
	return nil
}

// policy values, as in the BPF policy map.
const (
	policyAllow = 1
	policyDeny  = 2
)

func macKey(m net.HardwareAddr) ([6]byte, bool) {
	var k [6]byte
	if len(m) != 6 {
		return k, false
	}
	copy(k[:], m)
	return k, true
}
