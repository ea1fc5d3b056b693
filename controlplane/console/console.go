// Package console is the manager's web console under /ui/: server-rendered
// pages (html/template, files embedded in the binary) with htmx for
// partial updates and Server-Sent Events for live ones.
//
// The console holds no authority of its own. A user signs in with an API
// token; every read and every change goes to the manager's API in process
// (API, an http.Handler) with that token, so the API's role checks are the
// only ones and a viewer's forged form gets the API's 403. The console adds
// what a browser needs: a session cookie instead of a bearer header, CSRF
// protection on every form, and HTML.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
	"osim/internal/clock"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Tokens looks a token up by the hash of its secret (mdb.DB implements
// it): sign-in learns the token's role, and every request checks that the
// token still exists, so revoking it ends its sessions.
type Tokens interface {
	TokenByHash(ctx context.Context, hash string) (mdb.Token, error)
}

// Config wires a Console.
type Config struct {
	// API is the manager's API handler (manager.Server.Handler).
	API http.Handler
	// Tokens resolves a signed-in token (mdb.DB).
	Tokens Tokens
	// HashSecret is how the store hashes a token secret (manager.HashSecret).
	HashSecret func(string) string
	Logger     *slog.Logger
	Clock      clock.Clock
	// SessionTTL is how long a session lives after sign-in (default 8h).
	SessionTTL time.Duration
	// LiveInterval is the shortest time between two live updates a page
	// gets (default 2s): a burst of events is one refresh.
	LiveInterval time.Duration
	// MaxUpload bounds one image registration's upload (default 64 GiB).
	MaxUpload int64
}

// Defaults of Config.
const (
	DefaultSessionTTL   = 8 * time.Hour
	DefaultLiveInterval = 2 * time.Second
	DefaultMaxUpload    = 64 << 30
	// Prefix is where the console is served.
	Prefix = "/ui/"
)

// Console is the /ui/ handler.
type Console struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
}

// New checks cfg and returns a Console.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil || cfg.Tokens == nil || cfg.HashSecret == nil {
		return nil, errors.New("console: Config.API, Tokens and HashSecret are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.LiveInterval <= 0 {
		cfg.LiveInterval = DefaultLiveInterval
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	c := &Console{cfg: cfg, log: cfg.Logger, now: cfg.Clock.Now, mux: http.NewServeMux()}
	c.sessions = newSessions(cfg.SessionTTL, c.now)
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c.pages = pages
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	static, _ := fs.Sub(staticFS, "static")
	c.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", cacheStatic(http.FileServerFS(static))))
	c.mux.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/overview", http.StatusSeeOther)
	})
	c.mux.HandleFunc("GET /ui/signin", c.signInPage)
	c.mux.HandleFunc("POST /ui/signin", c.signIn)
	c.mux.HandleFunc("POST /ui/signout", c.signOut)

	// Pages (a GET with ?fragment=1 answers only the live part).
	c.page("GET /ui/overview", c.overview)
	c.page("GET /ui/targets", c.targets)
	c.page("GET /ui/targets/{id}", c.target)
	c.page("GET /ui/reimage", c.reimageForm)
	c.page("GET /ui/batches/{id}", c.batch)
	c.page("GET /ui/images", c.images)
	c.page("GET /ui/images/{id}", c.image)
	c.page("GET /ui/bootservers", c.bootServers)
	c.page("GET /ui/events", c.events)
	c.page("GET /ui/tokens", c.tokens)
	c.page("GET /ui/rollouts", c.rolloutsPage)
	c.page("GET /ui/rollouts/{id}", c.rolloutPage)
	c.page("POST /ui/rollouts/{id}/pause", c.rolloutAction("pause"))
	c.page("POST /ui/rollouts/{id}/resume", c.rolloutAction("resume"))
	c.page("POST /ui/rollouts/{id}/abort", c.rolloutAction("abort"))

	// Changes: each a form POST with the session's CSRF token.
	c.page("POST /ui/targets/action", c.targetsAction)
	c.page("POST /ui/targets/{id}/accept", c.acceptTarget)
	c.page("POST /ui/targets/{id}/power", c.powerAction)
	c.page("POST /ui/reimage", c.reimage)
	c.page("POST /ui/orders/{id}/cancel", c.orderAction("cancel"))
	c.page("POST /ui/orders/{id}/retry", c.orderAction("retry"))
	c.page("POST /ui/batches/{id}/cancel", c.batchAction("cancel"))
	c.page("POST /ui/batches/{id}/retry", c.batchAction("retry"))
	c.page("POST /ui/tokens", c.createToken)
	// Multipart: its CSRF token is the form's first part (register.go).
	c.mux.HandleFunc("POST /ui/images/register", c.registerImage)
	c.page("POST /ui/tokens/{id}/revoke", c.revokeToken)

	c.mux.HandleFunc("GET /ui/stream", c.withSession(c.stream))
}

