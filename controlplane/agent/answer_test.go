package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"osim/controlplane/api"
	"osim/dataplane/httpboot"
	"osim/ips/answer"
)

// secretHash is a root password hash: it must reach the answer file and
// nothing else (and its "$" is no command line word).
const secretHash = "$6$pepper$0123456789abcdefSECRET"

// answerWorld adds an installer-format image with a preseed template (its
// kernel command line names the answer URL) and a staged order o-di for
// t-di, whose fixed address is addr.
func (e *env) answerWorld(addr string) api.Image {
	return e.installerWorld(addr, answer.Preseed, "auto=true priority=critical url={{.AnswerURL}} console=ttyS0",
		map[string]string{"mirror_host": "10.0.0.1:8080", "root_password_hash": secretHash})
}

// installerWorld is answerWorld for any flavor, command line and defaults.
func (e *env) installerWorld(addr, flavor, cmdline string, defaults map[string]string) api.Image {
	tmpl, err := answer.Example(flavor)
	if err != nil {
		e.t.Fatal(err)
	}
	kernel, initrd := []byte("d-i kernel "+strings.Repeat("k", 1000)), []byte("d-i initrd "+strings.Repeat("i", 1000))
	af := blobFileOf("answer.tmpl", api.RoleAnswer, "", []byte(tmpl))
	af.Flavor = flavor
	img := api.Image{ID: "img-di", Name: "vendor-installer", Version: "12", Kind: api.KindOS, Format: api.FormatInstaller,
		Files:    []api.ImageFile{blobFileOf("linux", api.RoleKernel, "", kernel), blobFileOf("initrd.gz", api.RoleInitrd, "", initrd), af},
		Cmdline:  cmdline,
		Defaults: defaults}
	e.fm.set(func(f *fakeManager) {
		for _, d := range [][]byte{kernel, initrd, []byte(tmpl)} {
			s := sha256.Sum256(d)
			f.blobs[hex.EncodeToString(s[:])] = d
		}
	})
	e.fm.putImage(img)
	tg := target("t-di", "52:54:00:00:00:d1")
	tg.Hostname, tg.Address = "db-03", addr
	e.fm.putTarget(tg)
	o := order("o-di", "t-di", "52:54:00:00:00:d1", api.OrderStaged, "img-di", "")
	o.Params = map[string]string{"locale": "fr_FR.UTF-8"}
	e.fm.putOrder(o)
	return img
}

// answerServer is e.bootServer with the agent's Answers wired in.
func (e *env) answerServer(logs *lockedLog) *httptest.Server {
	e.t.Helper()
	var h *httpboot.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	e.t.Cleanup(srv.Close)
	var err error
	h, err = httpboot.New(httpboot.Config{Scripts: e.a, Files: e.a, Tokens: e.a, Sink: e.a, Plans: e.a, Answers: e.a,
		BaseURL: srv.URL, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		e.t.Fatal(err)
	}
	return srv
}

func TestTheInstallerScriptNamesTheAnswerURLAndTheAnswerRendersTheOrder(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.answerWorld("127.0.0.1")
	e.sync()
	e.stagePass(map[string]string{})
	var logs lockedLog
	srv := e.answerServer(&logs)

	code, script := get(t, srv.URL+"/ipxe/52:54:00:00:00:d1", "")
	want := "url=" + srv.URL + "/answer/o-di?token=tok-o-di "
	if code != 200 || !strings.Contains(string(script), want) || !strings.Contains(string(script), "kernel "+srv.URL+"/files/images/img-di/linux") {
		t.Fatalf("script %d lacks %q:\n%s", code, want, script)
	}
	resp, err := http.Get(srv.URL + "/answer/o-di?token=tok-o-di")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("answer: %d, Cache-Control %q: %s", resp.StatusCode, resp.Header.Get("Cache-Control"), body)
	}
	lines, err := answer.ParsePreseed(body)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range lines {
		got[l.Question] = l.Value
	}
	if got["netcfg/get_hostname"] != "db-03" || got["debian-installer/locale"] != "fr_FR.UTF-8" ||
		got["passwd/root-password-crypted"] != secretHash || !strings.HasSuffix(got["preseed/late_command"], " "+srv.URL+"/status/o-di") {
		t.Errorf("preseed values %v", got)
	}
	if fs := e.localEvents(api.EventFileServed); !hasFile(fs, "answer/o-di") {
		t.Errorf("file.served %+v lacks answer/o-di", fs)
	}
	if l := logs.String(); strings.Contains(l, "tok-o-di") || strings.Contains(l, "SECRET") {
		t.Errorf("the token or the secret reached the log:\n%s", l)
	}
}

func hasFile(evs []api.Event, file string) bool {
	for _, ev := range evs {
		if ev.Data["file"] == file {
			return true
		}
	}
	return false
}

func TestTheAnswerRouteRefusesWrongTokensStrangersAndOtherOrders(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.world()
	e.diskWorld()
	e.answerWorld("10.9.9.9") // the target is elsewhere: 127.0.0.1 is a stranger
	e.sync()
	e.stagePass(map[string]string{})
	var logs lockedLog
	srv := e.answerServer(&logs)
	for _, c := range []struct {
		url  string
		code int
	}{
		{"/answer/o-di", 401},
		{"/answer/o-di?token=tok-wrong", 403},
		{"/answer/o-di?token=tok-o-di", 403}, // right token, wrong address
		{"/answer/o-nope?token=tok-o-di", 404},
		{"/answer/o-disk?token=tok-o-disk", 409}, // a disk-format order has no answer file
		{"/answer/..%2f?token=x", 403},
	} {
		code, body := get(t, srv.URL+c.url, "")
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.url, code, body, c.code)
		}
	}
	// From its own address (here: the target moved to 127.0.0.1), the
	// same token renders; a required parameter the order lacks is 422.
	tg := target("t-di", "52:54:00:00:00:d1")
	tg.Address = "127.0.0.1"
	e.fm.putTarget(tg)
	var img api.Image
	e.fm.set(func(f *fakeManager) { img = f.images["img-di"] })
	img.Defaults = map[string]string{"root_password_hash": secretHash} // no mirror_host
	e.fm.putImage(img)
	e.sync()
	if code, body := get(t, srv.URL+"/answer/o-di?token=tok-o-di", ""); code != 422 || !strings.Contains(string(body), `"mirror_host" is not set`) {
		t.Errorf("missing parameter: %d %s, want 422 naming it", code, body)
	}
	if l := logs.String(); strings.Contains(l, "tok-o-di") || strings.Contains(l, "SECRET") {
		t.Errorf("the token or the secret reached the log:\n%s", l)
	}
}
