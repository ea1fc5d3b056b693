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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"osim/controlplane/api"
)

// fake is the few manager routes osimctl's tests need, with just enough
// state; it records what it was asked.
type fake struct {
	mu      sync.Mutex
	t       *testing.T
	auth    []string // Authorization headers seen
	paths   []string // METHOD path?query seen
	targets []api.Target
	images  []api.Image
	created []api.ImageSpec
	orders  map[string]api.Order
	// blobs: sha -> bytes received so far and the announced size.
	blobs     map[string][]byte
	blobSize  map[string]int64
	puts      map[string][][2]int64 // sha -> ranges PUT
	events    []api.Event           // the log; eventHook applies one as it is read
	eventHook func(e api.Event)
	// fail answers every request with this error (code != 0).
	fail api.Error
}

func newFake(t *testing.T) (*fake, string) {
	f := &fake{t: t, orders: map[string]api.Order{}, blobs: map[string][]byte{}, blobSize: map[string]int64{}, puts: map[string][][2]int64{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, api.Error{Code: code, Message: fmt.Sprintf(format, a...)})
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	p := strings.TrimPrefix(r.URL.Path, api.Prefix)
	f.paths = append(f.paths, r.Method+" "+p+"?"+r.URL.RawQuery)
	if f.fail.Code != 0 {
		apiError(w, f.fail.Code, "%s", f.fail.Message)
		return
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case r.Method == "GET" && p == "/targets":
		writeJSON(w, 200, api.TargetList{Targets: f.targets})
	case r.Method == "GET" && parts[0] == "targets" && len(parts) == 2:
		for _, t := range f.targets {
			if t.ID == parts[1] || (len(t.MACs) > 0 && t.MACs[0] == parts[1]) {
				writeJSON(w, 200, t)
				return
			}
		}
		apiError(w, 404, "target %s not found", parts[1])
	case r.Method == "POST" && p == "/targets":
		var s api.TargetSpec
		_ = json.NewDecoder(r.Body).Decode(&s)
		t := api.Target{ID: fmt.Sprintf("t-%d", len(f.targets)+1), Hostname: s.Hostname, MACs: s.MACs, Arch: s.Arch, Site: s.Site, Labels: s.Labels}
		f.targets = append(f.targets, t)
		writeJSON(w, 201, t)
	case r.Method == "GET" && len(parts) == 3 && parts[0] == "blobs" && parts[2] == "status":
		sha := parts[1]
		b, ok := f.blobs[sha]
		if !ok {
			apiError(w, 404, "blob %s not found", sha)
			return
		}
		writeJSON(w, 200, f.blobStatus(sha, b))
	case r.Method == "PUT" && len(parts) == 2 && parts[0] == "blobs":
		f.putBlob(w, r, parts[1])
	case r.Method == "POST" && p == "/images":
		var s api.ImageSpec
		_ = json.NewDecoder(r.Body).Decode(&s)
		for _, fl := range s.Files {
			if b := f.blobs[fl.SHA256]; int64(len(b)) != fl.Size || f.blobSize[fl.SHA256] != fl.Size {
				apiError(w, 409, "blob %s of %s incomplete", fl.SHA256, fl.Name)
				return
			}
		}
		f.created = append(f.created, s)
		writeJSON(w, 201, api.Image{ID: "i-1", Name: s.Name, Version: s.Version, Kind: s.Kind, Files: s.Files, Cmdline: s.Cmdline, Defaults: s.Defaults})
	case r.Method == "GET" && p == "/images":
		writeJSON(w, 200, map[string]any{"images": f.images})
	case r.Method == "GET" && p == "/bootservers":
		writeJSON(w, 200, map[string]any{"boot_servers": []api.BootServer{{ID: "b-1", Name: "bs1", Site: "lab", Health: "healthy",
			LastHeartbeat: time.Now().Add(-90 * time.Second), SyncedRevision: 42}}})
	case r.Method == "GET" && len(parts) == 2 && parts[0] == "orders":
		o, ok := f.orders[parts[1]]
		if !ok {
			apiError(w, 404, "order %s not found", parts[1])
			return
		}
		writeJSON(w, 200, o)
	case r.Method == "DELETE" && parts[0] == "targets":
		apiError(w, 409, "target %s has live order o-1", parts[1])
	case r.Method == "GET" && p == "/events":
		after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
		out := api.EventList{Events: []api.Event{}, Last: after}
		// One event per call, as if they happened one at a time.
		for _, e := range f.events {
			if e.Seq > after {
				if f.eventHook != nil {
					f.eventHook(e)
				}
				out.Events = append(out.Events, e)
				out.Last = e.Seq
				break
			}
		}
		writeJSON(w, 200, out)
	default:
		apiError(w, 404, "no route %s %s", r.Method, p)
	}
}

func (f *fake) blobStatus(sha string, b []byte) api.BlobStatus {
	size := f.blobSize[sha]
	sum := sha256.Sum256(b)
	return api.BlobStatus{SHA256: sha, Size: size, Received: int64(len(b)),
		Complete: int64(len(b)) == size && hex.EncodeToString(sum[:]) == sha}
}

func (f *fake) putBlob(w http.ResponseWriter, r *http.Request, sha string) {
	var start, end, size int64
	if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &size); err != nil {
		apiError(w, 400, "Content-Range %q: %v", r.Header.Get("Content-Range"), err)
		return
	}
	data, _ := io.ReadAll(r.Body)
	have := f.blobs[sha]
	if start != int64(len(have)) || end-start+1 != int64(len(data)) {
		apiError(w, 416, "blob %s: chunk at %d, have %d", sha, start, len(have))
		return
	}
	f.puts[sha] = append(f.puts[sha], [2]int64{start, end})
	f.blobSize[sha] = size
	f.blobs[sha] = append(have, data...)
	writeJSON(w, 200, f.blobStatus(sha, f.blobs[sha]))
}

