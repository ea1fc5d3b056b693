package tftp

import (
	"bytes"
	"container/list"
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync"
)

// Cache is a Resolver that keeps the bytes of hot files in memory, shared
// read-only by every transfer: a thousand targets booting at once fetch the
// same NBP, which should be read from disk once. Files are keyed by their
// CacheKey (path, size, mtime, inode for the folder resolver), so a replaced
// file is read again. Concurrent misses on one key load it once.
type Cache struct {
	inner    Resolver
	maxFile  int64
	maxTotal int64
	m        *Metrics

	mu      sync.Mutex
	entries map[string]*list.Element // of *cacheEntry
	lru     list.List
	total   int64
	loading map[string]*cacheLoad
}

type cacheEntry struct {
	key  string
	data []byte
}

type cacheLoad struct {
	done chan struct{}
	data []byte
	err  error
}

// NewCache wraps inner. Files larger than maxFile bypass the cache; the
// cache holds at most maxTotal bytes, evicting the least recently used.
func NewCache(inner Resolver, maxFile, maxTotal int64, m *Metrics) *Cache {
	return &Cache{
		inner: inner, maxFile: maxFile, maxTotal: maxTotal, m: m,
		entries: map[string]*list.Element{}, loading: map[string]*cacheLoad{},
	}
}

// Resolve returns a cached in-memory file when it can, else the inner file.
func (c *Cache) Resolve(ctx context.Context, client netip.AddrPort, name string) (File, error) {
	f, err := c.inner.Resolve(ctx, client, name)
	if err != nil {
		return nil, err
	}
	k, ok := f.(interface{ CacheKey() string })
	if !ok || f.Size() > c.maxFile || f.Size() > c.maxTotal {
		return f, nil
	}
	key := k.CacheKey()
	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		c.lru.MoveToFront(el)
		data := el.Value.(*cacheEntry).data
		c.mu.Unlock()
		f.Close()
		c.m.cacheHits.Inc()
		return newMemFile(data), nil
	}
	if ld, ok := c.loading[key]; ok {
		c.mu.Unlock()
		f.Close()
		select {
		case <-ld.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if ld.err != nil {
			return nil, ld.err
		}
		c.m.cacheHits.Inc()
		return newMemFile(ld.data), nil
	}
	ld := &cacheLoad{done: make(chan struct{})}
	c.loading[key] = ld
	c.mu.Unlock()
	c.m.cacheMisses.Inc()

	ld.data, ld.err = readAllSized(f)
	f.Close()
	c.mu.Lock()
	delete(c.loading, key)
	if ld.err == nil {
		c.insertLocked(key, ld.data)
	}
	c.mu.Unlock()
	close(ld.done)
	if ld.err != nil {
		return nil, ld.err
	}
	return newMemFile(ld.data), nil
}

func (c *Cache) insertLocked(key string, data []byte) {
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, data: data})
	c.total += int64(len(data))
	for c.total > c.maxTotal && c.lru.Len() > 0 {
		el := c.lru.Back()
		e := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.entries, e.key)
		c.total -= int64(len(e.data))
	}
	c.m.cacheBytes.Set(float64(c.total))
}

func readAllSized(f File) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("cache: seek: %w", err)
	}
	buf := make([]byte, f.Size())
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("cache: read %d bytes: %w", f.Size(), err)
	}
	return buf, nil
}

// memFile is an in-memory File whose bytes the engine sends without copying.
type memFile struct {
	*bytes.Reader
	data []byte
}

func newMemFile(b []byte) *memFile { return &memFile{Reader: bytes.NewReader(b), data: b} }

func (m *memFile) Size() int64   { return int64(len(m.data)) }
func (m *memFile) Close() error  { return nil }
func (m *memFile) Bytes() []byte { return m.data }
