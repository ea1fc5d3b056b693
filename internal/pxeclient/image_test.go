package pxeclient

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"osim/controlplane/api"
)

// fakeInstallServer is a fake boot server for install mode: the iPXE
// script with osim.mode=install, kernel and initrd, /status/o-1 (a
// fakeStatus), /install/o-1 (the plan, bearer checked) and the disk file.
type fakeInstallServer struct {
	st     *fakeStatus
	token  string
	served []byte // the disk file's bytes as served
	sha    string // what the plan says (sha256 of served unless a test lies)
	comp   string
	url    string
	// planCode, when set, is the plan's answer instead of the plan.
	planCode int
}

func newFakeInstallServer(t *testing.T, served []byte, comp string) *fakeInstallServer {
	t.Helper()
	sum := sha256.Sum256(served)
	f := &fakeInstallServer{st: &fakeStatus{token: "tok-1"}, token: "tok-1", served: served,
		sha: hex.EncodeToString(sum[:]), comp: comp}
	mux := http.NewServeMux()
	mux.Handle("POST /status/o-1", f.st)
	mux.HandleFunc("GET /boot.ipxe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "#!ipxe\ninitrd %[1]s/initrd.gz\nkernel %[1]s/vmlinuz initrd=initrd.gz osim.mode=install osim.url=%[1]s osim.order=o-1 osim.token=%[2]s osim.mac=52:54:00:00:00:01\nboot\n",
			f.url, f.token)
	})
	mux.HandleFunc("GET /vmlinuz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("kernel")) })
	mux.HandleFunc("GET /initrd.gz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("initrd")) })
	mux.HandleFunc("GET /install/o-1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			http.Error(w, "token does not match", http.StatusForbidden)
			return
		}
		if f.planCode != 0 {
			http.Error(w, "order o-1 is not staged here", f.planCode)
			return
		}
		json.NewEncoder(w).Encode(api.InstallPlan{Order: "o-1", Image: "img-1", Files: []api.PlanFile{
			{Name: "boot.txt", URL: f.url + "/files/boot.txt", SHA256: strings.Repeat("0", 64), Size: 1, Role: api.RoleOther},
			{Name: "disk.img", URL: f.url + "/files/disk.img", SHA256: f.sha, Size: int64(len(f.served)), Compression: f.comp, Role: api.RoleDisk},
		}})
	})
	mux.HandleFunc("GET /files/disk.img", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.served))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{'t'}).Read(b)
	return b
}

// bufferSink keeps what each order wrote.
type bufferSink struct {
	mu  sync.Mutex
	got map[string]*bytes.Buffer
}

type bufCloser struct{ *bytes.Buffer }

func (bufCloser) Close() error { return nil }

func (s *bufferSink) open(order string, f api.PlanFile) (io.WriteCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.got == nil {
		s.got = map[string]*bytes.Buffer{}
	}
	b := &bytes.Buffer{}
	s.got[order+"/"+f.Name] = b
	return bufCloser{b}, nil
}

func TestImageInstallWritesTheDiskFileAndReportsDone(t *testing.T) {
	disk := randomBytes(3<<20 + 17)
	fs := newFakeInstallServer(t, disk, "")
	sink := &bufferSink{}
	res, err := runInstall(t, &InstallConfig{Image: &ImageConfig{DiskSize: 8 << 30, Sink: sink.open}}, fs.url+"/boot.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	if res.Installed != "done" || res.Image == nil {
		t.Fatalf("installed %q, image %+v; want done", res.Installed, res.Image)
	}
	if got := sink.got["o-1/disk.img"]; got == nil || !bytes.Equal(got.Bytes(), disk) {
		t.Fatalf("the sink did not get the disk file's bytes")
	}
	if _, other := sink.got["o-1/boot.txt"]; other {
		t.Errorf("a file of role %s was streamed; only %s files are", api.RoleOther, api.RoleDisk)
	}
	if res.Image.Served != int64(len(disk)) || res.Image.Written != int64(len(disk)) {
		t.Errorf("served %d, written %d; want %d both", res.Image.Served, res.Image.Written, len(disk))
	}
	reps := fs.st.reports
	first, last := reps[0], reps[len(reps)-1]
	if first.Phase != "installing" || first.Step != api.StepInventory {
		t.Errorf("first report %+v; want installing, step %s", first, api.StepInventory)
	}
	if first.Facts["mac"] != "52:54:00:00:00:01" || first.Facts["disk0_size"] != fmt.Sprint(8<<30) {
		t.Errorf("inventory facts %v do not carry the MAC and the disk size", first.Facts)
	}
	if last.Phase != "done" || last.Progress == nil || *last.Progress != 100 {
		t.Errorf("last report %+v; want done at 100", last)
	}
}

