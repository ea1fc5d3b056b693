package pxeclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStatus is a status endpoint that checks the bearer token, records
// every report and answers from a script of status codes (then 204).
type fakeStatus struct {
	mu      sync.Mutex
	token   string
	answers []int
	calls   int
	reports []StatusReport
	// onReport, when set, sees each accepted report (under the lock).
	onReport func(StatusReport)
}

func (f *fakeStatus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want a JSON POST", http.StatusBadRequest)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		http.Error(w, "token does not match", http.StatusForbidden)
		return
	}
	if len(f.answers) > 0 {
		code := f.answers[0]
		f.answers = f.answers[1:]
		if code != http.StatusNoContent {
			http.Error(w, "scripted answer", code)
			return
		}
	}
	var rep StatusReport
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.reports = append(f.reports, rep)
	if f.onReport != nil {
		f.onReport(rep)
	}
	w.WriteHeader(http.StatusNoContent)
}

// serveInstall serves an iPXE script whose kernel line names the fake
// status endpoint with token, plus the kernel and an initrd.
func serveInstall(t *testing.T, st *fakeStatus, token string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("POST /status/o-1", st)
	var base string
	mux.HandleFunc("GET /boot.ipxe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "#!ipxe\ninitrd %s/initrd.gz\nkernel %s/vmlinuz initrd=initrd.gz console=ttyS0 osim.order=o-1 %s=%s/status/o-1 %s=%s\nboot\n",
			base, base, ParamStatus, base, ParamToken, token)
	})
	mux.HandleFunc("GET /vmlinuz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("kernel")) })
	mux.HandleFunc("GET /initrd.gz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("initrd")) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base = srv.URL
	return srv.URL + "/boot.ipxe"
}

func runInstall(t *testing.T, ic *InstallConfig, scriptURL string) (*Result, error) {
	t.Helper()
	c := &client{cfg: Config{Install: ic, Do: func(f func() error) error { return f() }}, res: &Result{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.httpStage(ctx, &Firmware{Name: "test"}, scriptURL)
	return c.res, err
}

// sleeps records the waits instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func TestParseScriptKeepsKernelCmdline(t *testing.T) {
	s, err := ParseScript("#!ipxe\nkernel --name k http://x/vmlinuz initrd=a osim.status=http://x/status/o-1 osim.token=t1\nboot\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.Cmdline != "initrd=a osim.status=http://x/status/o-1 osim.token=t1" {
		t.Fatalf("cmdline %q", s.Cmdline)
	}
	if v, _ := CmdlineParam(s.Cmdline, ParamStatus); v != "http://x/status/o-1" {
		t.Fatalf("osim.status %q", v)
	}
	if v, _ := CmdlineParam(s.Cmdline, ParamToken); v != "t1" {
		t.Fatalf("osim.token %q", v)
	}
}

func TestInstallReportsStepsThenDone(t *testing.T) {
	st := &fakeStatus{token: "tok1"}
	sl := &sleeps{}
	res, err := runInstall(t, &InstallConfig{Steps: 3, Delay: time.Second, Sleep: sl.sleep}, serveInstall(t, st, "tok1"))
	if err != nil {
		t.Fatal(err)
	}
	if st.calls != 5 || res.StatusCalls != 5 {
		t.Fatalf("%d calls seen, %d sent; want 5 (start, 3 steps, done)", st.calls, res.StatusCalls)
	}
	var got []string
	for _, r := range st.reports {
		p := -1
		if r.Progress != nil {
			p = *r.Progress
		}
		got = append(got, fmt.Sprintf("%s:%d", r.Phase, p))
		if r.Facts != nil {
			t.Errorf("facts sent though none are configured: %v", r.Facts)
		}
	}
	if want := "installing:0 installing:25 installing:50 installing:75 done:100"; strings.Join(got, " ") != want {
		t.Fatalf("reports %q, want %q", strings.Join(got, " "), want)
	}
	if len(sl.d) != 4 || sl.d[0] != time.Second {
		t.Fatalf("waits %v, want 4 of 1s", sl.d)
	}
	if res.Installed != "done" {
		t.Fatalf("Installed %q", res.Installed)
	}
	last := res.Phases[len(res.Phases)-1]
	if last.Phase != PhaseInstall || last.Stage != "test" {
		t.Fatalf("last timing %+v, want the install phase", last)
	}
}

func TestInstallFailsWithFacts(t *testing.T) {
	st := &fakeStatus{token: "tok1"}
	sl := &sleeps{}
	res, err := runInstall(t, &InstallConfig{Fail: true, Facts: map[string]string{"disk": "sda"}, Sleep: sl.sleep}, serveInstall(t, st, "tok1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.reports) != 2 {
		t.Fatalf("%d reports, want 2", len(st.reports))
	}
	f := st.reports[1]
	if f.Phase != "failed" || f.Facts["disk"] != "sda" || f.Message == "" {
		t.Fatalf("final report %+v", f)
	}
	if st.reports[0].Facts != nil {
		t.Fatalf("facts on the first report")
	}
	if res.Installed != "failed" {
		t.Fatalf("Installed %q", res.Installed)
	}
}

func TestInstallRetries503WithBackoff(t *testing.T) {
	st := &fakeStatus{token: "tok1", answers: []int{503, 503, 204}}
	sl := &sleeps{}
	res, err := runInstall(t, &InstallConfig{RetryBase: 100 * time.Millisecond, Sleep: sl.sleep}, serveInstall(t, st, "tok1"))
	if err != nil {
		t.Fatal(err)
	}
	if st.calls != 4 || len(st.reports) != 2 || res.StatusCalls != 4 {
		t.Fatalf("calls %d (sent %d), reports %d; want 4 calls, 2 reports", st.calls, res.StatusCalls, len(st.reports))
	}
	if len(sl.d) < 2 || sl.d[0] != 100*time.Millisecond || sl.d[1] != 200*time.Millisecond {
		t.Fatalf("waits %v, want 100ms then 200ms first", sl.d)
	}
}

func TestInstallGivesUpAfterRetries(t *testing.T) {
	st := &fakeStatus{token: "tok1", answers: []int{503, 503, 503, 503}}
	_, err := runInstall(t, &InstallConfig{Retries: 2, Sleep: (&sleeps{}).sleep}, serveInstall(t, st, "tok1"))
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != PhaseStatus || st.calls != 3 {
		t.Fatalf("err %v after %d calls; want a status PhaseError after 3", err, st.calls)
	}
}

func TestInstallRefusedIsStatusPhaseError(t *testing.T) {
	for name, answers := range map[string][]int{"wrong token": nil, "422": {422}} {
		t.Run(name, func(t *testing.T) {
			st := &fakeStatus{token: "tok1", answers: answers}
			token := "tok1"
			if answers == nil {
				token = "wrong"
			}
			res, err := runInstall(t, &InstallConfig{Steps: 2, Sleep: (&sleeps{}).sleep}, serveInstall(t, st, token))
			var pe *PhaseError
			if !errors.As(err, &pe) || pe.Phase != PhaseStatus {
				t.Fatalf("err %v, want a PhaseError for %q", err, PhaseStatus)
			}
			if st.calls != 1 {
				t.Fatalf("%d calls, want 1 (no retry of a 4xx)", st.calls)
			}
			if res.Installed != "" {
				t.Fatalf("Installed %q after a refusal", res.Installed)
			}
		})
	}
}

func TestNoInstallConfigStopsAfterKernel(t *testing.T) {
	st := &fakeStatus{token: "tok1"}
	res, err := runInstall(t, nil, serveInstall(t, st, "tok1"))
	if err != nil {
		t.Fatal(err)
	}
	if st.calls != 0 || res.StatusCalls != 0 || len(res.Files) != 3 {
		t.Fatalf("%d status calls, %d files", st.calls, len(res.Files))
	}
}

func TestInstallWithoutStatusURLFailsInstallPhase(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boot.ipxe" {
			w.Write([]byte("#!ipxe\nkernel /vmlinuz console=ttyS0\nboot\n"))
			return
		}
		w.Write([]byte("k"))
	}))
	defer srv.Close()
	_, err := runInstall(t, &InstallConfig{}, srv.URL+"/boot.ipxe")
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != PhaseInstall || !strings.Contains(err.Error(), ParamStatus) {
		t.Fatalf("err %v, want an install PhaseError naming %s", err, ParamStatus)
	}
}
