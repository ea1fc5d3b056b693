package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"osim/controlplane/api"
)

// CookieName is the session cookie. It holds only a random session id;
// the token secret stays in the manager's memory.
const CookieName = "osim_session"

// maxSessions bounds the sessions kept (the oldest goes first): a script
// signing in in a loop cannot grow the manager's memory.
const maxSessions = 10000

// session is one signed-in browser.
type session struct {
	id      string
	secret  string // the API token the user signed in with
	tokenID string
	role    string
	name    string
	csrf    string
	created time.Time
	expires time.Time
}

func (s *session) csrfOK(v string) bool {
	return v != "" && subtle.ConstantTimeCompare([]byte(v), []byte(s.csrf)) == 1
}

// canChange is whether the role may change anything (the API decides; the
// console only hides the buttons a viewer cannot use).
func (s *session) canChange() bool { return s.role == api.RoleAdmin || s.role == api.RoleOperator }

// sessions are kept in memory: a manager restart signs everyone out.
type sessions struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*session
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, now: now, m: map[string]*session{}}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("console: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// create makes a new session (a fresh id, never one the browser offered:
// no session fixation).
func (ss *sessions) create(secret, tokenID, role, name string) *session {
	now := ss.now()
	s := &session{id: randomHex(32), secret: secret, tokenID: tokenID, role: role, name: name,
		csrf: randomHex(32), created: now, expires: now.Add(ss.ttl)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, o := range ss.m {
		if !now.Before(o.expires) {
			delete(ss.m, id)
		}
	}
	if len(ss.m) >= maxSessions {
		var oldest *session
		for _, o := range ss.m {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(ss.m, oldest.id)
	}
	ss.m[s.id] = s
	return s
}

func (ss *sessions) fromRequest(r *http.Request) *session {
	ck, err := r.Cookie(CookieName)
	if err != nil || len(ck.Value) != 64 {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[ck.Value]
	if s == nil {
		return nil
	}
	if !ss.now().Before(s.expires) {
		delete(ss.m, s.id)
		return nil
	}
	return s
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// dropToken ends every session of a revoked token at once.
func (ss *sessions) dropToken(tokenID string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, s := range ss.m {
		if s.tokenID == tokenID {
			delete(ss.m, id)
		}
	}
}

func setCookie(w http.ResponseWriter, r *http.Request, value string, expires time.Time) {
	ck := &http.Cookie{Name: CookieName, Value: value, Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if value == "" {
		ck.MaxAge = -1
	} else {
		ck.Expires = expires
	}
	http.SetCookie(w, ck)
}

// consoleRoles may sign in: people, not boot servers or join tokens.
var consoleRoles = []string{api.RoleAdmin, api.RoleOperator, api.RoleViewer}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, "signin", nil, map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
}

// signIn checks the token, ends any session the browser had and starts a
// new one.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if err := checkOrigin(r); err != nil {
		c.refuse(w, r, http.StatusForbidden, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.refuse(w, r, http.StatusBadRequest, errors.New("console: sign-in form unreadable"))
		return
	}
	secret := strings.TrimSpace(r.PostForm.Get("token"))
	next := safeNext(r.PostForm.Get("next"))
	fail := func(msg string) {
		c.log.Warn("console: sign-in refused", "client", r.RemoteAddr, "reason", msg)
		w.WriteHeader(http.StatusUnauthorized)
		c.render(w, r, "signin", nil, map[string]any{"Next": next, "Error": msg})
	}
	if secret == "" {
		fail("Enter an API token (osimctl tokens create --role viewer|operator|admin).")
		return
	}
	tok, err := c.cfg.Tokens.TokenByHash(r.Context(), c.cfg.HashSecret(secret))
	if err != nil {
		fail("That token is not known (or was revoked).")
		return
	}
	if !slices.Contains(consoleRoles, tok.Role) {
		fail("A " + tok.Role + " token cannot sign in to the console; use a viewer, operator or admin token.")
		return
	}
	if old := c.sessions.fromRequest(r); old != nil {
		c.sessions.drop(old.id)
	}
	s := c.sessions.create(secret, tok.ID, tok.Role, tok.Name)
	setCookie(w, r, s.id, s.expires)
	c.log.Info("console: signed in", "token", tok.ID, "role", tok.Role, "client", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if err := checkOrigin(r); err != nil {
		c.refuse(w, r, http.StatusForbidden, err)
		return
	}
	if s := c.sessions.fromRequest(r); s != nil {
		if r.ParseForm() != nil || !s.csrfOK(r.PostForm.Get("csrf")) {
			c.refuse(w, r, http.StatusForbidden, errors.New("console: the form's CSRF token does not match this session"))
			return
		}
		c.sessions.drop(s.id)
	}
	setCookie(w, r, "", time.Time{})
	http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "/ui//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/overview"
	}
	return next
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// client is the API as the session's token sees it, served in process.
func (c *Console) client(s *session) *api.Client {
	cl := api.NewClient("http://manager.invalid", s.secret, false)
	cl.HTTP = &http.Client{Transport: inProcess{c.cfg.API}}
	return cl
}

// inProcess is an http.RoundTripper that serves a request with a handler,
// without a socket.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.RequestURI = r.URL.RequestURI()
	r.RemoteAddr = "127.0.0.1:0" // the console, in process
	t.h.ServeHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err // the caller went away (a page left, a stream closed)
	}
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}
