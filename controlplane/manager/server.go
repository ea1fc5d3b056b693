// Package manager is the osim manager's HTTP API: targets, blobs, images,
// boot servers, installation orders, events, the boot servers' sync stream
// and tokens, all JSON under /api/v1/ (see README.md and openapi.json).
// It programs against Store (store.go, mdb.DB implements it) and is a plain http.Handler; TLS, listening
// and signals belong to cmd/osim-manager.
package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
	"osim/controlplane/secretbox"
	"osim/internal/clock"
)

// Config wires a Server.
type Config struct {
	Store  Store
	Logger *slog.Logger
	// Registry receives the osim_manager_* metrics (nil: not registered).
	Registry prometheus.Registerer
	// Clock is the time of health and token timestamps, the long polls'
	// waits and the janitor's interval (nil: the real clock).
	Clock clock.Clock
	// HeartbeatInterval is how often boot servers are expected to
	// heartbeat: stale after 3 missed, down after 10 (default 10s).
	HeartbeatInterval time.Duration
	// MaxBody caps JSON request bodies (default 1 MiB); event uploads may
	// be 8 times larger.
	MaxBody int64
	// SyncWaitMax caps ?wait= of sync and event long-polls (default 60s).
	SyncWaitMax time.Duration
	// BodyIdleTimeout ends a blob chunk whose body makes no progress for
	// this long (default 30s), so a stalled uploader lets go of the blob.
	BodyIdleTimeout time.Duration
	// EventMaxAge and EventMaxCount bound the events kept: older or
	// more are dropped, oldest first, by Run (defaults 30 days, 1,000,000).
	EventMaxAge   time.Duration
	EventMaxCount int
	// UploadTTL is how long an unfinished blob upload may sit without a
	// byte written before Run deletes it (default 24h).
	UploadTTL time.Duration
	// JanitorInterval is how often Run applies the retention (default 1m).
	JanitorInterval time.Duration
	// MaxOrderShare is the largest share (0 < s ≤ 1) of a site's targets
	// a selector may order without "all": true (default
	// DefaultMaxOrderShare); a selector matching every target always
	// needs it.
	MaxOrderShare float64
	// RolloutTick is how often the rollout engine steps (default 2s).
	RolloutTick time.Duration
	// CredentialsKey seals BMC passwords at rest (nil: the manager keeps
	// no credentials and refuses them).
	CredentialsKey *secretbox.Key
}

// Defaults of Config.
const (
	DefaultBodyIdleTimeout = 30 * time.Second
	DefaultEventMaxAge     = 30 * 24 * time.Hour
	DefaultEventMaxCount   = 1_000_000
	DefaultUploadTTL       = 24 * time.Hour
)

// Limits of the API.
const (
	MaxBlobChunk      = 64 << 20 // one PUT of a blob
	MaxEventBatch     = 5000     // events per upload
	DefaultSyncLimit  = 5000
	MaxSyncLimit      = 20000
	eventsBodyFactor  = 8
	defaultMaxBody    = 1 << 20
	defaultHeartbeat  = 10 * time.Second
	defaultSyncWait   = 60 * time.Second
	staleAfterBeats   = 3
	downAfterBeats    = 10
	collectTimeout    = 5 * time.Second
	routeLabelUnknown = "unmatched"
)

// Server is the manager's API handler.
type Server struct {
	cfg     Config
	store   Store
	log     *slog.Logger
	now     func() time.Time
	mux     *http.ServeMux
	routes  []route
	metrics *serverMetrics
	orders  *orderMetrics

	rolloutMu sync.Mutex // one rollout step or action at a time

	syncMu     sync.Mutex
	syncedRevs map[string]uint64 // boot server id → revision it last synced from
}

// route is one method+path of the API and the roles allowed on it
// (none: unauthenticated).
type route struct {
	method, path string
	roles        []string
	handle       func(w http.ResponseWriter, r *http.Request, p *principal)
}

