package installer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"osim/controlplane/api"
	"osim/installer/blockdev"
	"osim/installer/bootargs"
	"osim/installer/customize"
	"osim/installer/gpt"
	"osim/installer/report"
	"osim/internal/testlab"
)

const mib = 1 << 20

// fakeBootServer is a stand-in for the boot server's /status, /install
// and staged-file routes (the real ones live in dataplane/httpboot).
type fakeBootServer struct {
	*httptest.Server
	plan     api.InstallPlan
	token    string
	file     []byte // served at /files/disk.img
	mu       sync.Mutex
	statuses []report.Status
}

func newFakeBootServer(t *testing.T, served []byte) *fakeBootServer {
	f := &fakeBootServer{token: "tk", file: served}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /status/{order}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.token || r.PathValue("order") != "o1" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		var s report.Status
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.statuses = append(f.statuses, s)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /install/{order}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(f.plan)
	})
	mux.HandleFunc("GET /files/disk.img", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"img1"`)
		http.ServeContent(w, r, "disk.img", time.Time{}, bytes.NewReader(f.file))
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *fakeBootServer) reports() []report.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]report.Status(nil), f.statuses...)
}

// testImage builds a 20 MiB GPT disk: partition 1 (1 MiB of a pattern),
// partition 2 an ext4 made by mke2fs -d holding /etc/marker.
func testImage(t *testing.T) []byte {
	t.Helper()
	mke2fs := testlab.RequireTool(t, "mke2fs", "e2fsprogs")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	os.WriteFile(filepath.Join(tree, "etc/marker"), []byte("installed by osim\n"), 0o644)
	part := filepath.Join(dir, "root.ext4")
	if out, err := exec.Command(mke2fs, "-q", "-F", "-t", "ext4", "-L", "root", "-d", tree, part, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v: %s", err, out)
	}
	fs, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 20*mib)
	for i := 1 * mib; i < 2*mib; i++ {
		img[i] = byte(i*7 + i>>9)
	}
	copy(img[2*mib:], fs)
	w := &sliceWriter{img}
	if err := gpt.Create(w, 512, int64(len(img)), [16]byte{9}, []gpt.Partition{
		{Type: gpt.TypeBIOSBoot, GUID: "11111111-2222-3333-4444-555555555555", First: 2048, Last: 4095, Name: "bios"},
		{Type: gpt.TypeLinuxData, GUID: "66666666-7777-8888-9999-aaaaaaaaaaaa", First: 4096, Last: 4096 + 32768 - 1, Name: "root"},
	}); err != nil {
		t.Fatal(err)
	}
	return img
}

type sliceWriter struct{ b []byte }

func (s *sliceWriter) WriteAt(p []byte, off int64) (int, error) { return copy(s.b[off:], p), nil }

func compress(t *testing.T, kind string, b []byte) []byte {
	var buf bytes.Buffer
	switch kind {
	case api.CompressionGzip:
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case api.CompressionZstd:
		w, _ := zstd.NewWriter(&buf)
		w.Write(b)
		w.Close()
	default:
		return b
	}
	return buf.Bytes()
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// loopDisk attaches a file of size bytes, filled with a pattern, as a loop
// device with partition scanning; it is detached when the test ends.
func loopDisk(t *testing.T, size int64) (string, []byte) {
	t.Helper()
	testlab.RequireRoot(t, "writing to a loop device")
	losetup := testlab.RequireTool(t, "losetup", "mount")
	file := filepath.Join(t.TempDir(), "disk")
	fill := bytes.Repeat([]byte("osim-untouched!\n"), int(size/16))
	if err := os.WriteFile(file, fill, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "-f", "--show", "-P", file).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
	return dev, fill
}

func planFor(srv *fakeBootServer, served []byte, raw int64, compression string, dev string) api.InstallPlan {
	return api.InstallPlan{
		Order: "o1", Target: "t1", Hostname: "web1", ImageName: "test", ImageVersion: "1",
		Files: []api.PlanFile{{Name: "disk.img", URL: srv.URL + "/files/disk.img", SHA256: sum(served), Size: int64(len(served)),
			RawSize: raw, Compression: compression, Role: api.RoleDisk}},
		Disk:   api.DiskRule{Path: dev},
		Params: map[string]string{"ssh.key": "ssh-ed25519 AAAAtest"},
	}
}

type consoleLog struct{ t *testing.T }

func (c consoleLog) Write(p []byte) (int, error) {
	c.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func runInstall(t *testing.T, srv *fakeBootServer) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Run(ctx, Config{
		Args:          bootargs.Args{Mode: bootargs.ModeInstall, URL: srv.URL, Order: "o1", Token: srv.token},
		IncludeLoop:   true,
		MountDir:      filepath.Join(t.TempDir(), "root"),
		Console:       consoleLog{t},
		Log:           slog.New(slog.DiscardHandler),
		ReportWindow:  5 * time.Second,
		StreamGiveUp:  5 * time.Second,
		ProgressEvery: 50 * time.Millisecond,
	})
}

func readDev(t *testing.T, dev string, n int) []byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInstallWritesTheImageBytesExactly(t *testing.T) {
	img := testImage(t)
	dev, _ := loopDisk(t, 32*mib)
	served := compress(t, api.CompressionGzip, img)
	srv := newFakeBootServer(t, served)
	srv.plan = planFor(srv, served, int64(len(img)), api.CompressionGzip, dev)

	res := runInstall(t, srv)
	if res.Err != nil || res.Disk != dev || res.Written != int64(len(img)) || res.Action != ActionReboot {
		t.Fatalf("result %+v", res)
	}
	if !bytes.Equal(readDev(t, dev, len(img)), img) {
		t.Fatal("the device's bytes differ from the image")
	}
	rs := srv.reports()
	if first := rs[0]; first.Step != api.StepInventory || first.Facts["disk."+filepath.Base(dev)+".size"] != fmt.Sprint(32*mib) || first.Facts["cpu.count"] == "" {
		t.Errorf("first report %+v does not carry the inventory", first)
	}
	if last := rs[len(rs)-1]; last.Phase != report.PhaseDone || last.Progress != 100 {
		t.Errorf("last report %+v, want done at 100", last)
	}
	if !hasStep(rs, api.StepVerify) {
		t.Error("no verify report before done")
	}
}

func hasStep(rs []report.Status, step string) bool {
	for _, s := range rs {
		if s.Step == step && s.Phase == report.PhaseInstalling {
			return true
		}
	}
	return false
}

func TestInstallGrowsTheDiskAndSeedsTheInstalledRoot(t *testing.T) {
	img := testImage(t)
	dev, _ := loopDisk(t, 48*mib)
	served := compress(t, api.CompressionZstd, img)
	srv := newFakeBootServer(t, served)
	srv.plan = planFor(srv, served, int64(len(img)), api.CompressionZstd, dev)
	srv.plan.Install.GrowLastPartition = true
	srv.plan.Install.Finish = api.FinishKexec
	srv.plan.FirstBoot = api.FirstBoot{MetaData: "instance-id: o1\nlocal-hostname: web1\n", UserData: "#cloud-config\nssh_authorized_keys: [ssh-ed25519 AAAAtest]\n"}
	srv.plan.Procedures = []api.Procedure{
		{Name: "hello", When: api.WhenPre, Script: `echo "pre on $OSIM_DISK for $OSIM_ORDER"`},
		{Name: "mark", When: api.WhenPost, Script: `echo "$OSIM_PARAM_ssh_key" > "$OSIM_ROOT/etc/post-ran"`},
	}

	res := runInstall(t, srv)
	if res.Err != nil || res.Action != ActionReboot || !strings.Contains(res.Note, "kexec") {
		t.Fatalf("result %+v", res)
	}
	if got := readDev(t, dev, 4*mib); !bytes.Equal(got[1*mib:2*mib], img[1*mib:2*mib]) {
		t.Error("partition 1 differs from the image")
	}
	f, _ := os.Open(dev)
	tb, err := gpt.Read(f, 512)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if p := tb.Partitions[1]; p.Last != tb.LastUsable() || tb.BackupLBA() != 48*mib/512-1 {
		t.Errorf("partition 2 ends at %d, last usable %d, backup at %d: not grown to the disk's end", p.Last, tb.LastUsable(), tb.BackupLBA())
	}
	rs := srv.reports()
	var pre *report.Status
	for i := range rs {
		if rs[i].Step == api.StepPre {
			pre = &rs[i]
		}
	}
	if pre == nil || pre.Data["exit_code"] != "0" || pre.Data["output_tail"] != "pre on "+dev+" for o1" {
		t.Errorf("pre report %+v", pre)
	}

	// The installed root, checked and mounted by util-linux over the
	// partition's range (this also works where the kernel lacks GPT support).
	p2 := tb.Partitions[1]
	ro := fmt.Sprintf("ro,loop,offset=%d,sizelimit=%d", p2.First*512, (p2.Last-p2.First+1)*512)
	out, err := exec.Command("losetup", "-f", "--show", "-r", "-o", fmt.Sprint(p2.First*512), "--sizelimit", fmt.Sprint((p2.Last-p2.First+1)*512), dev).Output()
	if err != nil {
		t.Fatalf("losetup over partition 2: %v", err)
	}
	part := strings.TrimSpace(string(out))
	if out, err := exec.Command(testlab.RequireTool(t, "e2fsck", "e2fsprogs"), "-fn", part).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn on the installed root: %v: %s", err, out)
	}
	exec.Command("losetup", "-d", part).Run()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ext4", "-o", ro, dev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount %s (%s): %v: %s", dev, ro, err, out)
	}
	defer exec.Command("umount", mnt).Run()
	for name, want := range map[string]string{
		customize.SeedDir + "/meta-data": srv.plan.FirstBoot.MetaData,
		customize.SeedDir + "/user-data": srv.plan.FirstBoot.UserData,
		"etc/post-ran":                   "ssh-ed25519 AAAAtest\n",
		"etc/marker":                     "installed by osim\n",
	} {
		if b, err := os.ReadFile(filepath.Join(mnt, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
}

func TestFailedInstallReportsItsStepAndLeavesTheDisk(t *testing.T) {
	img := testImage(t)
	for _, tc := range []struct {
		name     string
		diskSize int64
		edit     func(p *api.InstallPlan)
		step     string
		says     string
		touched  bool // the write began: the disk is what it is, not restored
		action   string
	}{
		{"pre procedure exits non-zero", 32 * mib, func(p *api.InstallPlan) {
			p.Procedures = []api.Procedure{{Name: "check", When: api.WhenPre, Script: "echo no way; exit 3"}}
		}, api.StepPre, `"check" exited with 3`, false, ActionWait},
		{"disk too small", 8 * mib, func(p *api.InstallPlan) {}, api.StepDisk, "disk too small", false, ActionWait},
		{"no disk matches", 32 * mib, func(p *api.InstallPlan) {
			p.Disk = api.DiskRule{Serial: "NO-SUCH-SERIAL"}
			p.Install.OnFailure = api.OnFailurePowerOff
		}, api.StepDisk, "no disk matches", false, ActionPowerOff},
		{"sha mismatch", 32 * mib, func(p *api.InstallPlan) {
			p.Files[0].SHA256 = sum([]byte("not the image"))
		}, api.StepVerify, sum([]byte("not the image")), true, ActionWait},
		{"post procedure exits non-zero", 32 * mib, func(p *api.InstallPlan) {
			p.Procedures = []api.Procedure{{Name: "late", When: api.WhenPost, Script: "exit 9"}}
		}, api.StepPost, `"late" exited with 9`, true, ActionWait},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, fill := loopDisk(t, tc.diskSize)
			srv := newFakeBootServer(t, img)
			srv.plan = planFor(srv, img, int64(len(img)), "", dev)
			tc.edit(&srv.plan)

			res := runInstall(t, srv)
			if res.Err == nil || res.Step != tc.step || res.Action != tc.action || !strings.Contains(res.Err.Error(), tc.says) {
				t.Fatalf("result %+v, want failed at %s saying %q, then %s", res, tc.step, tc.says, tc.action)
			}
			rs := srv.reports()
			last := rs[len(rs)-1]
			if last.Phase != report.PhaseFailed || last.Step != tc.step || !strings.HasPrefix(last.Message, tc.step+": ") {
				t.Errorf("last report %+v, want failed at %s", last, tc.step)
			}
			for _, s := range rs {
				if s.Phase == report.PhaseDone {
					t.Errorf("a done report after a failure: %+v", s)
				}
			}
			if !tc.touched && !bytes.Equal(readDev(t, dev, len(fill)), fill) {
				t.Error("the disk was changed by a failed install that never reached the write")
			}
		})
	}
}

func TestDiscoverPostsTheInventory(t *testing.T) {
	var got api.DiscoverReport
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	res := Run(context.Background(), Config{Args: bootargs.Args{Mode: bootargs.ModeDiscover, URL: srv.URL, MAC: "52:54:00:12:34:56", DiscoverThen: bootargs.ThenWait}, Console: consoleLog{t}, Log: slog.New(slog.DiscardHandler)})
	if res.Err != nil || res.Action != ActionWait || path != "/discover/52:54:00:12:34:56" || got.Facts["memory.bytes"] == "" {
		t.Fatalf("result %+v, path %s, facts %v", res, path, got.Facts)
	}
}

func TestWriteRateToALoopDevice(t *testing.T) {
	if testing.Short() {
		t.Skip("measures; not in -short")
	}
	const size = 256 * mib
	dev, _ := loopDisk(t, size)
	img := make([]byte, size)
	for i := 0; i < len(img); i += 4096 {
		img[i] = byte(i >> 12)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := blockdev.Copy(context.Background(), f, bytes.NewReader(img), blockdev.CopyOptions{})
	f.Close()
	if err != nil || n != size {
		t.Fatal(n, err)
	}
	d := time.Since(start)
	t.Logf("blockdev.Copy: %d MiB to %s (file-backed loop, fsync included) in %s: %.0f MB/s", n>>20, dev, d.Round(time.Millisecond), float64(n)/d.Seconds()/1e6)

	// The whole write step: HTTP from the fake boot server, sha256, write, fsync.
	srv := newFakeBootServer(t, img)
	srv.plan = planFor(srv, img, size, "", dev)
	start = time.Now()
	res := runInstall(t, srv)
	d = time.Since(start)
	if res.Err != nil || res.Written != size {
		t.Fatalf("result %+v", res)
	}
	t.Logf("installer.Run: %d MiB over HTTP, hashed and written to %s in %s: %.0f MB/s", size>>20, dev, d.Round(time.Millisecond), float64(size)/d.Seconds()/1e6)
}

// A procedure's report carries the end of its output within one of the
// boot server's data values: printable, line breaks escaped.
func TestProcedureReportKeepsTheEndOfItsOutputWithinBounds(t *testing.T) {
	var out strings.Builder
	for i := range 200 {
		fmt.Fprintf(&out, "line %d\n", i)
	}
	d := (&run{}).procedureData("p", 3, out.String()+"boom\n")
	tail := d["output_tail"]
	if len(tail) > report.MaxValueBytes || strings.ContainsAny(tail, "\n\r\t") || !strings.HasSuffix(tail, `line 199\nboom`) {
		t.Errorf("output_tail %q (%d bytes): want the end of the output, escaped, at most %d bytes", tail, len(tail), report.MaxValueBytes)
	}
	if d["exit_code"] != "3" || d["procedure"] != "p" {
		t.Errorf("data %v", d)
	}
}
