package agent

import (
	"sync"
	"time"
)

// maxCoalesce bounds the keys of events about nobody the MDB knows (TFTP
// clients, unknown MACs): a flood from spoofed sources fills it, and
// then such new keys are dropped until entries age out, so at most this
// many of those events per seenEvery reach the buffer.
const maxCoalesce = 4096

// coalescer lets an event through at most once per key per every. Events
// caused by unauthenticated traffic (DHCP, script fetches, TFTP) pass
// through it, so that a flood can fill neither the buffer nor the
// manager's event log. Keys of known targets' orders are never refused
// for room: the first script fetch of an order attempt is what moves it
// to booting, and a mass reimage makes many at once.
type coalescer struct {
	every time.Duration
	max   int

	mu      sync.Mutex
	known   map[string]time.Time
	unknown map[string]time.Time
	swept   time.Time
}

// pass reports whether an event for key may go now; anonymous keys (no
// target) count against max.
func (c *coalescer) pass(key string, anonymous bool, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known == nil {
		c.known, c.unknown = map[string]time.Time{}, map[string]time.Time{}
	}
	m := c.known
	if anonymous {
		m = c.unknown
	}
	if last, ok := m[key]; ok && now.Sub(last) < c.every {
		return false
	}
	// Aged entries go at most twice per period, not on every insert.
	if len(c.known)+len(c.unknown) >= c.max && now.Sub(c.swept) >= c.every/2 {
		for _, mm := range []map[string]time.Time{c.known, c.unknown} {
			for k, t := range mm {
				if now.Sub(t) >= c.every {
					delete(mm, k)
				}
			}
		}
		c.swept = now
	}
	if anonymous && len(c.unknown) >= c.max {
		return false
	}
	m[key] = now
	return true
}
