package console

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/manager"
	"osim/controlplane/mdb"
	"osim/internal/clock"
)

// env is a real manager on a real MDB with the console mounted beside its
// API, one token per role, a site with a few targets and an image.
type env struct {
	t       testing.TB
	store   *mdb.DB
	ui      *Console
	ts      *httptest.Server
	clock   *clock.Fake // the console's (sessions); the manager runs on real time
	secrets map[string]string
	ids     map[string]string // role → token id
	admin   *api.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	store, err := mdb.Open(t.TempDir(), mdb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := manager.New(manager.Config{Store: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, clock: clock.NewFake(time.Now()), secrets: map[string]string{}, ids: map[string]string{}}
	e.ui, err = New(Config{API: srv.Handler(), Tokens: store, HashSecret: manager.HashSecret, Clock: e.clock,
		Logger: slog.New(slog.DiscardHandler), LiveInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(Mount(srv.Handler(), e.ui))
	t.Cleanup(e.ts.Close)
	for _, role := range []string{api.RoleAdmin, api.RoleOperator, api.RoleViewer} {
		tok, err := manager.NewToken(t.Context(), store, api.TokenRequest{Role: role, Name: role + "-user"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.secrets[role], e.ids[role] = tok.Secret, tok.ID
	}
	e.admin = api.NewClient(e.ts.URL, e.secrets[api.RoleAdmin], false)
	return e
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects (the tests look at them).
type browser struct {
	e   *env
	c   *http.Client
	jar *cookiejar.Jar
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, jar: jar, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// signIn signs b in with role's token and returns the sign-in answer.
func (b *browser) signIn(role string) answer {
	b.e.t.Helper()
	return b.post("/ui/signin", url.Values{"token": {b.e.secrets[role]}, "next": {"/ui/overview"}}, nil)
}

// answer is one response, its body read.
type answer struct {
	code   int
	header http.Header
	body   string
	resp   *http.Response
}

func (b *browser) do(req *http.Request) answer {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return answer{code: resp.StatusCode, header: resp.Header, body: string(body), resp: resp}
}

func (b *browser) get(path string) answer {
	b.e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.e.ts.URL+path, nil)
	return b.do(req)
}

// post sends a form as the console's own page would (same origin);
// headers override.
func (b *browser) post(path string, form url.Values, headers map[string]string) answer {
	b.e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.e.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.ts.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

// csrf reads the session's CSRF token from a page.
func (b *browser) csrf() string {
	b.e.t.Helper()
	m := csrfRE.FindStringSubmatch(b.get("/ui/overview").body)
	if m == nil {
		b.e.t.Fatal("no CSRF token on the overview page")
	}
	return m[1]
}

func (b *browser) cookie() *http.Cookie {
	u, _ := url.Parse(b.e.ts.URL + "/ui/")
	for _, c := range b.jar.Cookies(u) {
		if c.Name == CookieName {
			return c
		}
	}
	return nil
}
