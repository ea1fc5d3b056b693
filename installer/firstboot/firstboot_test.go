package firstboot

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"osim/controlplane/api"
	"osim/dataplane/httpboot"
)

func testConfig(base string) Config {
	return Config{BaseURL: base, Order: "o-1", Token: "tok-1",
		Procedures: []api.Procedure{
			{Name: "pre1", When: api.WhenPre, Script: "echo pre"},
			{Name: "motd", When: api.WhenFirstBoot, Script: `echo "hello from $OSIM_ORDER size=$OSIM_PARAM_disk_size pw=${OSIM_PARAM_root_password:-unset}"`},
			{Name: "fails", When: api.WhenFirstBoot, Script: "echo broken >&2; exit 3"},
		},
		Params:  map[string]string{"disk.size": "10G", "root_password": "hunter2", "odd": "it's"},
		Secrets: []string{"root_password"}}
}

func TestWriteLaysOutProceduresRunnerAndAnEnabledUnit(t *testing.T) {
	root := t.TempDir()
	if err := Write(root, testConfig("http://127.0.0.1:1/")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, Dir)
	for name, mode := range map[string]os.FileMode{"01-motd.sh": 0o700, "02-fails.sh": 0o700, "env": 0o600,
		"report.conf": 0o600, "auth": 0o600, "run": 0o755} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %o, want %o", name, fi.Mode().Perm(), mode)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: mode %o, want 0700 (root only: it holds the token)", dir, fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, "00-pre1.sh")); err == nil {
		t.Error("a pre procedure was written as first-boot")
	}
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	if strings.Contains(string(env), "hunter2") || !strings.Contains(string(env), "OSIM_PARAM_disk_size='10G'") {
		t.Errorf("env holds a secret or lacks a parameter:\n%s", env)
	}
	unit, _ := os.ReadFile(filepath.Join(root, UnitDir, UnitName))
	for _, want := range []string{"Type=oneshot", "ConditionPathExists=!/var/lib/osim/firstboot/done", "ExecStart=/var/lib/osim/firstboot/run", "WantedBy=multi-user.target"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	link := filepath.Join(root, UnitDir, "multi-user.target.wants", UnitName)
	if got, err := os.Readlink(link); err != nil || got != "../"+UnitName {
		t.Errorf("wants link = %q, %v", got, err)
	}
	if _, err := os.Stat(link); err != nil {
		t.Errorf("wants link does not resolve: %v", err)
	}
	if err := Write(root, testConfig("http://127.0.0.1:1/")); err != nil {
		t.Errorf("writing again: %v", err)
	}
	empty := t.TempDir()
	c := testConfig("http://x")
	c.Procedures = c.Procedures[:1]
	if err := Write(empty, c); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("no first-boot procedure, yet %d entries written", len(ents))
	}
}

// fakeFirstBoots records reports for token tok-1 of order o-1.
type fakeFirstBoots struct {
	mu      sync.Mutex
	reports []httpboot.FirstBootReport
}

func (f *fakeFirstBoots) FirstBootToken(_ context.Context, order string) (string, error) {
	if order != "o-1" {
		return "", httpboot.ErrUnknownOrder
	}
	return "tok-1", nil
}

func (f *fakeFirstBoots) FirstBootReport(_ context.Context, r httpboot.FirstBootReport) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, r)
	return nil
}

func bootServer(t *testing.T) (*httptest.Server, *fakeFirstBoots) {
	fb := &fakeFirstBoots{}
	files, err := httpboot.NewFolderFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpboot.New(httpboot.Config{Scripts: httpboot.StaticScripts{}, Files: files, Tokens: httpboot.StaticTokens{},
		Sink: nopSink{}, FirstBoots: fb})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, fb
}

type nopSink struct{}

func (nopSink) Report(context.Context, httpboot.Status) error { return nil }

// runRunner runs the written runner with PATH as given (nil: the test's).
func runRunner(t *testing.T, root string, path string) string {
	cmd := exec.Command("/bin/sh", filepath.Join(root, Dir, "run"))
	cmd.Env = append(os.Environ(), "OSIM_FIRSTBOOT_DIR="+filepath.Join(root, Dir))
	if path != "" {
		cmd.Env = append(cmd.Env, "PATH="+path)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("runner: %v\n%s", err, out)
	}
	return string(out)
}

func checkReports(t *testing.T, root string, fb *fakeFirstBoots) {
	t.Helper()
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if len(fb.reports) != 2 {
		t.Fatalf("%d reports, want 2: %+v", len(fb.reports), fb.reports)
	}
	r := fb.reports[0]
	if r.Procedure != "motd" || r.ExitCode != 0 || r.OutputTail != `hello from o-1 size=10G pw=unset\n` {
		t.Errorf("first report = %+v", r)
	}
	if r := fb.reports[1]; r.Procedure != "fails" || r.ExitCode != 3 || r.OutputTail != `broken\n` {
		t.Errorf("second report = %+v", r)
	}
	dir := filepath.Join(root, Dir)
	for _, gone := range []string{"report.conf", "auth"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("%s left after the last report", gone)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
		t.Errorf("no done marker: %v", err)
	}
}

func TestRunnerRunsEachProcedureOnceAndReportsWithCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	srv, fb := bootServer(t)
	root := t.TempDir()
	if err := Write(root, testConfig(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	out := runRunner(t, root, "")
	if !strings.Contains(out, "osim-firstboot: fails exited 3") {
		t.Errorf("runner output lacks the failing procedure:\n%s", out)
	}
	checkReports(t, root, fb)
	runRunner(t, root, "") // the marker: nothing runs again
	checkReports(t, root, fb)
}

func TestRunnerReportsWithBusyboxWgetWhenThereIsNoCurl(t *testing.T) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed")
	}
	bin := t.TempDir()
	for _, tool := range []string{"sh", "basename", "tail", "rm", "sleep", "wget"} {
		if err := os.Symlink(bb, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	srv, fb := bootServer(t)
	root := t.TempDir()
	if err := Write(root, testConfig(srv.URL)); err != nil {
		t.Fatal(err)
	}
	runRunner(t, root, bin)
	checkReports(t, root, fb)
}
