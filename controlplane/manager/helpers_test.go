package manager

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
	"osim/internal/apicheck"
	"osim/internal/clock"
)

// docCheck holds the manager's answers in the tests to openapi.json,
// parsed once for the package.
var docCheck = sync.OnceValues(func() (*apicheck.Checker, error) { return apicheck.New(openAPIDoc) })

// checkedHandler is h with every answer checked against openapi.json:
// a status the operation does not list, or a body its schema refuses,
// fails t.
func checkedHandler(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	c, err := docCheck()
	if err != nil {
		t.Fatal(err)
	}
	return c.Handler(t, h)
}

// env is a manager on a real MDB in a temporary directory, with one token
// per role and one registered boot server (site s1).
type env struct {
	t       *testing.T
	store   *mdb.DB
	srv     *Server
	ts      *httptest.Server
	reg     *prometheus.Registry
	clock   *clock.Fake
	secrets map[string]string // role → secret
	bs      api.BootServer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	store, err := mdb.Open(t.TempDir(), mdb.Options{Clock: clock, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(Config{Store: store, Logger: log, Registry: reg, Clock: clock, HeartbeatInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checkedHandler(t, srv.Handler()))
	t.Cleanup(func() {
		ts.Close()
		store.Close()
	})
	e := &env{t: t, store: store, srv: srv, ts: ts, reg: reg, clock: clock, secrets: map[string]string{}}
	ctx := context.Background()
	for _, role := range []string{api.RoleAdmin, api.RoleOperator, api.RoleViewer, api.RoleJoin} {
		req := api.TokenRequest{Role: role, Name: "test-" + role}
		if role == api.RoleJoin { // site s1, any name, enough uses for the tests
			req = api.TokenRequest{Role: role, Site: "s1", Uses: 10}
		}
		info, err := NewToken(ctx, store, req, clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.secrets[role] = info.Secret
	}
	rr, err := e.client(api.RoleJoin).Register(ctx, api.RegisterRequest{Name: "bs1", Site: "s1", Addresses: []string{"10.0.0.1"}})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	e.bs = rr.BootServer
	e.secrets[api.RoleBootServer] = rr.Token
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func (e *env) client(role string) *api.Client {
	return api.NewClient(e.ts.URL, e.secrets[role], false)
}

// reply is a raw answer.
type reply struct {
	code   int
	header http.Header
	body   []byte
}

// do sends a raw request; token is a secret ("" for none); body is sent
// as application/json unless headers say otherwise.
func (e *env) do(method, path, token string, body string, headers ...string) reply {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, header: resp.Header, body: b}
}

// as sends with the secret of role.
func (e *env) as(role, method, path, body string, headers ...string) reply {
	e.t.Helper()
	return e.do(method, path, e.secrets[role], body, headers...)
}

// wantError checks an api.Error answer: its code and a part of its message.
func wantError(t *testing.T, r reply, code int, msgPart string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d; body %s", r.code, code, r.body)
	}
	var e api.Error
	if err := jsonUnmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not an api.Error: %v", r.body, err)
	}
	if e.Code != code || !strings.Contains(e.Message, msgPart) {
		t.Fatalf("error %+v, want code %d and a message containing %q", e, code, msgPart)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func mustStatus(t *testing.T, err error, code int) {
	t.Helper()
	if !api.IsStatus(err, code) {
		t.Fatalf("error %v, want status %d", err, code)
	}
}

// must fails the test on err and returns v: must[api.Order](t)(c.GetOrder(...)).
func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// waitPolling returns once n long-polls wait on e's clock (each holds a
// timer until its wait ends).
func (e *env) waitPolling(n int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
	defer cancel()
	if err := e.clock.WaitPending(ctx, n); err != nil {
		e.t.Fatalf("%d long-polls waiting after 10 s, want %d", e.clock.Pending(), n)
	}
}
