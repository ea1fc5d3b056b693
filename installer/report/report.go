// Package report is the installer's side of the boot server's HTTP API:
// POST /status/{order}, GET /install/{order}, POST /discover/{mac}. Each
// call retries network errors and 5xx (and 408, 429) with backoff for a
// bounded window; any other 4xx is fatal (ErrRefused) and says what the
// server answered.
package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"osim/controlplane/api"
	"osim/internal/clock"
)

// Phases of a Status.
const (
	PhaseInstalling = "installing"
	PhaseDone       = "done"
	PhaseFailed     = "failed"
)

// DefaultWindow bounds the retries of one call.
const DefaultWindow = 5 * time.Minute

const (
	firstBackoff = 200 * time.Millisecond
	maxBackoff   = 10 * time.Second
	maxBody      = 4 << 20 // an install plan is small
	// attemptTimeout bounds one request: a boot server that accepted the
	// connection and went silent must not hold the install forever.
	attemptTimeout = 30 * time.Second
)

// ErrRefused: the boot server answered a 4xx other than 408 and 429.
var ErrRefused = errors.New("boot server refused")

// Status is the body of POST /status/{order}.
type Status struct {
	Phase    string            `json:"phase"`
	Message  string            `json:"message,omitempty"`
	Progress int               `json:"progress"`
	Facts    map[string]string `json:"facts,omitempty"`
	Step     string            `json:"step,omitempty"` // api.Step*
	Data     map[string]string `json:"data,omitempty"`
}

// Client talks to one boot server for one order (or one MAC).
type Client struct {
	Base   string // osim.url
	Order  string
	Token  string
	HTTP   *http.Client
	Clock  clock.Clock
	Window time.Duration // DefaultWindow if 0
	// OnRetry, if set, hears of each failed attempt.
	OnRetry func(what string, err error)
}

// Status posts s, fitted to the boot server's bounds (Fit).
func (c *Client) Status(ctx context.Context, s Status) error {
	return c.do(ctx, http.MethodPost, "/status/"+url.PathEscape(c.Order), Fit(s), nil)
}

// Bounds of a status the boot server accepts (dataplane/httpboot: message
// and data values printable UTF-8 without control characters); beyond
// them it answers 422, which is fatal here.
const (
	MaxMessageBytes = 4096
	MaxValueBytes   = 256
)

// Fit makes s acceptable to the boot server without losing its point: a
// failure reason that quotes a tool's multi-line output, or a procedure's
// output tail, would otherwise be refused, and a refused failed report
// leaves the order installing. Line breaks and tabs become \n, \r, \t;
// other control characters and invalid UTF-8 become U+FFFD; the message
// and data values are cut to their bounds (facts are made within theirs).
func Fit(s Status) Status {
	s.Message = Clip(Printable(s.Message), MaxMessageBytes)
	if s.Data != nil {
		d := make(map[string]string, len(s.Data))
		for k, v := range s.Data {
			d[k] = Clip(Printable(v), MaxValueBytes)
		}
		s.Data = d
	}
	return s
}

// Printable escapes line breaks and tabs and replaces other control
// characters (C0, DEL, C1) and invalid UTF-8 with U+FFFD.
func Printable(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || 0x7f <= r && r < 0xa0:
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Clip keeps at most n bytes of the start of s, cut at a rune boundary.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ClipStart keeps at most n bytes of the end of s, cut at a rune
// boundary (an output tail).
func ClipStart(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return s[i:]
}

// Plan fetches the order's install plan.
func (c *Client) Plan(ctx context.Context) (api.InstallPlan, error) {
	var p api.InstallPlan
	err := c.do(ctx, http.MethodGet, "/install/"+url.PathEscape(c.Order), nil, &p)
	return p, err
}

// Discover posts an unknown machine's report.
func (c *Client) Discover(ctx context.Context, mac string, r api.DiscoverReport) error {
	return c.do(ctx, http.MethodPost, "/discover/"+url.PathEscape(mac), r, nil)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("report: %s %s: %w", method, path, err)
		}
	}
	clk := clock.Or(c.Clock)
	window := c.Window
	if window <= 0 {
		window = DefaultWindow
	}
	start, backoff := clk.Now(), time.Duration(0)
	for {
		err := c.once(ctx, method, path, body, out)
		if err == nil || errors.Is(err, ErrRefused) || ctx.Err() != nil {
			return err
		}
		if clk.Now().Sub(start) >= window {
			return fmt.Errorf("report: %s %s: giving up after %s: %w", method, path, window, err)
		}
		if c.OnRetry != nil {
			c.OnRetry(method+" "+path, err)
		}
		backoff = min(max(2*backoff, firstBackoff), maxBackoff)
		t, ch := clk.NewTimer(backoff)
		select {
		case <-ch:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

func (c *Client) once(ctx context.Context, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("report: %w: %v", ErrRefused, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("report: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("report: %s %s: reading the answer: %w", method, path, err)
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("report: %s %s: %w: answer is not JSON: %v", method, path, ErrRefused, err)
		}
		return nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return fmt.Errorf("report: %s %s: %s", method, path, resp.Status)
	default:
		return fmt.Errorf("report: %s %s: %w: %s: %s", method, path, ErrRefused, resp.Status, bytes.TrimSpace(b[:min(len(b), 512)]))
	}
}
