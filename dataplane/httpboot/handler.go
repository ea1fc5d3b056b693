// Package httpboot is the HTTP side of PXE on a boot server: the per-target
// iPXE script, the kernel, initrd and image files (Range, ETag), and the
// status endpoint the installer reports to.
package httpboot

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"osim/internal/clock"
	"osim/internal/cmdline"
)

// Config wires a Handler. Scripts, Files, Tokens and Sink are required.
type Config struct {
	Scripts Scripts
	Files   Files
	Tokens  Tokens
	Sink    StatusSink
	// BaseURL prefixes file and status URLs in scripts, e.g.
	// "http://10.0.0.1:8080". Empty: root-relative URLs, which iPXE resolves
	// against the script's own URL.
	BaseURL string
	// Logger gets a line per request at debug; nil discards.
	Logger *slog.Logger
	// Metrics to update; nil creates unregistered ones.
	Metrics *Metrics
	// Clock stamps status reports and paces the refusal log; nil is the
	// system clock.
	Clock clock.Clock
	// Targets tells who a live order's target is, to bind its status
	// token to the target's addresses; nil: Tokens, when it implements
	// OrderTargets too.
	Targets OrderTargets
	// Leases tells the address a MAC leased (full DHCP); nil: none known.
	Leases Leases
	// Plans answers GET /install/{order}; nil: the route answers 404.
	Plans Plans
	// Answers renders GET /answer/{order}; nil: the route answers 404.
	Answers Answers
	// RenderTimeout bounds one command line render; 0 is
	// cmdline.RenderTimeout (100 ms). Its size is bounded by
	// cmdline.MaxRenderedBytes (4 KiB).
	RenderTimeout time.Duration
	// Discoveries takes unknown machines' reports (POST /discover/{mac},
	// discover.go); nil answers that route 404. DiscoverLimits bound them.
	Discoveries    Discoveries
	DiscoverLimits DiscoverLimits
	// FirstBoots takes first-boot reports (POST /firstboot/{order},
	// firstboot.go); nil answers that route 404.
	FirstBoots FirstBoots
}

// Handler serves the routes below; create it with New.
//
//	GET  /ipxe/{mac}          the target's iPXE script (?platform=${platform})
//	GET  /files/{name...}     a file from the store (HEAD too)
//	POST /status/{order}      an installer's progress report
//	POST /discover/{mac}      an unknown machine's inventory (discover.go)
//	GET  /install/{order}     the osim installer's install plan (install.go)
//	POST /firstboot/{order}   a first-boot procedure's result (firstboot.go)
//	GET  /answer/{order}      a vendor installer's answer file, or a NoCloud seed part (answer.go)
type Handler struct {
	scripts Scripts
	files   Files
	tokens  Tokens
	sink    StatusSink
	base    string
	log     *slog.Logger
	metrics *Metrics
	clock   clock.Clock
	mux     *http.ServeMux
	// renderTimeout bounds a command line render.
	renderTimeout time.Duration
	targets       OrderTargets
	leases        Leases
	plans         Plans
	answers       Answers
	fetches       fetches    // who fetched each order's script first
	refusals      refusalLog // rate limit of the status refusal lines
	discoveries   Discoveries
	discoverLimit *discoverLimiter
	firstboots    FirstBoots
}