func (rt route) pattern() string { return rt.method + " " + rt.path }

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("manager: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = defaultHeartbeat
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = defaultMaxBody
	}
	if cfg.SyncWaitMax <= 0 {
		cfg.SyncWaitMax = defaultSyncWait
	}
	if cfg.BodyIdleTimeout <= 0 {
		cfg.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if cfg.EventMaxAge <= 0 {
		cfg.EventMaxAge = DefaultEventMaxAge
	}
	if cfg.EventMaxCount <= 0 {
		cfg.EventMaxCount = DefaultEventMaxCount
	}
	if cfg.UploadTTL <= 0 {
		cfg.UploadTTL = DefaultUploadTTL
	}
	if cfg.JanitorInterval <= 0 {
		cfg.JanitorInterval = time.Minute
	}
	if cfg.RolloutTick <= 0 {
		cfg.RolloutTick = 2 * time.Second
	}
	s := &Server{cfg: cfg, store: cfg.Store, log: cfg.Logger, now: cfg.Clock.Now,
		mux: http.NewServeMux(), syncedRevs: map[string]uint64{}}
	m, err := newServerMetrics(s, cfg.Registry)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if err := s.registerDiscoveryMetrics(cfg.Registry); err != nil {
		return nil, err
	}
	if err := s.initOrders(); err != nil {
		return nil, err
	}
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.mux.Handle(rt.pattern(), s.wrap(rt))
	}
	return s, nil
}

// Handler returns the API handler.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

var (
	viewers     = []string{api.RoleAdmin, api.RoleOperator, api.RoleViewer}
	writers     = []string{api.RoleAdmin, api.RoleOperator}
	admins      = []string{api.RoleAdmin}
	bootServers = []string{api.RoleBootServer}
	blobReaders = []string{api.RoleAdmin, api.RoleOperator, api.RoleBootServer}
	imgReaders  = []string{api.RoleAdmin, api.RoleOperator, api.RoleViewer, api.RoleBootServer}
	everyone    = api.Roles
)