// runCmd runs osimctl with args against server (empty: from the env).
func runCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return o.String(), e.String(), code
}

// clearEnv makes the tests independent of the caller's OSIM_* variables.
func clearEnv(t *testing.T) {
	t.Setenv("OSIM_SERVER", "")
	t.Setenv("OSIM_TOKEN", "")
	t.Setenv("OSIM_CA_FILE", "")
}

func TestTargetsListPrintsTableAndJSON(t *testing.T) {
	clearEnv(t)
	f, url := newFake(t)
	f.targets = []api.Target{
		{ID: "t-1", Hostname: "node1", MACs: []string{"52:54:00:00:00:01"}, Arch: "bios", Site: "lab", Labels: map[string]string{"rack": "r1"}},
		{ID: "t-2", Hostname: "node2", MACs: []string{"52:54:00:00:00:02"}, Arch: "efi-x64", Site: "lab", CurrentOrder: "o-9"},
	}
	out, errOut, code := runCmd(t, "--server", url, "targets", "list")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "HOSTNAME") {
		t.Fatalf("table:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != "t-1" || f[1] != "node1" || f[6] != "rack=r1" || f[7] != "-" {
		t.Fatalf("row 1 %q", lines[1])
	}
	if !strings.Contains(lines[2], "o-9") {
		t.Fatalf("row 2 lacks the order: %q", lines[2])
	}

	out, errOut, code = runCmd(t, "--server", url, "targets", "list", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got api.TargetList
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("json output %q: %v", out, err)
	}
	if len(got.Targets) != 2 || got.Targets[1].CurrentOrder != "o-9" || got.Targets[0].Labels["rack"] != "r1" {
		t.Fatalf("json %+v", got)
	}
}

func TestTargetsShowJSONIsTheAPIObject(t *testing.T) {
	clearEnv(t)
	f, url := newFake(t)
	f.targets = []api.Target{{ID: "t-1", Hostname: "node1", MACs: []string{"52:54:00:00:00:01"}, Arch: "bios", Site: "lab"}}
	// Flags after the positional argument work too.
	out, errOut, code := runCmd(t, "targets", "show", "52:54:00:00:00:01", "-o", "json", "--server", url)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got api.Target
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.ID != "t-1" {
		t.Fatalf("%q: %v", out, err)
	}
}