// page registers a handler that needs a session (and, for a POST, a
// same-origin request with the session's CSRF token).
func (c *Console) page(pattern string, h func(w http.ResponseWriter, r *http.Request, s *session)) {
	c.mux.HandleFunc(pattern, c.withSession(h))
}

// ServeHTTP serves /ui/ with the console's security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Scripts and styles only from /ui/static (no inline code: an injected
	// <script> does not run), no framing, forms only to this origin.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// withSession finds the request's session (or sends the browser to sign
// in), checks that its token still exists, and for a POST that the
// request is same-origin and carries the session's CSRF token.
func (c *Console) withSession(h func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.sessions.fromRequest(r)
		if s != nil {
			ok, err := c.tokenStands(r.Context(), s)
			if err != nil {
				c.log.Error("console: token lookup", "err", err)
				http.Error(w, "console: the token store is unavailable; try again", http.StatusServiceUnavailable)
				return
			}
			if !ok {
				c.sessions.drop(s.id)
				s = nil
			}
		}
		if s == nil {
			if r.Method == http.MethodGet && r.URL.Query().Get("fragment") == "" && r.URL.Path != "/ui/stream" {
				http.Redirect(w, r, "/ui/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "console: not signed in (or the session expired, or its token was revoked)", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			if err := checkOrigin(r); err != nil {
				c.refuse(w, r, http.StatusForbidden, err)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				c.refuse(w, r, http.StatusBadRequest, fmt.Errorf("console: form: %v", err))
				return
			}
			if !s.csrfOK(r.PostForm.Get("csrf")) {
				c.refuse(w, r, http.StatusForbidden, errors.New("console: the form's CSRF token does not match this session (reload the page)"))
				return
			}
		}
		h(w, r, s)
	}
}

// checkOrigin refuses a POST another site made the browser send: the
// Fetch metadata (Sec-Fetch-Site) when the browser gives it, else Origin
// (or Referer) against the request's own host.
func checkOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none", "":
	default:
		return fmt.Errorf("console: a %s request may not change anything (Sec-Fetch-Site)", r.Header.Get("Sec-Fetch-Site"))
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		if ref := r.Header.Get("Referer"); ref != "" {
			origin = ref
		} else if origin == "null" {
			return errors.New("console: a request from an opaque origin may not change anything")
		}
	}
	if origin == "" {
		return nil // a non-browser client; the CSRF token still has to match
	}
	host := strings.TrimPrefix(strings.TrimPrefix(origin, "http://"), "https://")
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	if host != r.Host {
		return fmt.Errorf("console: origin %q is not this console's (%s)", origin, r.Host)
	}
	return nil
}

// refuse answers a refused request as a page (or plain text to htmx).
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, code int, err error) {
	c.log.Warn("console: request refused", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	http.Error(w, err.Error(), code)
}

// apiError is the code and message of a failed API call.
func apiError(err error) (int, string) {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code, ae.Message
	}
	if errors.Is(err, context.Canceled) {
		return 499, "request canceled"
	}
	return http.StatusBadGateway, err.Error()
}

// Mount serves the console under /ui/ and the API everywhere else; GET /
// and /ui go to the console.
func Mount(apiH http.Handler, ui *Console) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, Prefix):
			ui.ServeHTTP(w, r)
		case r.URL.Path == "/ui" || (r.URL.Path == "/" && r.Method == http.MethodGet):
			http.Redirect(w, r, Prefix, http.StatusSeeOther)
		default:
			apiH.ServeHTTP(w, r)
		}
	})
}
