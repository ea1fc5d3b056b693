package manager

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"osim/controlplane/api"
	"osim/controlplane/secretbox"
)

// BMC credentials: admin only, sealed at rest with the manager's key,
// never answered to people, handed to a boot server only for a target of
// its site that names them.
func TestCredentialsAreSealedAndOnlyTheirSitesBootServersGetThem(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	body := `{"name":"rack1-bmc","username":"admin","password":"Sup3r-secret"}`
	if got := e.as(api.RoleAdmin, "POST", "/api/v1/credentials", body); got.code != http.StatusConflict || !strings.Contains(string(got.body), "--credentials-key") {
		t.Fatalf("without a key: %d %s", got.code, got.body)
	}
	path := filepath.Join(t.TempDir(), "key")
	if err := secretbox.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	key, err := secretbox.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.cfg.CredentialsKey = key
	for _, role := range []string{api.RoleOperator, api.RoleViewer} {
		if got := e.as(role, "POST", "/api/v1/credentials", body); got.code != http.StatusForbidden {
			t.Errorf("%s: %d", role, got.code)
		}
	}
	got := e.as(api.RoleAdmin, "POST", "/api/v1/credentials", body)
	if got.code != http.StatusCreated || strings.Contains(string(got.body), "Sup3r-secret") {
		t.Fatalf("create: %d %s", got.code, got.body)
	}
	if l := e.as(api.RoleAdmin, "GET", "/api/v1/credentials", ""); l.code != 200 || strings.Contains(string(l.body), "Sup3r") || !strings.Contains(string(l.body), "rack1-bmc") {
		t.Fatalf("list: %d %s", l.code, l.body)
	}
	stored, err := e.store.GetCredential(ctx, "rack1-bmc")
	if err != nil || bytes.Contains(stored.Sealed, []byte("Sup3r-secret")) {
		t.Fatalf("stored in the clear (%v)", err)
	}
	// The boot server of s1 gets it only once a target of s1 names it.
	secret := "/api/v1/credentials/rack1-bmc/secret"
	if got := e.as(api.RoleBootServer, "GET", secret, ""); got.code != http.StatusNotFound {
		t.Fatalf("no target names it: %d %s", got.code, got.body)
	}
	if got := e.as(api.RoleAdmin, "GET", secret, ""); got.code != http.StatusForbidden {
		t.Fatalf("an admin read the password: %d", got.code)
	}
	op := e.client(api.RoleOperator)
	if _, err := op.CreateTarget(ctx, api.TargetSpec{Hostname: "n1", MACs: []string{"52:54:00:00:0a:01"}, Site: "s1",
		Power: &api.PowerSpec{Driver: "ipmi", Address: "10.1.0.5", Credentials: "rack1-bmc"}}); err != nil {
		t.Fatal(err)
	}
	got = e.as(api.RoleBootServer, "GET", secret, "")
	var cs api.CredentialSecret
	if got.code != 200 || json.Unmarshal([]byte(got.body), &cs) != nil || cs.Password != "Sup3r-secret" || cs.Username != "admin" {
		t.Fatalf("the site's boot server: %d %s", got.code, got.body)
	}
	// A target naming a credential that does not exist is refused.
	_, err = op.CreateTarget(ctx, api.TargetSpec{Hostname: "n2", MACs: []string{"52:54:00:00:0a:02"}, Site: "s1",
		Power: &api.PowerSpec{Driver: "ipmi", Address: "10.1.0.6", Credentials: "nope"}})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != http.StatusUnprocessableEntity {
		t.Fatalf("unknown credential: %v", err)
	}
	if got := e.as(api.RoleAdmin, "DELETE", "/api/v1/credentials/rack1-bmc", ""); got.code != http.StatusConflict {
		t.Fatalf("delete while named: %d %s", got.code, got.body)
	}
}
