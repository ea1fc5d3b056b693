package httpboot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// ErrKnownTarget: a discovery report for a MAC that already belongs to a
// target (409): discovery is for machines nobody registered.
var ErrKnownTarget = errors.New("known target")

// Discovery is one validated report of an unknown machine (POST
// /discover/{mac}, the installer in osim.mode=discover).
type Discovery struct {
	MAC      net.HardwareAddr
	Client   string // the request's remote address
	Arch     string // what the installer says it is (may be empty)
	Facts    map[string]string
	Received time.Time
}

// Discoveries takes discovery reports; on a boot server it buffers them
// as target.discovered events. ErrKnownTarget answers 409; any other
// error 503, so the installer retries.
type Discoveries interface {
	Discovered(ctx context.Context, d Discovery) error
}

// DiscoverLimits bound discovery traffic (zero fields: the defaults).
type DiscoverLimits struct {
	// Interval is how long after an accepted report of a MAC another one
	// is refused with 429 (default 10 min).
	Interval time.Duration
	// Rate and Burst are the token bucket of reports from every MAC
	// together, per second (default 100 and 100).
	Rate  float64
	Burst int
	// MACs bounds the MACs remembered for Interval (default 65536); when
	// full of fresh entries, new MACs get 429 too.
	MACs int
}

// The defaults of DiscoverLimits.
const (
	DefaultDiscoverInterval = 10 * time.Minute
	DefaultDiscoverRate     = 100
	DefaultDiscoverMACs     = 65536
)

const (
	maxDiscoverBody  = 64 << 10
	maxDiscoverFacts = 256
	maxArchLen       = 32
)

// discoverBody is api.DiscoverReport as this package reads it (a
// dataplane package does not import the control plane's types).
type discoverBody struct {
	Arch  string            `json:"arch"`
	Facts map[string]string `json:"facts"`
}

// serveDiscover answers POST /discover/{mac}: no token (the machine is
// unknown), a JSON report, 204 once the sink has it; bounded per MAC and
// globally (429 with Retry-After).
func (h *Handler) serveDiscover(w http.ResponseWriter, r *http.Request) {
	if h.discoveries == nil {
		h.metrics.discover.WithLabelValues("disabled").Inc()
		http.Error(w, "httpboot: discovery is not enabled on this boot server", http.StatusNotFound)
		return
	}
	now := h.clock.Now()
	mac, err := parseMAC(r.PathValue("mac"))
	if err != nil {
		h.discoverRefused(w, r, "bad_mac", http.StatusBadRequest, err.Error())
		return
	}
	if ok, retry := h.discoverLimit.global(now); !ok {
		h.tooMany(w, r, mac, "rate_limited", retry, "httpboot: discovery of %s: too many reports from all machines, retry later", mac)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			h.discoverRefused(w, r, "content_type", http.StatusUnsupportedMediaType,
				fmt.Sprintf("httpboot: discovery of %s: content type %q, want application/json", mac, ct))
			return
		}
	}
	body, herr := parseDiscoverBody(r.Body, w, mac)
	if herr != nil {
		h.discoverRefused(w, r, herr.reason, herr.code, herr.msg)
		return
	}
	if ok, retry := h.discoverLimit.reserve(mac.String(), now); !ok {
		h.tooMany(w, r, mac, "too_soon", retry, "httpboot: discovery of %s: reported already within %s", mac, h.discoverLimit.interval)
		return
	}
	d := Discovery{MAC: mac, Client: r.RemoteAddr, Arch: body.Arch, Facts: body.Facts, Received: now}
	if err := h.discoveries.Discovered(r.Context(), d); err != nil {
		h.discoverLimit.release(mac.String())
		if errors.Is(err, ErrKnownTarget) {
			h.discoverRefused(w, r, "known", http.StatusConflict,
				fmt.Sprintf("httpboot: discovery of %s: %v: it is a registered target already", mac, err))
			return
		}
		h.log.Warn("discovery sink failed", "mac", mac.String(), "err", err)
		h.metrics.discover.WithLabelValues("sink_error").Inc()
		w.Header().Set("Retry-After", "5")
		http.Error(w, fmt.Sprintf("httpboot: discovery of %s not stored, retry: %v", mac, err), http.StatusServiceUnavailable)
		return
	}
	h.metrics.discover.WithLabelValues("accepted").Inc()
	h.log.Info("discovered", "mac", mac.String(), "facts", len(d.Facts), "client", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) discoverRefused(w http.ResponseWriter, r *http.Request, reason string, code int, msg string) {
	h.metrics.discover.WithLabelValues(reason).Inc()
	if ok, suppressed := h.refusals.allow("discover/"+reason, h.clock.Now()); ok {
		h.log.Warn("discovery refused", "client", r.RemoteAddr, "reason", reason, "code", code, "err", msg, "suppressed", suppressed)
	}
	http.Error(w, msg, code)
}

