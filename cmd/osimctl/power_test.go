package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/manager"
	"osim/controlplane/mdb"
	"osim/controlplane/secretbox"
	"osim/internal/mgrtest"
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

// A rollout through osimctl against a real manager: created by selector
// in waves of 2, shown, paused, aborted.
func TestRolloutCommandsAgainstARealManager(t *testing.T) {
	clearEnv(t)
	c, url, token := mgrtest.Start(t)
	ctx := t.Context()
	for i := range 4 {
		if _, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("r-%d", i), MACs: []string{fmt.Sprintf("52:54:00:00:0d:%02x", i)},
			Site: "s1", Labels: map[string]string{"role": "web"}}); err != nil {
			t.Fatal(err)
		}
	}
	img := kernelImage(t, c)
	base := []string{"--server", url, "--token", token}
	out, errOut, code := runCmd(t, append(base, "orders", "rollout", "create", "--selector", "role=web", "--all", "--image", img.ID, "--wave-size", "2", "--manual", "--max-per-site", "1", "-o", "json")...)
	var ro api.Rollout
	if code != 0 || json.Unmarshal([]byte(out), &ro) != nil || len(ro.Waves) != 2 || ro.Waves[0].State != api.WaveRunning ||
		ro.Policy.MaxInFlightPerSite != 1 || len(ro.Waves[0].Admitted) != 1 {
		t.Fatalf("create: exit %d %s %s", code, out, errOut)
	}
	out, _, code = runCmd(t, append(base, "rollouts", "show", ro.ID)...)
	if code != 0 || !strings.Contains(out, "WAVE") || !strings.Contains(out, "running") || !regexp.MustCompile(`IN FLIGHT.*\n\S+\s+1\s+0\s+1\s+1\s+site`).MatchString(out) {
		t.Fatalf("show: %s", out)
	}
	if _, errOut, code = runCmd(t, append(base, "orders", "rollout", "create", "--selector", "role=web", "--image", img.ID, "--window", "22:00")...); code != 2 || !strings.Contains(errOut, "--window") {
		t.Fatalf("a window without an end: exit %d %s", code, errOut)
	}
	if out, _, code = runCmd(t, append(base, "rollouts", "pause", ro.ID)...); code != 0 || !strings.Contains(out, "paused") {
		t.Fatalf("pause: %s", out)
	}
	if out, _, code = runCmd(t, append(base, "orders", "rollout", "abort", ro.ID, "--cancel-running")...); code != 0 || !strings.Contains(out, "aborted") {
		t.Fatalf("abort: %s", out)
	}
	if out, _, code = runCmd(t, append(base, "rollouts", "list")...); code != 0 || !strings.Contains(out, ro.ID) {
		t.Fatalf("list: %s", out)
	}
}

// kernelImage registers a one-file OS image (a kernel) at c: enough to
// order.
func kernelImage(t *testing.T, c *api.Client) api.Image {
	t.Helper()
	data := []byte("kernel")
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	if _, err := c.UploadBlob(t.Context(), sha, int64(len(data)), bytes.NewReader(data), 0); err != nil {
		t.Fatal(err)
	}
	img, err := c.CreateImage(t.Context(), api.ImageSpec{Name: "deb", Version: "1", Kind: api.KindOS,
		Files: []api.ImageFile{{Name: "vmlinuz", SHA256: sha, Size: int64(len(data)), Role: api.RoleKernel}}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}