// New checks cfg and builds the handler.
func New(cfg Config) (*Handler, error) {
	var missing []string
	if cfg.Scripts == nil {
		missing = append(missing, "Scripts")
	}
	if cfg.Files == nil {
		missing = append(missing, "Files")
	}
	if cfg.Tokens == nil {
		missing = append(missing, "Tokens")
	}
	if cfg.Sink == nil {
		missing = append(missing, "Sink")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("httpboot: config lacks %s", strings.Join(missing, ", "))
	}
	if cfg.BaseURL != "" {
		if !strings.HasPrefix(cfg.BaseURL, "http://") && !strings.HasPrefix(cfg.BaseURL, "https://") {
			return nil, fmt.Errorf("httpboot: base URL %q: want http:// or https://", cfg.BaseURL)
		}
		if err := safeToken("base URL", cfg.BaseURL); err != nil {
			return nil, fmt.Errorf("httpboot: %w", err)
		}
	}
	h := &Handler{scripts: cfg.Scripts, files: cfg.Files, tokens: cfg.Tokens, sink: cfg.Sink,
		base: strings.TrimSuffix(cfg.BaseURL, "/"), log: cfg.Logger, metrics: cfg.Metrics, clock: clock.Or(cfg.Clock),
		renderTimeout: cfg.RenderTimeout, targets: cfg.Targets, leases: cfg.Leases, plans: cfg.Plans, answers: cfg.Answers,
		refusals: refusalLog{period: time.Second}, discoveries: cfg.Discoveries,
		discoverLimit: newDiscoverLimiter(cfg.DiscoverLimits), firstboots: cfg.FirstBoots}
	if h.targets == nil {
		h.targets, _ = cfg.Tokens.(OrderTargets)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.log = h.log.With("component", "httpboot")
	if h.metrics == nil {
		h.metrics = NewMetrics(nil)
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /ipxe/{mac}", h.serveScript)
	h.mux.HandleFunc("GET /files/{name...}", h.serveFile)
	h.mux.HandleFunc("POST /status/{order}", h.serveStatus)
	h.mux.HandleFunc("POST /discover/{mac}", h.serveDiscover)
	h.mux.HandleFunc("GET /install/{order}", h.serveInstall)
	h.mux.HandleFunc("POST /firstboot/{order}", h.serveFirstBoot)
	h.mux.HandleFunc("GET /answer/{order}", h.serveAnswer)
	return h, nil
}

// ServeHTTP refuses paths that try to climb before the mux sees them (the
// mux would otherwise answer a redirect to the cleaned path), then routes,
// logs and counts.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	route := routeOf(r.URL.Path)
	rw := &countingWriter{ResponseWriter: w, code: http.StatusOK}
	if err := checkRequestPath(r.URL.Path); err != nil {
		h.refuse(rw, r, err, r.URL.Path)
	} else {
		h.mux.ServeHTTP(rw, r)
	}
	d := time.Since(start)
	h.metrics.request(route, rw.code, rw.n, d)
	h.log.Debug("request", "method", r.Method, "path", r.URL.Path, "route", route,
		"client", r.RemoteAddr, "code", rw.code, "bytes", rw.n, "range", r.Header.Get("Range"), "duration", d)
}

func routeOf(p string) string {
	switch {
	case strings.HasPrefix(p, "/ipxe/"):
		return "script"
	case strings.HasPrefix(p, "/files/"):
		return "file"
	case strings.HasPrefix(p, "/status/"):
		return "status"
	case strings.HasPrefix(p, "/discover/"):
		return "discover"
	case strings.HasPrefix(p, "/install/"):
		return "install"
	case strings.HasPrefix(p, "/firstboot/"):
		return "firstboot"
	case strings.HasPrefix(p, "/answer/"):
		return "answer"
	}
	return "other"
}

// checkRequestPath refuses a decoded request path with a ".." element, a
// backslash or a NUL byte, whatever the route: "%2e%2e", "%5c" and "%00"
// arrive here already decoded. Under /files/ it also refuses an absolute
// name ("/files//etc/passwd") and "." or empty elements, which the mux
// would otherwise answer with a redirect to the cleaned path.
func checkRequestPath(p string) error {
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("%w: path %q contains a NUL byte", ErrForbidden, p)
	}
	if strings.IndexByte(p, '\\') >= 0 {
		return fmt.Errorf("%w: path %q contains a backslash", ErrForbidden, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return fmt.Errorf("%w: path %q leaves the root", ErrForbidden, p)
		}
	}
	if name, ok := strings.CutPrefix(p, "/files/"); ok && name != "" {
		if _, err := cleanName(name); err != nil {
			return err
		}
	}
	return nil
}

// serveScript answers GET /ipxe/{mac}.
func (h *Handler) serveScript(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("mac")
	mac, err := parseMAC(raw)
	if err != nil {
		h.metrics.renders.WithLabelValues("bad_mac").Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	platform := r.URL.Query().Get("platform")
	switch platform {
	case "", "pcbios", "efi":
	default:
		h.metrics.renders.WithLabelValues("bad_platform").Inc()
		http.Error(w, fmt.Sprintf("httpboot: platform %q, want pcbios or efi", platform), http.StatusBadRequest)
		return
	}
	b, err := h.scripts.Script(r.Context(), mac)
	if err != nil {
		if errors.Is(err, ErrUnknownTarget) {
			h.metrics.renders.WithLabelValues("unknown_target").Inc()
		} else {
			h.metrics.renders.WithLabelValues("error").Inc()
		}
		h.refuse(w, r, err, mac.String())
		return
	}
	base := h.base
	if (b.Install || b.Answer) && base == "" {
		base = requestBase(r) // osim.url and the answer URL must be absolute
	}
	script, err := renderScript(b, mac, base, platform, h.renderTimeout)
	if err != nil {
		// The decision's data is at fault, not the request: 500, logged.
		outcome := renderOutcome(err)
		h.metrics.renders.WithLabelValues(outcome).Inc()
		h.log.Warn("script not rendered", "mac", mac.String(), "order", b.Order, "outcome", outcome, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if b.Local {
		h.metrics.renders.WithLabelValues("local").Inc()
	} else {
		h.metrics.renders.WithLabelValues("boot").Inc()
		if b.Order != "" && b.Token != "" {
			h.fetches.record(b.Order, b.Token, clientAddr(r.RemoteAddr))
		}
	}
	h.log.Info("script", "mac", mac.String(), "order", b.Order, "local", b.Local, "client", r.RemoteAddr)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(script)))
	w.Write(script)
}

// renderOutcome labels a refused render: too_large and too_slow when the
// command line hit its bound, invalid for anything else the data got wrong.
func renderOutcome(err error) string {
	switch {
	case errors.Is(err, cmdline.ErrTooLarge):
		return "too_large"
	case errors.Is(err, cmdline.ErrTooSlow):
		return "too_slow"
	}
	return "invalid"
}

// countingWriter records the status code and body bytes for metrics and
// the request log; ReadFrom keeps sendfile for ServeContent.
type countingWriter struct {
	http.ResponseWriter
	code        int
	n           int64
	wroteHeader bool
}

func (c *countingWriter) WriteHeader(code int) {
	if !c.wroteHeader {
		c.code, c.wroteHeader = code, true
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.wroteHeader = true
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	c.wroteHeader = true
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.ResponseWriter}, r)
	}
	c.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
