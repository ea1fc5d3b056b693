package blobs

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"osim/bench/internal/lab"
	"osim/controlplane/api"
	"osim/internal/bootd"
)

// startStaged runs osim-manager and osim-bootd (manager mode) on loopback
// and serves the blob the way installers fetch it: registered at the
// manager, staged by the boot server's agent for a live order, and read
// from /files/images/<image-id>/<name> (the agent's staged blob file).
// The blob is the kernel of an installer-format os image, which any
// manager takes; the handler and file type are those of a disk image.
func startStaged(ctx context.Context, mgrBin, bsBin, dir, blobPath, profile string) (srv *server, mgr *lab.Proc, err error) {
	p, err := ports("tcp", "udp", "udp", "udp", "tcp", "tcp")
	if err != nil {
		return nil, nil, err
	}
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	mgrDir := filepath.Join(dir, "manager")
	admin, err := exec.CommandContext(ctx, mgrBin, "token", "create", "--role", "admin", "--name", "blobbench", "--data-dir", mgrDir).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("blobs: admin token: %w", err)
	}
	mgr, err = lab.Start(lab.Spec{Name: "osim-manager", Argv: []string{mgrBin, "serve", "--listen", addr(p[0]),
		"--data-dir", mgrDir, "--log-level", "warn"}, Log: filepath.Join(dir, "manager.log")})
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			mgr.Stop()
			mgr = nil
		}
	}()
	c := api.NewClient("http://"+addr(p[0]), strings.TrimSpace(string(admin)), false)
	if err := waitHealthy(ctx, c.BaseURL, mgr); err != nil {
		return nil, mgr, err
	}
	img, err := registerBlob(ctx, c, blobPath)
	if err != nil {
		return nil, mgr, err
	}
	join, err := c.CreateToken(ctx, api.TokenRequest{Role: api.RoleJoin, Site: "blobbench", Name: "blobbench-bootd"})
	if err != nil {
		return nil, mgr, fmt.Errorf("blobs: join token: %w", err)
	}
	joinFile := filepath.Join(dir, "join.token")
	if err := os.WriteFile(joinFile, []byte(join.Secret), 0o600); err != nil {
		return nil, mgr, err
	}
	tftpRoot := mkdir(dir, "tftp")
	cfg := bootd.Config{
		Address:       "127.0.0.1",
		MetricsListen: addr(p[5]),
		LogLevel:      "warn",
		DataDir:       filepath.Join(dir, "data"),
		DHCP:          bootd.DHCPSection{Mode: "proxy", Listen: addr(p[1]), BootListen: addr(p[2])},
		TFTP:          bootd.TFTPSection{Listen: addr(p[3]), Root: tftpRoot},
		HTTP:          bootd.HTTPSection{Listen: addr(p[4])},
		Boot:          bootd.BootSection{Arches: []string{"bios"}, BootFiles: map[string]string{"bios": "undionly.kpxe"}, Unknown: "ignore"},
		Manager:       &bootd.ManagerSection{URL: "http://" + addr(p[0]), JoinTokenFile: joinFile, Name: "blobbench-bootd", Site: "blobbench"},
	}
	cfgPath := filepath.Join(dir, "bootd.yaml")
	if err := cfg.WriteFile(cfgPath); err != nil {
		return nil, mgr, err
	}
	argv := []string{bsBin, "serve", "--config", cfgPath}
	if profile != "" {
		argv = append(argv, "--cpu-profile", profile)
	}
	proc, err := lab.Start(lab.Spec{Name: "osim-bootd", Argv: argv, Log: filepath.Join(dir, "bootd.log"), Meter: true})
	if err != nil {
		return nil, mgr, err
	}
	srv = &server{name: "osim-bootd", url: "http://" + addr(p[4]) + "/files/images/" + img.ID + "/" + img.Files[0].Name, proc: proc}
	// Staging takes a moment after the order: waitServing polls for it.
	if err := waitServing(ctx, srv, time.Minute); err != nil {
		proc.Stop()
		return nil, mgr, err
	}
	return srv, mgr, nil
}

func waitHealthy(ctx context.Context, base string, p *lab.Proc) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("healthz: %s", resp.Status)
		}
		if p.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("blobs: osim-manager not healthy: %v; %s", err, p.ExitReason())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// registerBlob uploads the blob, registers it as an os image's kernel and
// orders that image for one target of the boot server's site, so the
// agent stages it.
func registerBlob(ctx context.Context, c *api.Client, blobPath string) (api.Image, error) {
	f, err := os.Open(blobPath)
	if err != nil {
		return api.Image{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return api.Image{}, err
	}
	sha := filepath.Base(blobPath)
	if _, err := c.UploadBlob(ctx, sha, st.Size(), f, 8<<20); err != nil {
		return api.Image{}, fmt.Errorf("blobs: uploading the blob: %w", err)
	}
	img, err := c.CreateImage(ctx, api.ImageSpec{Name: "blobbench", Version: "1", Kind: api.KindOS,
		Files: []api.ImageFile{{Name: "disk.img", SHA256: sha, Size: st.Size(), Role: api.RoleKernel}}})
	if err != nil {
		return img, fmt.Errorf("blobs: image: %w", err)
	}
	t, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: "blobbench-1", MACs: []string{"52:54:00:b1:0b:01"}, Arch: "bios", Site: "blobbench"})
	if err != nil {
		return img, fmt.Errorf("blobs: target: %w", err)
	}
	if _, err := c.CreateOrders(ctx, api.OrderRequest{Target: t.ID, Image: img.ID}); err != nil {
		return img, fmt.Errorf("blobs: order: %w", err)
	}
	return img, nil
}
