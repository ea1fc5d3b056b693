package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

// CookieName is the session cookie. It holds only a random session id;
// the token secret stays in the manager's memory.
const CookieName = "osim_session"

// maxSessions bounds the sessions kept (the oldest goes first): a script
// signing in in a loop cannot grow the manager's memory. One token keeps
// at most maxSessionsPerToken (its own oldest goes first), so one token
// signing in in a loop cannot push everyone else's sessions out.
const (
	maxSessions         = 10000
	maxSessionsPerToken = 20
)

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
	flash   string // shown once on the next page (under sessions.mu)
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
// no session fixation), ending at the TTL or at the token's own expiry.
func (ss *sessions) create(secret, tokenID, role, name string, tokenExpires time.Time) *session {
	now := ss.now()
	s := &session{id: randomHex(32), secret: secret, tokenID: tokenID, role: role, name: name,
		csrf: randomHex(32), created: now, expires: now.Add(ss.ttl)}
	if !tokenExpires.IsZero() && tokenExpires.Before(s.expires) {
		s.expires = tokenExpires
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var mine []*session
	for id, o := range ss.m {
		if !now.Before(o.expires) {
			delete(ss.m, id)
		} else if o.tokenID == tokenID {
			mine = append(mine, o)
		}
	}
	if len(mine) >= maxSessionsPerToken {
		ss.dropOldestLocked(mine)
	}
	if len(ss.m) >= maxSessions {
		all := make([]*session, 0, len(ss.m))
		for _, o := range ss.m {
			all = append(all, o)
		}
		ss.dropOldestLocked(all)
	}
	ss.m[s.id] = s
	return s
}

func (ss *sessions) dropOldestLocked(of []*session) {
	var oldest *session
	for _, o := range of {
		if oldest == nil || o.created.Before(oldest.created) {
			oldest = o
		}
	}
	delete(ss.m, oldest.id)
}

// setFlash keeps msg for the session's next page; takeFlash reads it once.
// A message never travels in a URL (a crafted link cannot put words in
// the console's mouth).
func (ss *sessions) setFlash(s *session, msg string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s.flash = msg
}

func (ss *sessions) takeFlash(s *session) string {
	if s == nil {
		return ""
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	msg := s.flash
	s.flash = ""
	return msg
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

// maxFormBytes bounds a form post (a selection of thousands of target ids
// fits; image uploads are multipart and bounded by MaxUpload).
const maxFormBytes = 1 << 20

// tokenStands reports whether s's token still exists. Only "not found"
// ends the session; a store error is an error (503), not a sign-out.
func (c *Console) tokenStands(ctx context.Context, s *session) (bool, error) {
	_, err := c.cfg.Tokens.TokenByHash(ctx, c.cfg.HashSecret(s.secret))
	if errors.Is(err, mdb.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
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
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
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
		fail("Only viewer, operator and admin tokens sign in to the console.")
		return
	}
	if !tok.Expires.IsZero() && !c.now().Before(tok.Expires) {
		fail("That token has expired.")
		return
	}
	if old := c.sessions.fromRequest(r); old != nil {
		c.sessions.drop(old.id)
	}
	s := c.sessions.create(secret, tok.ID, tok.Role, tok.Name, tok.Expires)
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
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
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

// client is the API as the session's token sees it, served in process.
func (c *Console) client(s *session) *api.Client {
	cl := api.NewClient("http://manager.invalid", s.secret, false)
	cl.HTTP = &http.Client{Transport: inProcess{c.cfg.API}}
	return cl
}

// inProcess is an http.RoundTripper that serves a request with a handler,
// without a socket. An answer is held in memory, so it is capped: the
// console asks for pages, never for blobs.
type inProcess struct{ h http.Handler }

// maxInProcessAnswer bounds one API answer the console reads.
const maxInProcessAnswer = 64 << 20

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context()) // a RoundTripper must not change the caller's request
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.RequestURI = r.URL.RequestURI()
	r.RemoteAddr = "127.0.0.1:0" // the console, in process
	w := &cappedRecorder{header: http.Header{}, max: maxInProcessAnswer}
	t.h.ServeHTTP(w, r)
	if err := req.Context().Err(); err != nil {
		return nil, err // the caller went away (a page left, a stream closed)
	}
	if w.over {
		return nil, fmt.Errorf("console: the API's answer to %s %s is over %d bytes", req.Method, req.URL.Path, maxInProcessAnswer)
	}
	code := w.code
	if code == 0 {
		code = http.StatusOK
	}
	return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: w.header,
		Body: io.NopCloser(bytes.NewReader(w.body.Bytes())), ContentLength: int64(w.body.Len()), Request: req}, nil
}

// cappedRecorder is an http.ResponseWriter into memory that stops taking
// bytes past max (the handler then sees a write error).
type cappedRecorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
	max    int
	over   bool
}

func (w *cappedRecorder) Header() http.Header { return w.header }

func (w *cappedRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *cappedRecorder) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if w.body.Len()+len(p) > w.max {
		w.over = true
		return 0, errors.New("console: answer too large")
	}
	return w.body.Write(p)
}
