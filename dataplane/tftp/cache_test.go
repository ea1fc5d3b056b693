package tftp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// countingResolver serves in-memory files with cache keys and counts reads.
type countingResolver struct {
	files map[string][]byte
	reads atomic.Int64
	delay time.Duration
}

type keyedFile struct {
	*bytes.Reader
	key string
	r   *countingResolver
	n   int64
}

func (k *keyedFile) Size() int64      { return k.n }
func (k *keyedFile) Close() error     { return nil }
func (k *keyedFile) CacheKey() string { return k.key }
func (k *keyedFile) Read(p []byte) (int, error) {
	if k.r.delay > 0 {
		time.Sleep(k.r.delay)
	}
	k.r.reads.Add(1)
	return k.Reader.Read(p)
}

func (c *countingResolver) Resolve(_ context.Context, _ netip.AddrPort, name string) (File, error) {
	b, ok := c.files[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrFileNotFound, name)
	}
	return &keyedFile{Reader: bytes.NewReader(b), key: name, r: c, n: int64(len(b))}, nil
}

func TestCacheReadsAHotFileOnceForManyClients(t *testing.T) {
	inner := &countingResolver{files: map[string][]byte{"nbp": bytes.Repeat([]byte{7}, 1000)}, delay: 20 * time.Millisecond}
	m := NewMetrics(nil)
	c := NewCache(inner, 1<<20, 1<<20, m)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := c.Resolve(context.Background(), netip.AddrPort{}, "nbp")
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			b, _ := io.ReadAll(f)
			if len(b) != 1000 {
				t.Errorf("read %d bytes", len(b))
			}
			if _, ok := f.(interface{ Bytes() []byte }); !ok {
				t.Error("cached file does not expose its bytes")
			}
		}()
	}
	wg.Wait()
	if got := inner.reads.Load(); got != 1 {
		t.Fatalf("file read %d times, want once", got)
	}
	if hits, misses := testutil.ToFloat64(m.cacheHits), testutil.ToFloat64(m.cacheMisses); hits != 49 || misses != 1 {
		t.Fatalf("hits %v misses %v, want 49 and 1", hits, misses)
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	inner := &countingResolver{files: map[string][]byte{
		"a": make([]byte, 400), "b": make([]byte, 400), "c": make([]byte, 400), "big": make([]byte, 2000),
	}}
	m := NewMetrics(nil)
	c := NewCache(inner, 1000, 1000, m)
	get := func(name string) File {
		f, err := c.Resolve(context.Background(), netip.AddrPort{}, name)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	get("a")
	get("b")
	get("a") // a is now more recent than b
	get("c") // 1200 > 1000: b goes
	if testutil.ToFloat64(m.cacheBytes) != 800 {
		t.Fatalf("cache holds %v bytes, want 800", testutil.ToFloat64(m.cacheBytes))
	}
	before := testutil.ToFloat64(m.cacheMisses)
	get("a")
	if testutil.ToFloat64(m.cacheMisses) != before {
		t.Fatal("a was evicted instead of b")
	}
	get("b")
	if testutil.ToFloat64(m.cacheMisses) != before+1 {
		t.Fatal("b was not evicted")
	}
	if _, ok := get("big").(interface{ Bytes() []byte }); ok {
		t.Fatal("a file over the per-file cap was cached")
	}
}
