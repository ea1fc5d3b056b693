// Package mgrtest runs a real manager on a temporary MDB for tests outside
// controlplane (osim-ips, its builders) that talk to it over its API.
package mgrtest

import (
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/manager"
	"osim/controlplane/mdb"
)

// Start runs a real manager on a temporary MDB for t and answers a
// client with an operator token, the manager's URL and the token.
func Start(t testing.TB) (c *api.Client, url, token string) {
	t.Helper()
	return StartAs(t, api.RoleOperator)
}

// StartAs is Start with a token of role.
func StartAs(t testing.TB, role string) (c *api.Client, url, token string) {
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
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	tok, err := manager.NewToken(t.Context(), store, api.TokenRequest{Role: role, Name: "test-" + role}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return api.NewClient(ts.URL, tok.Secret, false), ts.URL, tok.Secret
}