func (s *Server) routeTable() []route {
	p := api.Prefix
	return []route{
		{"GET", "/healthz", nil, s.healthz},
		{"GET", p + "/openapi.json", everyone, s.openAPI},

		{"POST", p + "/targets", writers, s.createTarget},
		{"GET", p + "/targets", viewers, s.listTargets},
		{"GET", p + "/targets/{id}", viewers, s.getTarget},
		{"PATCH", p + "/targets/{id}", writers, s.updateTarget},
		{"DELETE", p + "/targets/{id}", writers, s.deleteTarget},
		{"POST", p + "/targets/{id}/accept", writers, s.acceptTarget},
		{"POST", p + "/targets/{id}/power", writers, s.requestPower},
		{"GET", p + "/targets/{id}/power", viewers, s.listPower},
		{"GET", p + "/power/claim", bootServers, s.claimPower},
		{"GET", p + "/power/{id}", viewers, s.getPower},
		{"POST", p + "/power/{id}/result", bootServers, s.powerResult},

		{"PUT", p + "/blobs/{sha256}", writers, s.putBlob},
		{"GET", p + "/blobs/{sha256}/status", blobReaders, s.blobStatus},
		{"HEAD", p + "/blobs/{sha256}", blobReaders, s.headBlob},
		{"DELETE", p + "/blobs/{sha256}", writers, s.deleteBlob},
		{"GET", p + "/blobs/{sha256}", blobReaders, s.getBlob},

		{"POST", p + "/images", writers, s.createImage},
		{"GET", p + "/images", imgReaders, s.listImages},
		{"GET", p + "/images/{id}", imgReaders, s.getImage},
		{"DELETE", p + "/images/{id}", writers, s.deleteImage},

		{"POST", p + "/bootservers/register", []string{api.RoleJoin, api.RoleBootServer}, s.register},
		{"POST", p + "/bootservers/heartbeat", bootServers, s.heartbeat},
		{"GET", p + "/bootservers", viewers, s.listBootServers},
		{"GET", p + "/bootservers/{id}", viewers, s.getBootServer},
		{"DELETE", p + "/bootservers/{id}", admins, s.deleteBootServer},

		{"POST", p + "/orders", writers, s.createOrders},
		{"GET", p + "/orders", viewers, s.listOrders},
		{"GET", p + "/orders/{id}", viewers, s.getOrder},
		{"GET", p + "/orders/counts", viewers, s.orderCounts},
		{"POST", p + "/orders/{id}/cancel", writers, s.cancelOrder},
		{"POST", p + "/orders/{id}/retry", writers, s.retryOrder},

		{"POST", p + "/rollouts", writers, s.createRollout},
		{"GET", p + "/rollouts", viewers, s.listRollouts},
		{"GET", p + "/rollouts/{id}", viewers, s.getRollout},
		{"POST", p + "/rollouts/{id}/pause", writers, s.rolloutAction("pause")},
		{"POST", p + "/rollouts/{id}/resume", writers, s.rolloutAction("resume")},
		{"POST", p + "/rollouts/{id}/abort", writers, s.rolloutAction("abort")},

		{"GET", p + "/sites", viewers, s.listSites},
		{"GET", p + "/sites/{site}", viewers, s.getSite},
		{"PUT", p + "/sites/{site}", writers, s.putSite},

		{"GET", p + "/events", viewers, s.listEvents},
		{"POST", p + "/events", bootServers, s.uploadEvents},

		{"GET", p + "/sync", bootServers, s.sync},
		{"GET", p + "/revision", viewers, s.revision},

		{"GET", p + "/backup", admins, s.backup},
		{"POST", p + "/credentials", admins, s.putCredential},
		{"GET", p + "/credentials", admins, s.listCredentials},
		{"DELETE", p + "/credentials/{name}", admins, s.deleteCredential},
		{"GET", p + "/credentials/{name}/secret", bootServers, s.credentialSecret},

		{"POST", p + "/tokens", admins, s.createToken},
		{"GET", p + "/tokens", admins, s.listTokens},
		{"DELETE", p + "/tokens/{id}", admins, s.deleteToken},
	}
}

// probeMethods are tried to fill Allow on a 405.
var probeMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	// No route: 405 if the path exists under another method, else 404.
	var allow []string
	for _, m := range probeMethods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	if len(allow) > 0 {
		sw.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(sw, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
	} else {
		writeError(sw, http.StatusNotFound, fmt.Sprintf("no route %s", r.URL.Path))
	}
	s.metrics.observe(routeLabelUnknown, sw.code(), time.Since(start))
}

// wrap adds metrics, authentication and authorization to a route.
func (s *Server) wrap(rt route) http.Handler {
	pattern := rt.pattern()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			s.metrics.observe(pattern, sw.code(), time.Since(start))
		}()
		var p *principal
		if rt.roles != nil {
			var ok bool
			if p, ok = s.authenticate(sw, r); !ok {
				return
			}
			if !slices.Contains(rt.roles, p.Role) {
				writeError(sw, http.StatusForbidden, fmt.Sprintf("%s %s needs role %s; the token %s has role %s",
					rt.method, rt.path, strings.Join(rt.roles, " or "), p.ID, p.Role))
				return
			}
		}
		rt.handle(sw, r, p)
	})
}

// statusWriter remembers the status code for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeJSON answers v with code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// writeError answers an api.Error.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, api.Error{Code: code, Message: msg})
}