func TestServerAndTokenPrecedence(t *testing.T) {
	fEnv, urlEnv := newFake(t)
	fFlag, urlFlag := newFake(t)
	tokFile := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tokFile, []byte("filetok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OSIM_SERVER", urlEnv)
	t.Setenv("OSIM_TOKEN", "envtok")

	cases := []struct {
		name      string
		args      []string
		fake      *fake
		wantToken string
	}{
		{"env only", []string{"images", "list"}, fEnv, "Bearer envtok"},
		{"flags win", []string{"--server", urlFlag, "--token", "flagtok", "images", "list"}, fFlag, "Bearer flagtok"},
		{"token file beats env", []string{"images", "list", "--token-file", tokFile}, fEnv, "Bearer filetok"},
		{"token beats token file", []string{"--token-file", tokFile, "images", "list", "--token", "flagtok"}, fEnv, "Bearer flagtok"},
		{"global flags after the command", []string{"images", "list", "--server", urlFlag}, fFlag, "Bearer envtok"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fake.mu.Lock()
			n := len(c.fake.auth)
			c.fake.mu.Unlock()
			_, errOut, code := runCmd(t, c.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			c.fake.mu.Lock()
			defer c.fake.mu.Unlock()
			if len(c.fake.auth) != n+1 || c.fake.auth[n] != c.wantToken {
				t.Fatalf("the expected server saw %v since, want one call with %q", c.fake.auth[n:], c.wantToken)
			}
		})
	}
}

func TestDefaultServerWithoutEnv(t *testing.T) {
	clearEnv(t)
	_, errOut, code := runCmd(t, "--timeout", "2s", "images", "list")
	if code != exitError || !strings.Contains(errOut, "127.0.0.1:8080") {
		t.Fatalf("exit %d, stderr %q; want a refused call to the default server", code, errOut)
	}
}

