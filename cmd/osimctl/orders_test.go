package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/manager"
	"osim/controlplane/mdb"
)

// realManager is a manager on a real MDB with n targets of site lab and
// an OS image; it returns its URL, an operator token and the image id.
func realManager(t *testing.T, n int) (url, token, image string) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	store, err := mdb.Open(t.TempDir(), mdb.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := manager.New(manager.Config{Store: store, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	info, err := manager.CreateToken(ctx, store, api.RoleOperator, "osimctl-test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("kernel")
	sha := fmt.Sprintf("%x", sha256.Sum256(blob))
	if _, err := store.WriteBlob(ctx, sha, int64(len(blob)), 0, bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	img, err := store.CreateImage(ctx, api.ImageSpec{Name: "deb", Version: "1", Kind: api.KindOS,
		Files: []api.ImageFile{{Name: "vmlinuz", SHA256: sha, Size: int64(len(blob)), Role: api.RoleKernel}}})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]api.TargetSpec, n)
	for i := range specs {
		specs[i] = api.TargetSpec{Hostname: fmt.Sprintf("node%d", i), Site: "lab", Arch: "bios",
			MACs: []string{fmt.Sprintf("52:54:00:00:01:%02x", i)}, Labels: map[string]string{"rack": "r1"}}
	}
	if _, err := store.CreateTargets(ctx, specs); err != nil {
		t.Fatal(err)
	}
	return ts.URL, info.Secret, img.ID
}

// TestOrdersCreateDryRunAndAll: --dry-run lists the targets a selector
// would order (hostnames, the site's share, why --all is needed) and
// creates nothing; without --all a selector matching everything is
// refused (exit 1, the message names --all); with --all it is ordered.
func TestOrdersCreateDryRunAndAll(t *testing.T) {
	clearEnv(t)
	url, tok, img := realManager(t, 3)
	base := []string{"--server", url, "--token", tok, "orders", "create", "--selector", "a!=b", "--image", img}
	out, errOut, code := runCmd(t, append(base, "--dry-run")...)
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"HOSTNAME", "node0", "node2", "3 targets would be ordered", "site lab: 3 of 3", "needs --all", "every target"} {
		if !strings.Contains(out, want) {
			t.Fatalf("dry run output lacks %q:\n%s", want, out)
		}
	}
	out, errOut, code = runCmd(t, base...)
	if code != 1 || !strings.Contains(errOut, "--all") {
		t.Fatalf("without --all: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = runCmd(t, append(base, "--all", "-o", "json")...)
	if code != 0 || strings.Count(out, `"target"`) != 3 {
		t.Fatalf("with --all: exit %d: %s %s", code, out, errOut)
	}
	_, errOut, code = runCmd(t, append(base, "--all")...)
	if code != 0 || !strings.Contains(errOut, "already made") {
		t.Fatalf("the same command again: exit %d, stderr %q (want the earlier orders, replayed)", code, errOut)
	}
}
