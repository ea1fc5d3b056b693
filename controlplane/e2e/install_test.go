package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/dataplane/httpboot"
)

// uploadFile uploads data as a blob and names it as a file of role.
func uploadFile(t *testing.T, c *api.Client, name, role string, data []byte) api.ImageFile {
	t.Helper()
	sha := sha256Hex(data)
	if _, err := c.UploadBlob(context.Background(), sha, int64(len(data)), bytes.NewReader(data), 0); err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	return api.ImageFile{Name: name, SHA256: sha, Size: int64(len(data)), Role: role}
}

// TestDiskInstallInProcess runs a manager and an agent in process, with
// the agent's seams behind a real httpboot handler: a disk-image order of
// a site with a default boot image is staged, its script boots the
// installer, the plan is fetched over HTTP with the order's token, and
// write progress then done reports make the order done at the manager.
func TestDiskInstallInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, hs, c := inProcessManager(t)
	df := uploadFile(t, c, "disk.raw.zst", api.RoleDisk, []byte(strings.Repeat("disk ", 4000)))
	df.Compression, df.RawSize = api.CompressionZstd, 1<<30
	disk := must(c.CreateImage(ctx, api.ImageSpec{Name: "debian-disk", Version: "12", Kind: api.KindOS, Format: api.FormatDisk,
		Files: []api.ImageFile{df}, Install: &api.InstallSettings{Disk: api.DiskRule{MinSize: 1 << 30}}}))(t)
	inst := must(c.CreateImage(ctx, api.ImageSpec{Name: "osim-installer", Version: "1", Kind: api.KindBoot, Cmdline: "console=ttyS0",
		Files: []api.ImageFile{uploadFile(t, c, "vmlinuz", api.RoleKernel, []byte(strings.Repeat("k", 3000))),
			uploadFile(t, c, "initrd.img", api.RoleInitrd, []byte(strings.Repeat("i", 5000)))}}))(t)
	must(c.PutSite(ctx, "A", api.Site{DefaultBootImage: inst.ID}))(t)
	tg := must(c.CreateTarget(ctx, api.TargetSpec{Hostname: "web-01", Site: "A", Arch: "bios", MACs: []string{"02:e4:00:00:00:01"}}))(t)
	ord := must(c.CreateOrders(ctx, api.OrderRequest{Target: tg.ID, Image: disk.ID,
		Params: map[string]string{"ssh_authorized_keys": "ssh-ed25519 AAAA sre@lab"}}))(t)[0]
	if ord.BootImage != inst.ID {
		t.Fatalf("order boots %q, want the site's default %s", ord.BootImage, inst.ID)
	}
	ag := startAgent(t, t.TempDir(), hs.URL, siteJoinToken(t, store, "A"), "bs-a", "A")
	waitState := func(want api.OrderState) {
		t.Helper()
		waitFor(t, 30*time.Second, "order "+string(want), func() (bool, string) {
			o := must(c.GetOrder(ctx, ord.ID))(t)
			return o.State == want, fmt.Sprintf("%s (%s)", o.State, o.Message)
		})
	}
	waitState(api.OrderStaged)

	var logs lockedBuffer
	var h *httpboot.Handler
	bs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer bs.Close()
	h = must(httpboot.New(httpboot.Config{Scripts: ag.a, Files: ag.a, Tokens: ag.a, Sink: ag.a, Plans: ag.a, Targets: ag.a,
		BaseURL: bs.URL, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}))(t)

	// The manager says staged as soon as the boot server's event lands;
	// the boot server's own copy learns it on its next sync, so ask
	// until the script boots the installer (DHCP stays silent meanwhile).
	var script string
	waitFor(t, 10*time.Second, "the installer script", func() (bool, string) {
		script = httpGet(t, bs.URL+"/ipxe/02:e4:00:00:00:01", "", 200)
		return strings.Contains(script, "/files/images/"+inst.ID+"/vmlinuz") && strings.Contains(script, "osim.order="+ord.ID), script
	})
	waitState(api.OrderBooting)

	token := must(store.GetOrder(ctx, ord.ID))(t).Token // the installer reads it from its command line
	httpGet(t, bs.URL+"/install/"+ord.ID, "not-the-token", 403)
	var plan api.InstallPlan
	if err := json.Unmarshal([]byte(httpGet(t, bs.URL+"/install/"+ord.ID, token, 200)), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.Files) != 1 || plan.Files[0].SHA256 != df.SHA256 || !strings.HasPrefix(plan.Files[0].URL, bs.URL+"/files/") ||
		!strings.Contains(plan.FirstBoot.UserData, "sre@lab") || plan.Hostname != "web-01" {
		t.Fatalf("plan %+v", plan)
	}
	// The installer streams the disk file from the plan's URL.
	if got := httpGet(t, plan.Files[0].URL, "", 200); sha256Hex([]byte(got)) != df.SHA256 {
		t.Fatal("the plan's disk URL serves other bytes")
	}

	post(t, bs.URL+"/status/"+ord.ID, token, `{"phase":"installing","step":"write","progress":50,"data":{"bytes":"536870912"}}`)
	waitFor(t, 30*time.Second, "write progress at the manager", func() (bool, string) {
		o := must(c.GetOrder(ctx, ord.ID))(t)
		return o.State == api.OrderInstalling && o.Progress == 50, fmt.Sprintf("%s %d%%", o.State, o.Progress)
	})
	post(t, bs.URL+"/status/"+ord.ID, token, `{"phase":"done","step":"finish","progress":100}`)
	waitState(api.OrderDone)
	evs := must(c.ListEvents(ctx, 0, api.EventFilter{Order: ord.ID, Type: api.EventInstallStatus}))(t)
	var steps []string
	for _, e := range evs.Events {
		steps = append(steps, e.Data["step"])
	}
	if len(evs.Events) != 2 || evs.Events[0].Data["bytes"] != "536870912" || strings.Join(steps, ",") != "write,finish" {
		t.Errorf("install.status events %+v, want write (with its data) then finish", evs.Events)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the order's token reached the boot server's log")
	}
}

func httpGet(t *testing.T, url, token string, want int) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, b, want)
	}
	return string(b)
}

func post(t *testing.T, url, token, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 204 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
}
