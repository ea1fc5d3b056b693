package metrics

import "sync"

// Children caches the children of a metric vector by a comparable key, for
// the per-packet and per-request paths: WithLabelValues hashes its labels
// on every call (and callers often format a label to pass it). A child is
// made on first use, so the exposition lists only the label sets seen. The
// zero value is ready; safe for concurrent use.
type Children[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
}

// Get returns the child for k, made by mk the first time.
func (c *Children[K, V]) Get(k K, mk func() V) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = mk()
	c.mu.Lock()
	if c.m == nil {
		c.m = map[K]V{}
	}
	c.m[k] = v
	c.mu.Unlock()
	return v
}
