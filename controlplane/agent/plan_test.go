package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"osim/controlplane/api"
	"osim/dataplane/httpboot"
)

const sshKey = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0 "sre": #1 key`

// diskWorld adds a disk image, a boot image carrying the osim installer
// and a staged disk order (o-disk) for t-disk.
func (e *env) diskWorld() (disk, inst api.Image) {
	kernel := []byte("installer kernel " + strings.Repeat("k", 2000))
	initrd := []byte("installer initramfs " + strings.Repeat("i", 4000))
	raw := []byte("zstd frames of a whole disk " + strings.Repeat("d", 6000))
	df := blobFileOf("disk.raw.zst", api.RoleDisk, "", raw)
	df.Compression, df.RawSize = api.CompressionZstd, 1<<30
	disk = api.Image{ID: "img-disk", Name: "debian-disk", Version: "12", Kind: api.KindOS, Format: api.FormatDisk,
		Files:      []api.ImageFile{df},
		Install:    &api.InstallSettings{Disk: api.DiskRule{MinSize: 1 << 30}, GrowLastPartition: true, Finish: api.FinishPowerOff},
		Defaults:   map[string]string{"lang": "en"},
		Procedures: []api.Procedure{{Name: "motd", When: api.WhenPost, Script: "echo hi > $OSIM_ROOT/etc/motd\n"}}}
	inst = api.Image{ID: "img-inst", Name: "osim-installer", Version: "1", Kind: api.KindBoot, Cmdline: "console=ttyS0 quiet",
		Files: []api.ImageFile{blobFileOf("vmlinuz", api.RoleKernel, "", kernel), blobFileOf("initrd.img", api.RoleInitrd, "", initrd)}}
	e.fm.set(func(f *fakeManager) {
		for _, d := range [][]byte{kernel, initrd, raw} {
			s := sha256.Sum256(d)
			f.blobs[hex.EncodeToString(s[:])] = d
		}
	})
	e.fm.putImage(disk)
	e.fm.putImage(inst)
	tg := target("t-disk", "52:54:00:00:00:0a")
	tg.Hostname = "web-01.lab"
	e.fm.putTarget(tg)
	o := order("o-disk", "t-disk", "52:54:00:00:00:0a", api.OrderStaged, "img-disk", "img-inst")
	o.Params = map[string]string{"disk.max_size": "2T", "disk.serial": "S3Z9", "ssh_authorized_keys": sshKey + "\n\n  ssh-rsa AAAAB3 two\n"}
	e.fm.putOrder(o)
	return disk, inst
}

func TestStagingFetchesTheBootImagesInstallerWithTheDiskImage(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	disk, inst := e.diskWorld()
	o := order("o-new", "t-disk", "52:54:00:00:00:0a", api.OrderPending, "img-disk", "img-inst")
	e.fm.putOrder(o)
	e.sync()
	if retry := e.stagePass(map[string]string{}); retry {
		t.Fatal("staging failed")
	}
	for _, f := range append(disk.Files, inst.Files...) {
		if !e.a.st.staged(f) {
			t.Errorf("%s (%s) not staged", f.Name, f.Role)
		}
	}
	if st := e.localEvents(api.EventOrderStaged); len(st) != 1 || st[0].Order != "o-new" {
		t.Errorf("order.staged %+v, want one for o-new", st)
	}
}

// bootServer serves the agent's seams through a real httpboot handler
// whose log is kept.
func (e *env) bootServer(logs io.Writer) *httptest.Server {
	e.t.Helper()
	var h *httpboot.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	srv.Start()
	e.t.Cleanup(srv.Close)
	var err error
	h, err = httpboot.New(httpboot.Config{Scripts: e.a, Files: e.a, Tokens: e.a, Sink: e.a, Plans: e.a, BaseURL: srv.URL,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		e.t.Fatal(err)
	}
	return srv
}

// lockedLog is a log buffer the handler writes after it answered.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func get(t *testing.T, url, token string) (int, []byte) {
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
	return resp.StatusCode, b
}

