package blobs

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// round is what one set of concurrent readers did against one server.
type round struct {
	bytes    int64
	wall     time.Duration
	cpu      time.Duration   // server tree user+system over the round
	readers  []time.Duration // each reader's completion time
	errs     int
	firstErr error
}

// readAll has n readers stream size bytes of url at once, each in Range
// requests of chunk bytes, one after another on one keep-alive connection,
// like an installer that resumes by range. Every answer must be 206 with
// the asked length.
func readAll(ctx context.Context, url string, n int, size, chunk int64) *round {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        n + 16,
		MaxIdleConnsPerHost: n + 16,
		DisableCompression:  true,
		ReadBufferSize:      256 << 10,
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Minute}
	r := &round{readers: make([]time.Duration, n)}
	var total atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			got, err := readOne(ctx, cl, url, size, chunk)
			r.readers[i] = time.Since(t0)
			total.Add(got)
			if err != nil {
				mu.Lock()
				r.errs++
				if r.firstErr == nil {
					r.firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	r.wall = time.Since(t0)
	r.bytes = total.Load()
	return r
}

// buffers are the readers' copy buffers: 256 KiB each, reused.
var buffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func readOne(ctx context.Context, cl *http.Client, url string, size, chunk int64) (int64, error) {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	var got int64
	for off := int64(0); off < size; off += chunk {
		end := min(off+chunk, size) - 1
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return got, err
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
		resp, err := cl.Do(req)
		if err != nil {
			return got, fmt.Errorf("GET %s range %d-%d: %w", url, off, end, err)
		}
		// A bare Writer, so the copy uses our buffer, not Discard's 8 KiB one.
		n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, resp.Body, *bp)
		resp.Body.Close()
		got += n
		if resp.StatusCode != http.StatusPartialContent {
			return got, fmt.Errorf("GET %s range %d-%d: %s", url, off, end, resp.Status)
		}
		if err != nil {
			return got, fmt.Errorf("GET %s range %d-%d: after %d bytes: %w", url, off, end, n, err)
		}
		if n != end-off+1 {
			return got, fmt.Errorf("GET %s range %d-%d: %d bytes, want %d", url, off, end, n, end-off+1)
		}
	}
	return got, nil
}
