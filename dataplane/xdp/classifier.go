package xdp

import (
	"container/list"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"osim/internal/clock"
)

// Token arithmetic shared with the BPF program (take in xdp_pxe.c).
const (
	nanos      = 1_000_000_000
	maxElapsed = 1000 * nanos
)

type bucket struct {
	tokens uint64 // in 1e-9 packets
	last   uint64 // clock at the last refill, ns
}

// take refills b for the time since its last refill and takes one token.
func (b *bucket) take(now, rate, burst uint64) bool {
	if now > b.last {
		el := min(now-b.last, maxElapsed)
		b.tokens = min(b.tokens+el*rate, burst*nanos)
		b.last = now
	}
	if b.tokens < nanos {
		return false
	}
	b.tokens -= nanos
	return true
}

// Classifier is the userspace twin of the BPF program: the same classes,
// policy, token buckets and admission limit, for when XDP does not attach.
// Safe for concurrent use.
type Classifier struct {
	// Clock is the time source (nil: the real clock); the buckets use
	// its Now's UnixNano.
	Clock clock.Clock

	ports Ports // cfg.Ports, which never change: read without the lock

	mu       sync.Mutex
	cfg      Config
	policy   map[[6]byte]uint8
	buckets  map[[6]byte]*list.Element // of *entry, most recent at the front
	lru      *list.List
	admit    bucket
	counters [NumClasses][NumVerdicts]struct{ packets, bytes atomic.Uint64 }
}

type entry struct {
	mac [6]byte
	b   bucket
}

// NewClassifier checks cfg and returns a Classifier with empty lists.
func NewClassifier(cfg Config) (*Classifier, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Classifier{ports: cfg.Ports, cfg: cfg, policy: map[[6]byte]uint8{}, buckets: map[[6]byte]*list.Element{}, lru: list.New()}, nil
}

// Frame classifies an Ethernet frame and judges it.
func (c *Classifier) Frame(f []byte) (Class, Verdict) {
	cls, mac, ok := ClassifyFrame(f, c.ports)
	return cls, c.judge(cls, mac, ok, len(f))
}

// Datagram classifies a UDP payload received on port dport and judges it.
func (c *Classifier) Datagram(b []byte, dport uint16) (Class, Verdict) {
	cls, mac, ok := ClassifyDatagram(b, dport, c.ports)
	return cls, c.judge(cls, mac, ok, len(b))
}

func (c *Classifier) config() Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

func (c *Classifier) now() uint64 {
	if c.Clock != nil {
		return uint64(c.Clock.Now().UnixNano())
	}
	return uint64(time.Now().UnixNano())
}

func (c *Classifier) judge(cls Class, mac [6]byte, hasMAC bool, n int) Verdict {
	c.mu.Lock()
	v := c.judgeLocked(cls, mac, hasMAC)
	c.mu.Unlock()
	ctr := &c.counters[cls][v]
	ctr.packets.Add(1)
	ctr.bytes.Add(uint64(n))
	return v
}

func (c *Classifier) judgeLocked(cls Class, mac [6]byte, hasMAC bool) Verdict {
	cfg := &c.cfg
	if cfg.Actions[cls] != ActionPass {
		return VerdictDropClass
	}
	if !hasMAC {
		return VerdictPass
	}
	allowed := false
	if p, ok := c.policy[mac]; ok {
		if p == policyDeny {
			return VerdictDropDeny
		}
		allowed = p == policyAllow
	} else if cfg.Unknown == UnknownDrop {
		return VerdictDropUnknown
	} else if cfg.Unknown == UnknownDiscovery && cls != ClassPXE && cls != ClassHTTP && cls != ClassIPXE && cls != ClassProxy {
		return VerdictDropUnknown
	}
	if cfg.Rate == 0 {
		return VerdictPass
	}
	now := c.now()
	if el, ok := c.buckets[mac]; ok {
		c.lru.MoveToFront(el)
		if el.Value.(*entry).b.take(now, uint64(cfg.Rate), uint64(cfg.Burst)) {
			return VerdictPass
		}
		return VerdictDropRate
	}
	if !allowed && cfg.AdmitRate != 0 && !c.admit.take(now, uint64(cfg.AdmitRate), uint64(cfg.AdmitBurst)) {
		return VerdictDropAdmission
	}
	if c.lru.Len() >= cfg.Clients {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.buckets, old.Value.(*entry).mac)
	}
	c.buckets[mac] = c.lru.PushFront(&entry{mac: mac, b: bucket{tokens: uint64(cfg.Burst-1) * nanos, last: now}})
	return VerdictPass
}

// SetPolicy replaces the allow and deny lists (a MAC on both is denied).
func (c *Classifier) SetPolicy(allow, deny []net.HardwareAddr) error {
	p, err := policyMap(allow, deny, c.config().PolicySize)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.policy = p
	c.mu.Unlock()
	return nil
}

// SetUnknown changes the policy for clients on neither list.
func (c *Classifier) SetUnknown(u Unknown) error {
	if err := u.check(); err != nil {
		return err
	}
	c.mu.Lock()
	c.cfg.Unknown = u
	c.mu.Unlock()
	return nil
}

// Counts returns packets and bytes per class and verdict.
func (c *Classifier) Counts() (packets, bytes [NumClasses][NumVerdicts]uint64) {
	for i := range c.counters {
		for j := range c.counters[i] {
			packets[i][j] = c.counters[i][j].packets.Load()
			bytes[i][j] = c.counters[i][j].bytes.Load()
		}
	}
	return packets, bytes
}

func (c *Classifier) policySizes() (allow, deny int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return countPolicy(c.policy)
}

// countPolicy counts the allow and deny entries of a policy map.
func countPolicy(p map[[6]byte]uint8) (allow, deny int) {
	for _, v := range p {
		if v == policyDeny {
			deny++
		} else {
			allow++
		}
	}
	return allow, deny
}

func policyMap(allow, deny []net.HardwareAddr, limit int) (map[[6]byte]uint8, error) {
	p := make(map[[6]byte]uint8, len(allow)+len(deny))
	for _, l := range []struct {
		macs []net.HardwareAddr
		v    uint8
	}{{allow, policyAllow}, {deny, policyDeny}} {
		for _, m := range l.macs {
			k, ok := macKey(m)
			if !ok {
				return nil, fmt.Errorf("xdp: policy: %q is not an Ethernet MAC", m.String())
			}
			p[k] = l.v
		}
	}
	if len(p) > limit {
		return nil, fmt.Errorf("xdp: policy: %d MACs, the map holds %d", len(p), limit)
	}
	return p, nil
}