func TestDiskOrderScriptBootsTheInstallerOfItsBootImage(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.diskWorld()
	e.sync()
	var logs lockedLog
	srv := e.bootServer(&logs)
	code, script := get(t, srv.URL+"/ipxe/52:54:00:00:00:0a", "")
	if code != 200 {
		t.Fatalf("script: %d %s", code, script)
	}
	for _, want := range []string{
		"initrd --name initrd.img " + srv.URL + "/files/images/img-inst/initrd.img",
		"kernel " + srv.URL + "/files/images/img-inst/vmlinuz initrd=initrd.img console=ttyS0 quiet osim.mode=install",
		"osim.url=" + srv.URL + " ", "osim.order=o-disk", "osim.token=tok-o-disk", "osim.mac=52:54:00:00:00:0a",
	} {
		if !strings.Contains(string(script), want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	if fs := e.localEvents(api.EventFileServed); len(fs) != 1 || fs[0].Order != "o-disk" {
		t.Errorf("file.served %+v, want one for o-disk (it moves the order to booting)", fs)
	}
	// The installer's kernel, once staged, is served from the boot image.
	e.stagePass(map[string]string{})
	if code, body := get(t, srv.URL+"/files/images/img-inst/vmlinuz", ""); code != 200 || !strings.HasPrefix(string(body), "installer kernel") {
		t.Errorf("kernel: %d %.20q", code, body)
	}
	if strings.Contains(logs.String(), "tok-o-disk") {
		t.Errorf("the order's token reached the log:\n%s", logs.String())
	}
}

func TestInstallPlanOverHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	disk, _ := e.diskWorld()
	e.sync()
	var logs lockedLog
	srv := e.bootServer(&logs)
	url := srv.URL + "/install/o-disk"

	if code, body := get(t, url, "tok-wrong"); code != 403 {
		t.Errorf("wrong token: %d %s", code, body)
	}
	if code, body := get(t, srv.URL+"/install/o-nope", "tok-o-disk"); code != 404 {
		t.Errorf("unknown order: %d %s", code, body)
	}
	if code, body := get(t, srv.URL+"/install/o-staged", "tok-o-staged"); code != 404 && code != 409 {
		t.Errorf("an order of another image format: %d %s", code, body)
	}
	code, body := get(t, url, "tok-o-disk")
	if code != 200 {
		t.Fatalf("plan: %d %s", code, body)
	}
	var p api.InstallPlan
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	df := disk.Files[0]
	if len(p.Files) != 1 || p.Files[0].URL != srv.URL+"/files/images/img-disk/disk.raw.zst" || p.Files[0].SHA256 != df.SHA256 ||
		p.Files[0].Compression != api.CompressionZstd || p.Files[0].RawSize != df.RawSize || p.Files[0].Role != api.RoleDisk {
		t.Errorf("files %+v", p.Files)
	}
	// The image's rule, with the order's disk.* parameters over it.
	if p.Disk != (api.DiskRule{Serial: "S3Z9", MinSize: 1 << 30, MaxSize: 2 << 40}) || p.Install.Disk != p.Disk {
		t.Errorf("disk rule %+v (install %+v)", p.Disk, p.Install.Disk)
	}
	if !p.Install.GrowLastPartition || p.Install.Finish != api.FinishPowerOff || p.Install.OnFailure != api.OnFailureWait {
		t.Errorf("install settings %+v", p.Install)
	}
	if p.Params["lang"] != "en" || p.Params["disk.serial"] != "S3Z9" || len(p.Procedures) != 1 ||
		p.StatusURL != srv.URL+"/status/o-disk" || p.Hostname != "web-01.lab" || p.Attempt != 1 || p.Image != "img-disk" {
		t.Errorf("plan %+v", p)
	}
	var md map[string]string
	if err := yaml.Unmarshal([]byte(p.FirstBoot.MetaData), &md); err != nil || md["instance-id"] != "o-disk-1" || md["local-hostname"] != "web-01.lab" {
		t.Errorf("meta-data %q: %v %v", p.FirstBoot.MetaData, md, err)
	}
	if !strings.HasPrefix(p.FirstBoot.UserData, "#cloud-config\n") {
		t.Errorf("user-data does not start with #cloud-config: %q", p.FirstBoot.UserData)
	}
	var ud struct {
		Hostname string   `yaml:"hostname"`
		Keys     []string `yaml:"ssh_authorized_keys"`
	}
	if err := yaml.Unmarshal([]byte(p.FirstBoot.UserData), &ud); err != nil {
		t.Fatalf("user-data is not YAML: %v\n%s", err, p.FirstBoot.UserData)
	}
	if ud.Hostname != "web-01.lab" || len(ud.Keys) != 2 || ud.Keys[0] != sshKey || ud.Keys[1] != "ssh-rsa AAAAB3 two" {
		t.Errorf("user-data %+v, want the host name and both keys as given", ud)
	}

	// A size that is not one: 422 naming the parameter.
	o := order("o-disk", "t-disk", "52:54:00:00:00:0a", api.OrderStaged, "img-disk", "img-inst")
	o.Params = map[string]string{"disk.min_size": "ten gigs"}
	e.fm.putOrder(o)
	e.sync()
	if code, body := get(t, url, "tok-o-disk"); code != 422 || !strings.Contains(string(body), "disk.min_size") {
		t.Errorf("bad size: %d %s, want 422 naming disk.min_size", code, body)
	}
	// A pending order boots nothing yet: no plan.
	o.State, o.Params = api.OrderPending, nil
	e.fm.putOrder(o)
	e.sync()
	if code, body := get(t, url, "tok-o-disk"); code != 409 {
		t.Errorf("pending order: %d %s, want 409", code, body)
	}
	if strings.Contains(logs.String(), "tok-o-disk") {
		t.Errorf("the order's token reached the log:\n%s", logs.String())
	}
}

func TestFailedStatusNamesTheStepAndCarriesItsData(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.diskWorld()
	e.sync()
	err := e.a.Report(context.Background(), httpboot.Status{Order: "o-disk", Phase: httpboot.PhaseFailed, Step: "verify",
		Message: "sha256 mismatch", Progress: -1, Client: "10.0.0.7:4000", Data: map[string]string{"bytes": "4096"}})
	if err != nil {
		t.Fatal(err)
	}
	st := e.localEvents(api.EventInstallStatus)
	if len(st) != 1 || st[0].Message != "verify: sha256 mismatch" || st[0].Data["step"] != "verify" || st[0].Data["bytes"] != "4096" || st[0].Data["client"] == "" {
		t.Errorf("install.status %+v", st)
	}
}

// The osim installer already sends "<step>: <reason>" (installer/README):
// the order's message names the step once, not twice.
func TestFailedStatusNamesTheStepOnce(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.diskWorld()
	e.sync()
	err := e.a.Report(context.Background(), httpboot.Status{Order: "o-disk", Phase: httpboot.PhaseFailed, Step: "post",
		Message: `post: procedure "fail" exited with 3`, Progress: -1, Client: "10.0.0.7:4000"})
	if err != nil {
		t.Fatal(err)
	}
	st := e.localEvents(api.EventInstallStatus)
	if len(st) != 1 || st[0].Message != `post: procedure "fail" exited with 3` {
		t.Errorf("install.status %+v, want the message as sent", st)
	}
}
