// Package mgrtest runs a real manager on a temporary MDB for tests outside
// controlplane (osim-ips, its builders) that talk to it over its API.
// Every answer is held to the manager's OpenAPI document (internal/apicheck):
// one it does not allow fails the test.
package mgrtest

import (
	"encoding/pem"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

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

func start(t testing.TB, role string, tls bool) (c *api.Client, url, token string, caPEM []byte) {
	t.Helper()
	store, err := mdb.Open(t.TempDir(), mdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := manager.New(manager.Config{Store: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	check, err := docCheck()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(check.Handler(t, srv.Handler()))
	if tls {
		ts.StartTLS()
		caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	tok, err := manager.NewToken(t.Context(), store, api.TokenRequest{Role: role, Name: "test-" + role}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c = api.NewClient(ts.URL, tok.Secret, false)
	if tls {
		c.HTTP = ts.Client()
	}
	return c, ts.URL, tok.Secret, caPEM
}
