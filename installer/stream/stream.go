// Package stream reads an image file over HTTP for the installer: it
// resumes a dropped or restarted transfer with Range (and If-Range on the
// ETag) instead of starting again, hashes every byte as served, and
// decompresses gzip or zstd on the fly. The hash is checked by Verify,
// which the caller must see succeed before the install may finish.
package stream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"osim/internal/clock"
)

// Defaults of Options.
const (
	DefaultGiveUp   = 10 * time.Minute
	DefaultStall    = 60 * time.Second
	firstBackoff    = 100 * time.Millisecond
	maxBackoff      = 5 * time.Second
	decoderMaxBytes = 64 << 20 // zstd window bound: images are written, not held
)

var (
	// ErrMismatch: the bytes read do not hash to the expected sha256 (or
	// are not the expected size).
	ErrMismatch = errors.New("image does not match its sha256")
	// ErrChanged: the file changed on the server between two ranges.
	ErrChanged = errors.New("image changed on the server during the transfer")
	// ErrGaveUp: no byte arrived for GiveUp.
	ErrGaveUp = errors.New("gave up resuming the transfer")
	// ErrRefused: the server answered with a client error (4xx).
	ErrRefused = errors.New("server refused the image request")
)

// Options describe the file and how hard to try.
type Options struct {
	URL         string
	Size        int64  // bytes as served; 0: the server's Content-Length
	SHA256      string // hex, as served (compressed)
	Compression string // "", "gzip", "zstd"
	Header      http.Header
	Client      *http.Client
	Clock       clock.Clock
	// GiveUp bounds the time without progress across retries.
	GiveUp time.Duration
	// Stall ends a response that delivers no byte for this long (a peer
	// gone without a reset); the transfer resumes on a new one.
	Stall time.Duration
	// OnRetry, if set, hears of each failed attempt before the backoff.
	OnRetry func(offset int64, err error)
}

// Stream is the decompressed image; Read it to the end, then Verify.
type Stream struct {
	raw *hashing
	dec io.Reader
	c   io.Closer
	err error // sticky, from undecodable
}

// Open starts the transfer (a compressed stream's header is read here).
func Open(ctx context.Context, o Options) (*Stream, error) {
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.Stall <= 0 {
		o.Stall = DefaultStall
	}
	if o.GiveUp <= 0 {
		o.GiveUp = DefaultGiveUp
	}
	o.Clock = clock.Or(o.Clock)
	want, err := hex.DecodeString(o.SHA256)
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf("stream: %s: sha256 %q is not 64 hex digits", o.URL, o.SHA256)
	}
	raw := &hashing{r: &resumer{ctx: ctx, o: o, size: o.Size}, h: sha256.New(), want: o.SHA256}
	s := &Stream{raw: raw}
	switch o.Compression {
	case "", "none":
		s.dec = raw
	case "gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			raw.r.close()
			return nil, fmt.Errorf("stream: %s: gzip: %w", o.URL, err)
		}
		s.dec, s.c = zr, zr
	case "zstd":
		zr, err := zstd.NewReader(raw, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(decoderMaxBytes))
		if err != nil {
			raw.r.close()
			return nil, fmt.Errorf("stream: %s: zstd: %w", o.URL, err)
		}
		s.dec, s.c = zr, closerFunc(func() error { zr.Close(); return nil })
	default:
		return nil, fmt.Errorf("stream: %s: unknown compression %q", o.URL, o.Compression)
	}
	return s, nil
}

// Read reads decompressed bytes. A decompressor's error is explained by
// the file's hash when that does not match (ErrMismatch).
func (s *Stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.dec.Read(p)
	if err != nil && err != io.EOF && s.c != nil && s.raw.failed() == nil {
		s.err = s.undecodable(err)
		return n, s.err
	}
	return n, err
}