func TestAPIErrorIsPrintedAsIsWithExit1(t *testing.T) {
	clearEnv(t)
	_, url := newFake(t)
	out, errOut, code := runCmd(t, "--server", url, "targets", "rm", "t-abc")
	if code != exitError {
		t.Fatalf("exit %d, want 1", code)
	}
	if errOut != "osimctl: 409 target t-abc has live order o-1\n" || out != "" {
		t.Fatalf("stdout %q, stderr %q", out, errOut)
	}
	f, url := newFake(t)
	f.fail = api.Error{Code: 403, Message: "token role viewer may not create orders"}
	_, errOut, code = runCmd(t, "--server", url, "orders", "create", "--target", "t-1", "--image", "i-1")
	if code != exitError || errOut != "osimctl: 403 token role viewer may not create orders\n" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestUsageErrorsExit2WithAHint(t *testing.T) {
	clearEnv(t)
	f, url := newFake(t)
	cases := map[string][]string{
		"no command":           {},
		"unknown command":      {"frobnicate"},
		"unknown verb":         {"targets", "frob"},
		"unknown flag":         {"targets", "list", "--colour"},
		"missing argument":     {"targets", "show"},
		"extra argument":       {"orders", "show", "o-1", "o-2"},
		"bad output":           {"-o", "yaml", "images", "list"},
		"bad mac":              {"targets", "add", "--hostname", "h", "--mac", "zz", "--site", "lab"},
		"two target forms":     {"orders", "create", "--target", "t-1", "--selector", "rack=r1", "--image", "i-1"},
		"no image":             {"orders", "create", "--target", "t-1"},
		"bad state":            {"orders", "list", "--state", "sleeping"},
		"bad kind":             {"images", "register", "--name", "n", "--version", "1", "--kind", "tar", "--kernel", "/etc/hostname"},
		"watch without orders": {"orders", "watch"},
		"bad role":             {"tokens", "create", "--role", "god"},
		"join without site":    {"tokens", "create", "--role", "join"},
		"site on a viewer":     {"tokens", "create", "--role", "viewer", "--site", "lab"},
		"target without site":  {"targets", "add", "--hostname", "h", "--mac", "52:54:00:00:00:01"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			_, errOut, code := runCmd(t, append([]string{"--server", url}, args...)...)
			if code != exitUsage {
				t.Fatalf("exit %d, want 2; stderr %q", code, errOut)
			}
			if !strings.HasPrefix(errOut, "osimctl: ") && !strings.HasPrefix(errOut, "osimctl: drive") && !strings.HasPrefix(errOut, "usage:") {
				t.Fatalf("stderr %q", errOut)
			}
			if !strings.Contains(errOut, "-h") && !strings.Contains(errOut, "usage:") {
				t.Fatalf("no hint in %q", errOut)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.paths) != 0 {
		t.Fatalf("usage errors reached the server: %v", f.paths)
	}
}

func TestTargetsAddWithoutSiteSaysTheSiteIsRequired(t *testing.T) {
	clearEnv(t)
	_, url := newFake(t)
	_, errOut, code := runCmd(t, "--server", url, "targets", "add", "--hostname", "h", "--mac", "52:54:00:00:00:01")
	if code != exitUsage || !strings.Contains(errOut, "site: is required") {
		t.Fatalf("exit %d, stderr %q; want 2 and that the site is required", code, errOut)
	}
}

func TestHelpExits0(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"help", "orders"}, {"orders", "-h"}, {"orders", "watch", "-h"}, {"images", "register", "--help"}} {
		out, errOut, code := runCmd(t, args...)
		if code != 0 || !strings.Contains(out, "usage: osimctl") || errOut != "" {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

func TestBootserversListShowsHeartbeatAge(t *testing.T) {
	clearEnv(t)
	_, url := newFake(t)
	out, errOut, code := runCmd(t, "--server", url, "bootservers", "list")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%q", out)
	}
	if f := strings.Fields(lines[1]); f[0] != "bs1" || f[1] != "lab" || f[2] != "healthy" || f[3] != "1m" || f[4] != "42" {
		t.Fatalf("row %q", lines[1])
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestImagesRegisterUploadsChunksAndResumes(t *testing.T) {
	clearEnv(t)
	f, url := newFake(t)
	dir := t.TempDir()
	kernel := bytes.Repeat([]byte("kernel-bytes-"), 800) // 10400 bytes
	initrd := bytes.Repeat([]byte("i"), 3000)
	kp, ip := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.gz")
	script := filepath.Join(dir, "late.sh")
	for p, b := range map[string][]byte{kp: kernel, ip: initrd, script: []byte("echo hi\n")} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An earlier run was interrupted half way through the kernel.
	ks, is := sha(kernel), sha(initrd)
	f.blobs[ks] = append([]byte{}, kernel[:5200]...)
	f.blobSize[ks] = int64(len(kernel))

	out, errOut, code := runCmd(t, "--server", url, "images", "register", "--name", "debian", "--version", "12",
		"--kind", "os", "--kernel", kp, "--initrd", ip, "--cmdline", "console=ttyS0 osim.status={{.StatusURL}}",
		"--param", "console=ttyS0", "--procedure", "post:late="+script, "--chunk", "1024", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !bytes.Equal(f.blobs[ks], kernel) || !bytes.Equal(f.blobs[is], initrd) {
		t.Fatalf("blobs not stored whole: kernel %d/%d, initrd %d/%d", len(f.blobs[ks]), len(kernel), len(f.blobs[is]), len(initrd))
	}
	kp0 := f.puts[ks]
	if len(kp0) == 0 || kp0[0][0] != 5200 {
		t.Fatalf("kernel chunks %v, want the first at 5200 (resumed)", kp0)
	}
	var sent int64
	for _, r := range kp0 {
		sent += r[1] - r[0] + 1
		if r[1]-r[0]+1 > 1024 {
			t.Fatalf("chunk %v over --chunk 1024", r)
		}
	}
	if sent != int64(len(kernel))-5200 {
		t.Fatalf("sent %d kernel bytes, want only the missing %d", sent, len(kernel)-5200)
	}
	if n := len(f.puts[is]); n != 3 {
		t.Fatalf("initrd went in %d chunks, want 3", n)
	}
	if len(f.created) != 1 {
		t.Fatalf("%d images created", len(f.created))
	}
	s := f.created[0]
	want := []api.ImageFile{
		{Name: "vmlinuz", SHA256: ks, Size: int64(len(kernel)), Role: "kernel"},
		{Name: "initrd.gz", SHA256: is, Size: int64(len(initrd)), Role: "initrd"},
	}
	if len(s.Files) != 2 || s.Files[0] != want[0] || s.Files[1] != want[1] {
		t.Fatalf("files %+v, want %+v", s.Files, want)
	}
	if s.Defaults["console"] != "ttyS0" || len(s.Procedures) != 1 || s.Procedures[0] != (api.Procedure{Name: "late", When: "post", Script: "echo hi\n"}) {
		t.Fatalf("spec %+v", s)
	}
	var img api.Image
	if err := json.Unmarshal([]byte(out), &img); err != nil || img.ID != "i-1" {
		t.Fatalf("output %q: %v", out, err)
	}

	// Run again: both blobs are complete, nothing more is sent.
	before := len(f.puts[ks]) + len(f.puts[is])
	f.mu.Unlock()
	_, errOut, code = runCmd(t, "--server", url, "images", "register", "--name", "debian", "--version", "12",
		"--kind", "os", "--kernel", kp, "--initrd", ip)
	f.mu.Lock()
	if code != 0 || len(f.puts[ks])+len(f.puts[is]) != before {
		t.Fatalf("second run: exit %d (%s), %d more chunks", code, errOut, len(f.puts[ks])+len(f.puts[is])-before)
	}
}

func TestOrdersWatchExitsWhenAllFinal(t *testing.T) {
	hist := func(states ...api.OrderState) []api.Transition {
		var h []api.Transition
		var from api.OrderState
		for _, s := range states {
			h = append(h, api.Transition{From: from, To: s, At: time.Now()})
			from = s
		}
		return h
	}
	for _, c := range []struct {
		name     string
		o2Final  api.OrderState
		wantCode int
	}{
		{"all done", api.OrderDone, 0},
		{"one failed", api.OrderFailed, exitFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			f, url := newFake(t)
			f.orders["o-1"] = api.Order{ID: "o-1", Target: "t-1", State: api.OrderBooting, Attempt: 1, History: hist("pending", "staged", "booting")}
			f.orders["o-2"] = api.Order{ID: "o-2", Target: "t-2", State: api.OrderInstalling, Attempt: 1, History: hist("pending", "staged", "booting", "installing")}
			f.orders["o-3"] = api.Order{ID: "o-3", Target: "t-3", State: api.OrderInstalling, Attempt: 1}
			step := func(id string, to api.OrderState, progress int) {
				o := f.orders[id]
				if o.State != to {
					o.History = append(o.History, api.Transition{From: o.State, To: to, At: time.Now()})
				}
				o.State, o.Progress = to, progress
				f.orders[id] = o
			}
			f.events = []api.Event{
				{Seq: 1, Type: api.EventOrderState, Order: "o-1"},
				{Seq: 2, Type: api.EventInstallStatus, Order: "o-3"}, // not watched
				{Seq: 3, Type: api.EventInstallStatus, Order: "o-2", Phase: "installing", Progress: 50},
				{Seq: 4, Type: api.EventOrderState, Order: "o-2"},
				{Seq: 5, Type: api.EventOrderState, Order: "o-1"},
			}
			f.eventHook = func(e api.Event) {
				switch e.Seq {
				case 1:
					step("o-1", api.OrderInstalling, 0)
				case 3:
					step("o-2", api.OrderInstalling, 50)
				case 4:
					step("o-2", c.o2Final, 100)
				case 5:
					step("o-1", api.OrderDone, 100)
				}
			}
			done := make(chan struct{})
			var out, errOut string
			var code int
			go func() {
				defer close(done)
				out, errOut, code = runCmd(t, "--server", url, "orders", "watch", "o-1", "o-2")
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("orders watch did not return")
			}
			t.Logf("output:\n%s", out)
			if code != c.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q\n%s", code, c.wantCode, errOut, out)
			}
			for _, want := range []string{
				"o-1 t-1 booting (attempt 1)",
				"o-1 t-1 booting -> installing",
				"o-2 t-2 installing 50%",
				"o-2 t-2 installing -> " + string(c.o2Final),
				"o-1 t-1 installing -> done",
				"[booting 1, installing 1]",
				"all 2 orders final:",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "o-3") {
				t.Errorf("an unwatched order was printed:\n%s", out)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, p := range f.paths {
				if strings.HasPrefix(p, "GET /events?") && !strings.Contains(p, "wait=") {
					t.Errorf("events read without a long-poll wait: %s", p)
				}
			}
		})
	}
}

func TestEventsTailJSONAndTable(t *testing.T) {
	clearEnv(t)
	f, url := newFake(t)
	f.events = []api.Event{
		{Seq: 7, Type: api.EventDHCPSeen, MAC: "52:54:00:00:00:01"},
		{Seq: 8, Type: api.EventInstallStatus, Order: "o-1", Phase: "installing", Progress: 30, Message: "partitioning"},
	}
	out, errOut, code := runCmd(t, "--server", url, "events", "tail", "--after", "6")
	if code != 0 || !strings.Contains(out, "installing 30% partitioning") || !strings.Contains(out, "dhcp.seen") {
		t.Fatalf("exit %d (%s):\n%s", code, errOut, out)
	}
	out, _, code = runCmd(t, "--server", url, "events", "tail", "-o", "json")
	var l api.EventList
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || len(l.Events) != 2 || l.Last != 8 {
		t.Fatalf("exit %d, %v: %q", code, err, out)
	}
}

func TestTargetsAddAndImport(t *testing.T) {
	clearEnv(t)
	f, url := newFake(t)
	out, errOut, code := runCmd(t, "--server", url, "targets", "add", "--hostname", "node1", "--mac", "52-54-00-00-00-01",
		"--site", "lab", "--label", "rack=r1")
	if code != 0 || !strings.Contains(out, "52:54:00:00:00:01") || !strings.Contains(out, "rack=r1") {
		t.Fatalf("exit %d (%s):\n%s", code, errOut, out)
	}
	csvPath := filepath.Join(t.TempDir(), "nodes.csv")
	csv := "hostname,macs,site,labels\nnode2,52:54:00:00:00:02;52:54:00:00:01:02,lab,rack=r2;env=test\nnode3,52:54:00:00:00:03,lab,\n"
	if err := os.WriteFile(csvPath, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runCmd(t, "--server", url, "targets", "import", csvPath, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var l api.TargetList
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Targets) != 2 {
		t.Fatalf("%q: %v", out, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.targets); n != 3 || len(f.targets[1].MACs) != 2 || f.targets[1].Labels["env"] != "test" || f.targets[1].Arch != "bios" {
		t.Fatalf("targets %+v", f.targets)
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	_ = os.WriteFile(bad, []byte("hostname,macs,site\nok,52:54:00:00:00:09,lab\nbad,zz,lab\n"), 0o644)
	f.mu.Unlock()
	_, errOut, code = runCmd(t, "--server", url, "targets", "import", bad)
	f.mu.Lock()
	if code != exitUsage || !strings.Contains(errOut, "entry 2 (bad)") || len(f.targets) != 3 {
		t.Fatalf("exit %d, %d targets, stderr %q; want 2, nothing created", code, len(f.targets), errOut)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, errOut, code := runCmd(t, args...)
		if code != 0 || !strings.HasPrefix(out, "osimctl ") || !strings.Contains(out, "commit ") || errOut != "" {
			t.Errorf("%v: exit %d %q %q", args, code, out, errOut)
		}
	}
}