// fail maps an error from the store (or a decoding error) to its status.
// 5xx are logged with the error; the client sees a generic message.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	if code == http.StatusInsufficientStorage {
		// Not a fault of the manager's code: the operator must read it.
		s.log.Warn("write refused: disk space", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, code, err.Error())
		return
	}
	if code >= 500 {
		if errors.Is(err, context.Canceled) || errors.Is(r.Context().Err(), context.Canceled) {
			// The client went away; nobody reads the answer.
			s.log.Debug("request canceled", "method", r.Method, "path", r.URL.Path, "err", err)
			w.WriteHeader(499) // nginx's "client closed request", for the metrics
			return
		}
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, code, "internal error: "+http.StatusText(code))
		return
	}
	writeError(w, code, err.Error())
}

// httpError is an error with a status chosen by the handler.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

func statusOf(err error) int {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, mdb.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, mdb.ErrUnprocessable):
		return http.StatusUnprocessableEntity
	case errors.Is(err, mdb.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, mdb.ErrChecksum):
		return http.StatusUnprocessableEntity
	case errors.Is(err, mdb.ErrConflict), errors.Is(err, mdb.ErrTransition),
		errors.Is(err, mdb.ErrInUse), errors.Is(err, mdb.ErrIncomplete):
		return http.StatusConflict
	case errors.Is(err, mdb.ErrNoSpace):
		return http.StatusInsufficientStorage
	case errors.Is(err, mdb.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, mdb.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, mdb.ErrGone):
		return http.StatusGone
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// decode reads a JSON body of at most limit bytes into v: application/json,
// no unknown fields, one value and nothing after it.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		return errorf(http.StatusBadRequest, "decoding body: Content-Type is %q, want application/json", ct)
	}
	if r.ContentLength > limit {
		return errorf(http.StatusRequestEntityTooLarge, "decoding body: %d bytes is over the limit of %d", r.ContentLength, limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "decoding body: over the limit of %d bytes", limit)
		}
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "decoding body: empty body, want a JSON object")
		}
		return errorf(http.StatusBadRequest, "decoding body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "decoding body: over the limit of %d bytes", limit)
		}
		return errorf(http.StatusBadRequest, "decoding body: trailing data after the JSON value")
	}
	return nil
}

// query helpers: each returns a 400 naming the parameter.

func queryUint(r *http.Request, name string) (uint64, bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, errorf(http.StatusBadRequest, "query %s: %q is not a non-negative integer", name, v)
	}
	return n, true, nil
}

func queryLimit(r *http.Request, def, max int) (int, error) {
	n, ok, err := queryUint(r, "limit")
	if err != nil {
		return 0, err
	}
	if !ok || n == 0 {
		return def, nil
	}
	if n > uint64(max) {
		return max, nil
	}
	return int(n), nil
}

// queryWait parses ?wait= as a Go duration ("30s") or whole seconds,
// capped at max.
func queryWait(r *http.Request, max time.Duration) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return 0, errorf(http.StatusBadRequest, "query wait: %q is not a duration (30s) or seconds", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, errorf(http.StatusBadRequest, "query wait: %q is negative", v)
	}
	return min(d, max), nil
}

func page(r *http.Request) (mdb.Page, error) {
	limit, err := queryLimit(r, 0, 1000)
	if err != nil {
		return mdb.Page{}, err
	}
	return mdb.Page{After: r.URL.Query().Get("after"), Limit: limit}, nil
}

// Routes lists the API's routes as "METHOD /path" with the roles allowed,
// sorted; the tests hold the OpenAPI document against it.
func (s *Server) Routes() map[string][]string {
	out := make(map[string][]string, len(s.routes))
	for _, rt := range s.routes {
		roles := append([]string(nil), rt.roles...)
		sort.Strings(roles)
		out[rt.pattern()] = roles
	}
	return out
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request, _ *principal) {
	if _, err := s.store.Revision(r.Context()); err != nil {
		s.log.Error("health check: store", "err", err)
		writeError(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// routeRoles returns the roles allowed on "METHOD /path".
func (s *Server) routeRoles(pattern string) []string {
	for _, rt := range s.routes {
		if rt.pattern() == pattern {
			return rt.roles
		}
	}
	return nil
}