// undecodable explains a decompressor's error on bytes that arrived
// whole: a corrupted file mostly breaks the decompressor before its end,
// and its complaint ("CRC check failed") hides the cause. The rest of the
// file is read to check its sha256, which names the cause when it fails.
func (s *Stream) undecodable(decErr error) error {
	o := s.raw.r.o
	if _, err := io.Copy(io.Discard, s.raw); err != nil {
		return fmt.Errorf("stream: %s: %s: %w (reading the rest to check its sha256: %v)", o.URL, o.Compression, decErr, err)
	}
	if err := s.raw.verify(); err != nil {
		return fmt.Errorf("%w (%s: %v)", err, o.Compression, decErr)
	}
	return fmt.Errorf("stream: %s: the file matches its sha256 but is not valid %s: %w", o.URL, o.Compression, decErr)
}

// BytesRead is how many bytes of the file (as served) were read so far.
func (s *Stream) BytesRead() int64 { return s.raw.n.Load() }

// Size is the file's size as served (once known).
func (s *Stream) Size() int64 { return s.raw.r.size }

// Verify reads what the decompressor left of the file, then checks its
// size and sha256: ErrMismatch names both hashes.
func (s *Stream) Verify() error {
	if _, err := io.Copy(io.Discard, s.raw); err != nil {
		return err
	}
	return s.raw.verify()
}

// Close ends the transfer.
func (s *Stream) Close() error {
	if s.c != nil {
		s.c.Close()
	}
	return s.raw.r.close()
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// hashing counts and hashes what passes.
type hashing struct {
	r    *resumer
	h    hash.Hash
	n    atomic.Int64
	want string
	mu   sync.Mutex
	err  error // the transfer's error other than io.EOF
}

func (h *hashing) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n.Add(int64(n))
	if err != nil && err != io.EOF {
		h.mu.Lock()
		h.err = err
		h.mu.Unlock()
	}
	return n, err
}

// failed is the transfer's error, if it had one.
func (h *hashing) failed() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *hashing) verify() error {
	got := hex.EncodeToString(h.h.Sum(nil))
	if n := h.n.Load(); h.r.size > 0 && n != h.r.size {
		return fmt.Errorf("stream: %s: %w: read %d bytes, expected %d (sha256 expected %s, actual %s)", h.r.o.URL, ErrMismatch, n, h.r.size, h.want, got)
	}
	if !strings.EqualFold(got, h.want) {
		return fmt.Errorf("stream: %s: %w: expected %s, actual %s", h.r.o.URL, ErrMismatch, h.want, got)
	}
	return nil
}

// resumer is the file's bytes from offset 0 to the end, across as many
// HTTP responses as it takes.
type resumer struct {
	ctx     context.Context
	o       Options
	size    int64
	off     int64
	etag    string
	body    io.ReadCloser
	done    bool
	failing time.Time // start of the current run of failures; zero: none
	watch   *watchdog // of the current response
	backoff time.Duration
}