func TestImageInstallHashMismatchReportsFailedWithReason(t *testing.T) {
	disk := randomBytes(1 << 20)
	fs := newFakeInstallServer(t, disk, "")
	fs.served = append([]byte{}, disk...)
	fs.served[12345] ^= 0xff // the staged copy rotted after the plan was made
	res, err := runInstall(t, &InstallConfig{}, fs.url+"/boot.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	if res.Installed != "failed" {
		t.Fatalf("installed %q; want failed", res.Installed)
	}
	last := fs.st.reports[len(fs.st.reports)-1]
	if last.Phase != "failed" || last.Step != api.StepVerify || !strings.Contains(last.Message, "sha256") || !strings.Contains(last.Message, "disk.img") {
		t.Errorf("last report %+v; want failed at step %s naming disk.img and sha256", last, api.StepVerify)
	}
	for _, r := range fs.st.reports {
		if r.Phase == "done" {
			t.Errorf("a done report was sent for a corrupt image: %+v", r)
		}
	}
	if res.Image.Reason == "" {
		t.Error("Result.Image.Reason is empty")
	}
}

func TestImageInstallRefusedPlanReportsFailedAtPlan(t *testing.T) {
	fs := newFakeInstallServer(t, randomBytes(1000), "")
	fs.planCode = http.StatusNotFound
	res, err := runInstall(t, &InstallConfig{}, fs.url+"/boot.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	last := fs.st.reports[len(fs.st.reports)-1]
	if res.Installed != "failed" || last.Phase != "failed" || last.Step != api.StepPlan || !strings.Contains(last.Message, "404") {
		t.Errorf("installed %q, last report %+v; want failed at step %s with the plan's answer", res.Installed, last, api.StepPlan)
	}
}

// fakeClock moves one tick per reading and notes the time of each report.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	tick time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.tick)
	return c.now
}

func (c *fakeClock) peek() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func TestImageInstallReportsProgressEveryIntervalWhileStreaming(t *testing.T) {
	disk := randomBytes(4 << 20)
	fs := newFakeInstallServer(t, disk, "")
	clk := &fakeClock{now: time.Unix(0, 0), tick: time.Second}
	var at []time.Time
	fs.st.onReport = func(r StatusReport) {
		if r.Step == api.StepWrite {
			at = append(at, clk.peek())
		}
	}
	const every = 5 * time.Second
	res, err := runInstall(t, &InstallConfig{Image: &ImageConfig{ProgressEvery: every, Now: clk.Now}}, fs.url+"/boot.ipxe")
	if err != nil || res.Installed != "done" {
		t.Fatalf("err %v, installed %q", err, res.Installed)
	}
	if len(at) < 3 {
		t.Fatalf("%d progress reports over %s of streaming; want one per %s", len(at), res.Image.Stream, every)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < every || gap > every+clk.tick {
			t.Errorf("reports %d and %d are %s apart; want %s (one clock tick of slack)", i-1, i, gap, every)
		}
	}
	prev := -1
	for _, r := range fs.st.reports {
		if r.Step != api.StepWrite {
			continue
		}
		if r.Progress == nil || *r.Progress < prev || *r.Progress > 99 {
			t.Fatalf("progress %v after %d; want rising percents below 100 while writing", r.Progress, prev)
		}
		prev = *r.Progress
	}
}

func TestImageInstallDecompressesOnlyWhenAsked(t *testing.T) {
	raw := bytes.Repeat([]byte("osim disk block "), 64<<10)
	enc, _ := zstd.NewWriter(nil)
	comp := enc.EncodeAll(raw, nil)
	for _, tc := range []struct {
		decompress bool
		want       []byte
	}{{false, comp}, {true, raw}} {
		fs := newFakeInstallServer(t, comp, api.CompressionZstd)
		sink := &bufferSink{}
		res, err := runInstall(t, &InstallConfig{Image: &ImageConfig{Decompress: tc.decompress, Sink: sink.open}}, fs.url+"/boot.ipxe")
		if err != nil || res.Installed != "done" {
			t.Fatalf("decompress %v: err %v, installed %q", tc.decompress, err, res.Installed)
		}
		if got := sink.got["o-1/disk.img"].Bytes(); !bytes.Equal(got, tc.want) {
			t.Errorf("decompress %v: sink got %d bytes, want %d", tc.decompress, len(got), len(tc.want))
		}
		if res.Image.Served != int64(len(comp)) || res.Image.Written != int64(len(tc.want)) {
			t.Errorf("decompress %v: served %d written %d; want %d and %d", tc.decompress, res.Image.Served, res.Image.Written, len(comp), len(tc.want))
		}
	}
}

func TestStatusOnlyFlowWithoutInstallMode(t *testing.T) {
	st := &fakeStatus{token: "t1"}
	res, err := runInstall(t, &InstallConfig{Image: &ImageConfig{}}, serveInstall(t, st, "t1"))
	if err != nil || res.Installed != "done" || res.Image != nil {
		t.Fatalf("err %v, installed %q, image %+v; want the status-only flow", err, res.Installed, res.Image)
	}
	for _, r := range st.reports {
		if r.Step != "" {
			t.Errorf("status-only report carries step %q (the old endpoint refuses unknown fields)", r.Step)
		}
	}
}
