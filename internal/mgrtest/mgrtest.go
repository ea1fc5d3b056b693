// Package mgrtest runs a real manager on a temporary MDB for tests outside
// controlplane (osim-ips, osimctl, the boot server, deploy's checks) that
// talk to it over its API.
// Every answer is held to the manager's OpenAPI document (internal/apicheck):
// one it does not allow fails the test.
package mgrtest

import (
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/api"
	"osim/controlplane/manager"
	"osim/controlplane/mdb"
	"osim/internal/apicheck"
)

// docCheck is the manager's OpenAPI document, parsed once.
var docCheck = sync.OnceValues(func() (*apicheck.Checker, error) {
	return apicheck.New(manager.OpenAPIDocument())
})

// Start runs a real manager on a temporary MDB for t and answers a
// client with an operator token, the manager's URL and the token.
func Start(t testing.TB) (c *api.Client, url, token string) {
	t.Helper()
	return StartAs(t, api.RoleOperator)
}

// StartAs is Start with a token of role.
func StartAs(t testing.TB, role string) (c *api.Client, url, token string) {
	t.Helper()
	c, url, token, _ = start(t, role, false)
	return c, url, token
}

// StartTLS is Start serving HTTPS with a certificate of its own CA, which
// it answers as PEM; the client given trusts it.
func StartTLS(t testing.TB) (c *api.Client, url, token string, caPEM []byte) {
	t.Helper()
	return start(t, api.RoleOperator, true)
}

// Manager is a running test manager: its store, its data dir and its URL.
type Manager struct {
	Store *mdb.DB
	Dir   string
	URL   string
	ts    *httptest.Server
}

// Options change what StartManager runs.
type Options struct {
	Registry prometheus.Registerer           // the manager's metrics (manager.Config.Registry)
	Wrap     func(http.Handler) http.Handler // in front of the manager (a test's faults), behind the document check
	TLS      bool                            // serve HTTPS with a certificate of its own CA
}

// StartManager runs a real manager on a temporary MDB for t. Every
// answer is held to the OpenAPI document.
func StartManager(t testing.TB, o Options) *Manager {
	t.Helper()
	dir := t.TempDir()
	store, err := mdb.Open(dir, mdb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := manager.New(manager.Config{Store: store, Logger: slog.New(slog.DiscardHandler), Registry: o.Registry})
	if err != nil {
		t.Fatal(err)
	}
	check, err := docCheck()
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	if o.Wrap != nil {
		h = o.Wrap(h)
	}
	ts := httptest.NewUnstartedServer(check.Handler(t, h))
	if o.TLS {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	return &Manager{Store: store, Dir: dir, URL: ts.URL, ts: ts}
}

// Client is a client of m with a new token of role.
func (m *Manager) Client(t testing.TB, role string) *api.Client {
	t.Helper()
	c := api.NewClient(m.URL, m.Token(t, api.TokenRequest{Role: role, Name: "test-" + role}), false)
	if m.ts.TLS != nil {
		c.HTTP = m.ts.Client()
	}
	return c
}

// Token makes a token as req asks (a join token names its site) and
// answers its secret.
func (m *Manager) Token(t testing.TB, req api.TokenRequest) string {
	t.Helper()
	tok, err := manager.NewToken(t.Context(), m.Store, req, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok.Secret
}

// CAPEM is the certificate of a TLS manager, as PEM.
func (m *Manager) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.ts.Certificate().Raw})
}

func start(t testing.TB, role string, tls bool) (c *api.Client, url, token string, caPEM []byte) {
	t.Helper()
	m := StartManager(t, Options{TLS: tls})
	token = m.Token(t, api.TokenRequest{Role: role, Name: "test-" + role})
	c = api.NewClient(m.URL, token, false)
	if tls {
		c.HTTP = m.ts.Client()
		caPEM = m.CAPEM()
	}
	return c, m.URL, token, caPEM
}
