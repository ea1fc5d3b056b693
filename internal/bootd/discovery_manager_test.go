package bootd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/manager"
	"osim/controlplane/mdb"
)

// TestDiscoveryKeysWireTheAgentAndTheDiscoverRoute builds a manager-mode
// node from a Config with boot.discovery_image against an in-process
// manager: an unknown MAC's script boots the discovery image in discover
// mode, and POST /discover/{mac} reaches the manager as a discovered target.
func TestDiscoveryKeysWireTheAgentAndTheDiscoverRoute(t *testing.T) {
	ctx := context.Background()
	store, err := mdb.Open(t.TempDir(), mdb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv, err := manager.New(manager.Config{Store: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	admin, err := manager.CreateToken(ctx, store, api.RoleAdmin, "t", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	join, err := manager.NewToken(ctx, store, api.TokenRequest{Role: api.RoleJoin, Site: "lab"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(hs.URL, admin.Secret, false)
	spec := api.ImageSpec{Name: "osim-installer", Version: "1", Kind: api.KindBoot, Cmdline: "console=ttyS0"}
	for _, f := range []struct{ name, role, arch, data string }{
		{"vmlinuz", api.RoleKernel, "", "kernel"}, {"initrd", api.RoleInitrd, "", "initrd"}, {"ipxe.efi", api.RoleNBP, "efi-x64", "ipxe"},
	} {
		st, err := c.UploadBlob(ctx, shaHex(f.data), int64(len(f.data)), strings.NewReader(f.data), 0)
		if err != nil {
			t.Fatal(err)
		}
		spec.Files = append(spec.Files, api.ImageFile{Name: f.name, SHA256: st.SHA256, Size: st.Size, Role: f.role, Arch: f.arch})
	}
	img, err := c.CreateImage(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tftp"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{
		Address: "127.0.0.1", DataDir: filepath.Join(dir, "data"),
		DHCP:    DHCPSection{Listen: "127.0.0.1:0", BootListen: "127.0.0.1:0"},
		TFTP:    TFTPSection{Listen: "127.0.0.1:0", Root: filepath.Join(dir, "tftp")},
		HTTP:    HTTPSection{Listen: freeTCP(t)},
		Manager: &ManagerSection{URL: hs.URL, JoinToken: join.Secret, Name: "bs-1", Site: "lab"},
		Boot:    BootSection{Unknown: "discovery", DiscoveryImage: img.ID, DiscoverThen: "wait"},
	}
	k, err := Check(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Build(k, Options{Log: slog.New(slog.DiscardHandler), Level: new(slog.LevelVar)})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(rctx, time.Second) }()
	defer func() { cancel(); <-done }()

	base := "http://" + cfg.HTTP.Listen
	var script string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/ipxe/52:54:00:d1:5c:09")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if script = string(b); resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no discovery script for an unknown MAC: %v %q", err, script)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"/files/images/" + img.ID + "/vmlinuz", "osim.mode=discover", "osim.url=" + base, "osim.mac=52:54:00:d1:5c:09", "osim.discover_then=wait"} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	resp, err := http.Post(base+"/discover/52:54:00:d1:5c:09", "application/json", strings.NewReader(`{"facts":{"cpus":"2"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /discover: %d, want 204", resp.StatusCode)
	}
	for deadline = time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		tg, err := store.TargetByMAC(ctx, "52:54:00:d1:5c:09")
		if err == nil && tg.State == api.TargetDiscovered && tg.Site == "lab" && tg.Facts["cpus"] == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no discovered target at the manager: %+v %v", tg, err)
		}
	}
}

func shaHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