func (h *Handler) tooMany(w http.ResponseWriter, r *http.Request, mac net.HardwareAddr, reason string, retry time.Duration, format string, a ...any) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(retry, time.Second).Seconds()))))
	h.discoverRefused(w, r, reason, http.StatusTooManyRequests, fmt.Sprintf(format, a...))
}

// parseDiscoverBody reads and validates a report of at most
// maxDiscoverBody bytes: facts as in a status (keys named like API names,
// printable values of at most 256 bytes), at most 256 of them.
func parseDiscoverBody(body io.ReadCloser, w http.ResponseWriter, mac net.HardwareAddr) (discoverBody, *httpError) {
	var b discoverBody
	data, err := io.ReadAll(http.MaxBytesReader(w, body, maxDiscoverBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return b, refusal(http.StatusRequestEntityTooLarge, "too_large", "httpboot: discovery of %s: body over %d bytes", mac, maxDiscoverBody)
		}
		return b, refusal(http.StatusBadRequest, "bad_body", "httpboot: discovery of %s: read body: %v", mac, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return b, refusal(http.StatusBadRequest, "bad_body", "httpboot: discovery of %s: body: %v", mac, err)
	}
	if dec.More() {
		return b, refusal(http.StatusBadRequest, "bad_body", "httpboot: discovery of %s: data after the JSON object", mac)
	}
	if len(b.Arch) > maxArchLen || (b.Arch != "" && !validFactKey(b.Arch)) {
		return b, refusal(http.StatusUnprocessableEntity, "invalid", "httpboot: discovery of %s: arch %q: want at most %d of letters, digits, '.', '_' and '-'", mac, b.Arch, maxArchLen)
	}
	if len(b.Facts) == 0 {
		return b, refusal(http.StatusUnprocessableEntity, "invalid", "httpboot: discovery of %s: facts: at least one is required (the inventory)", mac)
	}
	if len(b.Facts) > maxDiscoverFacts {
		return b, refusal(http.StatusUnprocessableEntity, "invalid", "httpboot: discovery of %s: facts: %d keys, at most %d", mac, len(b.Facts), maxDiscoverFacts)
	}
	if err := checkFactValues(b.Facts); err != nil {
		return b, refusal(http.StatusUnprocessableEntity, "invalid", "httpboot: discovery of %s: %v", mac, err)
	}
	return b, nil
}

// checkFactValues checks every key and value as checkFacts does, without
// its count.
func checkFactValues(facts map[string]string) error {
	for k, v := range facts {
		if err := checkFacts("facts", map[string]string{k: v}); err != nil {
			return err
		}
	}
	return nil
}

// discoverLimiter bounds discovery reports: one accepted per MAC per
// interval, and a token bucket over all of them.
type discoverLimiter struct {
	interval time.Duration
	rate     float64
	burst    float64
	maxMACs  int

	mu     sync.Mutex
	tokens float64
	filled time.Time
	last   map[string]time.Time // MAC → when its report was accepted (or is being)
	swept  time.Time
}

func newDiscoverLimiter(l DiscoverLimits) *discoverLimiter {
	d := &discoverLimiter{interval: l.Interval, rate: l.Rate, burst: float64(l.Burst), maxMACs: l.MACs,
		last: map[string]time.Time{}}
	if d.interval <= 0 {
		d.interval = DefaultDiscoverInterval
	}
	if d.rate <= 0 {
		d.rate = DefaultDiscoverRate
	}
	if d.burst <= 0 {
		d.burst = max(d.rate, 1)
	}
	if d.maxMACs <= 0 {
		d.maxMACs = DefaultDiscoverMACs
	}
	d.tokens = d.burst
	return d
}

// global takes a token from the bucket; when empty, how long until one.
func (d *discoverLimiter) global(now time.Time) (bool, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.filled.IsZero() && now.After(d.filled) {
		d.tokens = min(d.burst, d.tokens+now.Sub(d.filled).Seconds()*d.rate)
	}
	if d.filled.IsZero() || now.After(d.filled) {
		d.filled = now
	}
	if d.tokens < 1 {
		return false, time.Duration((1 - d.tokens) / d.rate * float64(time.Second))
	}
	d.tokens--
	return true, 0
}

// reserve marks mac as reported at now unless a report of it was
// accepted within the interval (then: how long until it may report).
func (d *discoverLimiter) reserve(mac string, now time.Time) (bool, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.last[mac]; ok && now.Sub(t) < d.interval {
		return false, d.interval - now.Sub(t)
	}
	if len(d.last) >= d.maxMACs && now.Sub(d.swept) >= d.interval/16 {
		for m, t := range d.last {
			if now.Sub(t) >= d.interval {
				delete(d.last, m)
			}
		}
		d.swept = now
	}
	if _, ok := d.last[mac]; !ok && len(d.last) >= d.maxMACs {
		return false, d.interval / 16
	}
	d.last[mac] = now
	return true, 0
}

// release forgets a reservation whose report was not accepted.
func (d *discoverLimiter) release(mac string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.last, mac)
}