func (r *resumer) Read(p []byte) (int, error) {
	for {
		if r.done {
			return 0, io.EOF
		}
		if r.body == nil {
			if err := r.connect(); err != nil {
				return 0, err
			}
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.failing, r.backoff = time.Time{}, 0
			r.watch.progress()
		}
		if err == nil {
			return n, nil
		}
		r.close()
		if err == io.EOF && r.off >= r.size {
			r.done = true
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if r.o.OnRetry != nil {
			r.o.OnRetry(r.off, err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *resumer) close() error {
	if r.watch != nil {
		r.watch.stop()
		r.watch = nil
	}
	if r.body != nil {
		err := r.body.Close()
		r.body = nil
		return err
	}
	return nil
}

// connect opens a response starting at r.off, retrying transient
// failures with backoff until GiveUp passes without progress.
func (r *resumer) connect() error {
	for {
		if r.failing.IsZero() {
			r.failing = r.o.Clock.Now()
		}
		err := r.try()
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrRefused) || errors.Is(err, ErrChanged) || r.ctx.Err() != nil {
			return err
		}
		if r.o.Clock.Now().Sub(r.failing) >= r.o.GiveUp {
			return fmt.Errorf("stream: %s: %w after %s at byte %d: %w", r.o.URL, ErrGaveUp, r.o.GiveUp, r.off, err)
		}
		if r.o.OnRetry != nil {
			r.o.OnRetry(r.off, err)
		}
		r.backoff = min(max(2*r.backoff, firstBackoff), maxBackoff)
		t, c := r.o.Clock.NewTimer(r.backoff)
		select {
		case <-c:
		case <-r.ctx.Done():
			t.Stop()
			return r.ctx.Err()
		}
	}
}

func (r *resumer) try() (err error) {
	ctx, cancel := context.WithCancel(r.ctx)
	w := newWatchdog(r.o.Clock, r.o.Stall, cancel)
	defer func() {
		if err != nil {
			w.stop()
		} else {
			r.watch = w
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.o.URL, nil)
	if err != nil {
		return fmt.Errorf("stream: %w: %v", ErrRefused, err)
	}
	for k, v := range r.o.Header {
		req.Header[k] = v
	}
	if r.off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(r.off, 10)+"-")
		if r.etag != "" && !strings.HasPrefix(r.etag, "W/") { // If-Range takes strong validators only
			req.Header.Set("If-Range", r.etag)
		}
	}
	resp, err := r.o.Client.Do(req)
	if err != nil {
		return err
	}
	etag := resp.Header.Get("ETag")
	switch {
	case resp.StatusCode == http.StatusPartialContent && r.off > 0:
		if start := contentRangeStart(resp.Header.Get("Content-Range")); start != r.off {
			resp.Body.Close()
			return fmt.Errorf("stream: %s: asked for byte %d, got a range from %d", r.o.URL, r.off, start)
		}
	case resp.StatusCode == http.StatusOK:
		if r.off == 0 && r.size <= 0 {
			r.size = resp.ContentLength
		}
		if r.off > 0 {
			// Range ignored, or If-Range said the file changed.
			if r.etag != "" && etag != r.etag {
				resp.Body.Close()
				return fmt.Errorf("stream: %s: %w (ETag %s, now %s)", r.o.URL, ErrChanged, r.etag, etag)
			}
			if _, err := io.CopyN(io.Discard, resp.Body, r.off); err != nil {
				resp.Body.Close()
				return err
			}
		}
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		resp.Body.Close()
		return fmt.Errorf("stream: %s: %s", r.o.URL, resp.Status)
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		resp.Body.Close()
		return fmt.Errorf("stream: %s: %w: %s: %s", r.o.URL, ErrRefused, resp.Status, strings.TrimSpace(string(msg)))
	}
	if r.etag == "" {
		r.etag = etag
	}
	r.body = resp.Body
	return nil
}

// contentRangeStart reads N of "bytes N-M/T"; -1 when unreadable.
func contentRangeStart(v string) int64 {
	v, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return -1
	}
	s, _, _ := strings.Cut(v, "-")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// watchdog cancels a response that stalls: no progress for d. It re-arms
// its timer at most every d/4 of progress, not on every read.
type watchdog struct {
	clk    clock.Clock
	d      time.Duration
	cancel context.CancelFunc
	mu     sync.Mutex
	t      clock.Timer
	armed  time.Time
}

func newWatchdog(clk clock.Clock, d time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{clk: clk, d: d, cancel: cancel}
	w.mu.Lock()
	w.arm()
	w.mu.Unlock()
	return w
}

func (w *watchdog) arm() {
	w.armed = w.clk.Now()
	w.t = w.clk.AfterFunc(w.d, w.cancel)
}

func (w *watchdog) progress() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.t != nil && w.clk.Now().Sub(w.armed) >= w.d/4 && w.t.Stop() {
		w.arm()
	}
}

func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.t != nil {
		w.t.Stop()
		w.t = nil
	}
	w.cancel()
}
