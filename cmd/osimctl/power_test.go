package main

import (
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/manager"
	"osim/controlplane/mdb"
	"osim/controlplane/secretbox"
)

// Against a real manager (with a credentials key): a BMC login stored
// from a password file never shows its password again; a power action is
// queued for the target's boot server.
func TestCredentialsAndPowerAgainstARealManager(t *testing.T) {
	clearEnv(t)
	store, err := mdb.Open(t.TempDir(), mdb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keyFile := filepath.Join(t.TempDir(), "key")
	secretbox.GenerateKeyFile(keyFile)
	key, err := secretbox.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := manager.New(manager.Config{Store: store, Logger: slog.New(slog.DiscardHandler), CredentialsKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	admin, err := manager.CreateToken(t.Context(), store, api.RoleAdmin, "cli", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("hunter2-bmc\n"), 0o600)
	base := []string{"--server", ts.URL, "--token", admin.Secret}
	out, errOut, code := runCmd(t, append(base, "credentials", "create", "--name", "rack1", "--username", "admin", "--password-file", pw)...)
	if code != 0 || strings.Contains(out, "hunter2") {
		t.Fatalf("create: exit %d %s %s", code, out, errOut)
	}
	out, _, code = runCmd(t, append(base, "credentials", "list")...)
	if code != 0 || !strings.Contains(out, "rack1") || strings.Contains(out, "hunter2") {
		t.Fatalf("list: %d %s", code, out)
	}
	c := api.NewClient(ts.URL, admin.Secret, false)
	tg, err := c.CreateTarget(t.Context(), api.TargetSpec{Hostname: "n1", MACs: []string{"52:54:00:00:0c:01"}, Site: "s1",
		Power: &api.PowerSpec{Driver: "ipmi", Address: "10.0.0.9", Credentials: "rack1"}})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runCmd(t, append(base, "targets", "power", tg.ID, "cycle", "--network-boot")...)
	if code != 0 || !strings.Contains(out, "pending") || !strings.Contains(out, "cycle") {
		t.Fatalf("power: exit %d %s %s", code, out, errOut)
	}
	if _, errOut, code := runCmd(t, append(base, "targets", "power", tg.ID, "explode")...); code == 0 || !strings.Contains(errOut, "action") {
		t.Errorf("a bad action: exit %d %s", code, errOut)
	}
	if _, errOut, code := runCmd(t, append(base, "credentials", "rm", "rack1")...); code == 0 || !strings.Contains(errOut, "n1") {
		t.Errorf("rm while named: exit %d %s", code, errOut)
	}
}
