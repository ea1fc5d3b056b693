package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"osim/controlplane/api"
)

// miniManager answers the agent's calls with a fixed site: a snapshot for
// since=0, empty long-polls after, blobs, and events it records.
type miniManager struct {
	mu     sync.Mutex
	view   []api.Change
	blobs  map[string][]byte
	events []api.Event
}

func (m *miniManager) handler() http.Handler {
	mux := http.NewServeMux()
	js := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST /api/v1/bootservers/register", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer join-1" {
			http.Error(w, `{"code":401,"message":"bad join token"}`, 401)
			return
		}
		js(w, api.RegisterResponse{BootServer: api.BootServer{ID: "bs-1"}, Token: "bs-tok"})
	})
	mux.HandleFunc("POST /api/v1/bootservers/heartbeat", func(w http.ResponseWriter, r *http.Request) { js(w, api.BootServer{}) })
	mux.HandleFunc("GET /api/v1/sync", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("since") == "0" {
			js(w, api.SyncResponse{Revision: 10, Snapshot: true, Changes: m.view})
			return
		}
		select {
		case <-r.Context().Done():
		case <-time.After(200 * time.Millisecond):
		}
		js(w, api.SyncResponse{Revision: 10, Changes: []api.Change{}})
	})
	mux.HandleFunc("POST /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		var b api.EventBatch
		_ = json.NewDecoder(r.Body).Decode(&b)
		m.mu.Lock()
		m.events = append(m.events, b.Events...)
		m.mu.Unlock()
		js(w, api.EventAck{Accepted: len(b.Events), LastSeq: b.Events[len(b.Events)-1].OriginSeq})
	})
	mux.HandleFunc("GET /api/v1/blobs/{sha}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := m.blobs[r.PathValue("sha")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	})
	return mux
}

func (m *miniManager) has(typ, order string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.events {
		if e.Type == typ && e.Order == order {
			return true
		}
	}
	return false
}

// TestServeWithManagerBootsFromTheSyncedStore runs the real binary with a
// manager section: it registers, syncs a snapshot, stages the blobs, and
// then serves the script, the kernel over HTTP and the NBP over TFTP from
// its local copy, and forwards events (staged, status) to the manager.
func TestServeWithManagerBootsFromTheSyncedStore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	file := func(name, role, arch string, data []byte) api.ImageFile {
		s := sha256.Sum256(data)
		return api.ImageFile{Name: name, Role: role, Arch: arch, SHA256: hex.EncodeToString(s[:]), Size: int64(len(data))}
	}
	kernel, nbp := bytes.Repeat([]byte("K"), 70000), bytes.Repeat([]byte("nbp!"), 3000)
	osImg := api.Image{ID: "img-os", Kind: api.KindOS, Files: []api.ImageFile{file("vmlinuz", api.RoleKernel, "", kernel)},
		Cmdline: "console=ttyS0 osim.token={{.Token}}"}
	bootImg := api.Image{ID: "img-boot", Kind: api.KindBoot, Files: []api.ImageFile{file("undionly.kpxe", api.RoleNBP, "bios", nbp)}}
	tA := api.Target{ID: "t-a", MACs: []string{"52:54:00:00:00:01"}, Arch: "bios", Site: "lab"}
	tB := api.Target{ID: "t-b", MACs: []string{"52:54:00:00:00:02"}, Arch: "bios", Site: "lab"}
	oA := api.Order{ID: "o-a", Target: "t-a", MACs: tA.MACs, Image: "img-os", BootImage: "img-boot", State: api.OrderStaged, Attempt: 1, Token: "tok-a"}
	oB := api.Order{ID: "o-b", Target: "t-b", MACs: tB.MACs, Image: "img-os", State: api.OrderPending, Attempt: 1, Token: "tok-b"}
	mm := &miniManager{blobs: map[string][]byte{osImg.Files[0].SHA256: kernel, bootImg.Files[0].SHA256: nbp}}
	mm.view = []api.Change{{Kind: api.ChangeImage, ID: osImg.ID, Image: &osImg}, {Kind: api.ChangeImage, ID: bootImg.ID, Image: &bootImg},
		{Kind: api.ChangeTarget, ID: tA.ID, Target: &tA}, {Kind: api.ChangeTarget, ID: tB.ID, Target: &tB},
		{Kind: api.ChangeOrder, ID: oA.ID, Order: &oA}, {Kind: api.ChangeOrder, ID: oB.ID, Order: &oB}}
	msrv := httptest.NewServer(mm.handler())
	defer msrv.Close()

	bin := buildBootd(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	os.MkdirAll(filepath.Join(dir, "files"), 0o755)
	httpPort, tftpPort := freeTCPPort(t), freeUDPPort(t)
	cfg := fmt.Sprintf(`address: 127.0.0.1
data_dir: %s
manager: {url: %q, join_token: join-1, name: bs1, site: lab}
dhcp: {listen: 127.0.0.1:%d, boot_listen: 127.0.0.1:%d}
tftp: {root: %s, listen: 127.0.0.1:%d}
http: {files: %s, listen: 127.0.0.1:%d}
`, filepath.Join(dir, "data"), msrv.URL, freeUDPPort(t), freeUDPPort(t), filepath.Join(dir, "tftp"), tftpPort, filepath.Join(dir, "files"), httpPort)
	cmd, stderr := startServe(t, bin, dir, cfg)
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	get := func(path string) (int, []byte) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, stderr.String())
			}
		}
	}
	var script []byte
	waitUntil("the synced script", func() bool {
		var code int
		code, script = get("/ipxe/52:54:00:00:00:01")
		return code == 200 && bytes.Contains(script, []byte("images/img-os/vmlinuz"))
	})
	if !strings.Contains(string(script), "osim.token=tok-a") {
		t.Errorf("script:\n%s", script)
	}
	waitUntil("the staged kernel over HTTP", func() bool {
		code, b := get("/files/images/img-os/vmlinuz")
		return code == 200 && bytes.Equal(b, kernel)
	})
	// Staging fetches blob by blob: the kernel being there says nothing
	// of the boot image's NBP.
	nbpSum := sha256.Sum256(nbp)
	waitUntil("the staged NBP", func() bool {
		_, err := os.Stat(filepath.Join(dir, "data", "blobs", "sha256", hex.EncodeToString(nbpSum[:])))
		return err == nil
	})
	if got := tftpGet(t, tftpPort, "images/img-boot/undionly.kpxe"); !bytes.Equal(got, nbp) {
		t.Errorf("tftp NBP: %d bytes", len(got))
	}
	waitUntil("order.staged for the pending order", func() bool { return mm.has(api.EventOrderStaged, "o-b") })

	req, _ := http.NewRequest("POST", base+"/status/o-a", strings.NewReader(`{"phase":"installing","progress":5,"facts":{"cpu":"x"}}`))
	req.Header.Set("Authorization", "Bearer tok-a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("status report: %d", resp.StatusCode)
	}
	waitUntil("install.status and inventory at the manager", func() bool {
		return mm.has(api.EventInstallStatus, "o-a") && mm.has(api.EventInventory, "o-a")
	})

	stopLogged(t, cmd, stderr)
}
