package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/internal/manpage"
)

// buildManager compiles the command once per test binary run.
func buildManager(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "osim-manager")
	out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestServeBootstrapsAnAdminAndShutsDownOnSIGTERM(t *testing.T) {
	bin := buildManager(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	tokFile := filepath.Join(dir, "admin.token")
	cmd, base := startServe(t, bin, "--listen", "127.0.0.1:0", "--data-dir", data,
		"--bootstrap-token-file", tokFile, "--metrics-listen", "127.0.0.1:0", "--log-level", "debug")
	secret, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(tokFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d %s", resp.StatusCode, b)
	}
	c := api.NewClient(base, strings.TrimSpace(string(secret)), false)
	ctx := context.Background()
	if _, err := c.ListTargets(ctx, "", "", "", 0); err != nil {
		t.Fatalf("GET targets with the bootstrap token: %v", err)
	}
	if _, err := api.NewClient(base, "", false).ListTargets(ctx, "", "", "", 0); !api.IsStatus(err, 401) {
		t.Fatalf("without a token: %v", err)
	}
	// The data dir is locked while serve runs; token create says so.
	out, err := exec.Command(bin, "token", "create", "--role", "viewer", "--data-dir", data).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "osimctl tokens create") {
		t.Fatalf("token create on a locked data dir: %v\n%s", err, out)
	}

	stopServe(t, cmd)

	// Offline now: token create and list work on the data dir.
	out, err = exec.Command(bin, "token", "create", "--role", "operator", "--name", "ci", "--data-dir", data).Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	if s := strings.TrimSpace(string(out)); !strings.HasPrefix(s, "osim_") || strings.Contains(s, "\n") {
		t.Fatalf("token create printed %q, want the secret alone", s)
	}
	out, err = exec.Command(bin, "token", "list", "--data-dir", data).Output()
	if err != nil || !strings.Contains(string(out), "operator") || !strings.Contains(string(out), "bootstrap") {
		t.Fatalf("token list: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "token", "create", "--role", "boot-server", "--data-dir", data).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "register") {
		t.Fatalf("boot-server token offline: %v\n%s", err, out)
	}

	// A second start with the same file keeps the existing admin token.
	cmd2, _ := startServe(t, bin, "--listen", "127.0.0.1:0", "--data-dir", data, "--bootstrap-token-file", tokFile)
	again, _ := os.ReadFile(tokFile)
	if string(again) != string(secret) {
		t.Fatal("a restart replaced the bootstrap token")
	}
	stopServe(t, cmd2)
}

// --log-format json: every line on stderr is one JSON object with the
// same keys as the text lines.
func TestServeLogsJSON(t *testing.T) {
	bin := buildManager(t)
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json",
		"--bootstrap-token-file", filepath.Join(t.TempDir(), "tok"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck // stopped below unless the test failed
	sc := bufio.NewScanner(stderr)
	var url string
	for url == "" && sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("a log line that is not JSON: %q: %v", sc.Text(), err)
		}
		if ev["level"] == nil || ev["time"] == nil {
			t.Fatalf("a log line without level or time: %q", sc.Text())
		}
		if ev["msg"] == "serving" {
			url, _ = ev["url"].(string)
		}
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("no serving line with its url (%q)", url)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Errorf("a log line that is not JSON: %q", sc.Text())
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func TestBadFlagsExit2(t *testing.T) {
	bin := buildManager(t)
	for _, args := range [][]string{
		{"serve", "--log-level", "loud", "--data-dir", t.TempDir()},
		{"serve", "--tls-cert", "x", "--data-dir", t.TempDir()},
		{"token", "create", "--data-dir", t.TempDir()},
		{"nonsense"},
	} {
		err := exec.Command(bin, args...).Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit 2", args, err)
		}
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// startServe runs `osim-manager serve args...` and returns it with the base
// URL (http or https, without /api/v1) from its "serving" log line. The
// process is killed when the test ends, if it still runs; what it wrote to
// stdout (nothing, the manager only logs) fails the test.
func startServe(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	// A file, not a pipe: no copying goroutine, and readable at the end.
	stdout, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logged := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // already gone when the test stopped it
		select {           // its last lines are logged before the test ends
		case <-logged:
		case <-time.After(5 * time.Second):
		}
		stdout.Close()
		if b, _ := os.ReadFile(stdout.Name()); len(b) > 0 {
			t.Errorf("osim-manager serve wrote to stdout: %q", b)
		}
	})
	serving := make(chan string, 1)
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			l := sc.Text()
			t.Log(l)
			if strings.Contains(l, "msg=serving ") {
				if _, rest, ok := strings.Cut(l, " url="); ok {
					u, _, _ := strings.Cut(rest, " ")
					serving <- u
				}
			}
		}
	}()
	select {
	case u := <-serving:
		return cmd, u
	case <-time.After(30 * time.Second):
		t.Fatal("serve logged no serving line in 30s")
	}
	return nil, ""
}

// stopServe sends SIGTERM and wants exit 0 within 20 s.
func stopServe(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() { werr <- cmd.Wait() }()
	select {
	case err := <-werr:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not exit within 20s of SIGTERM")
	}
}

// TestOfflineJoinTokenIsBoundToASite: the offline `token create` makes
// join tokens as the API does: a site is required, uses and expiry shown.
func TestOfflineJoinTokenIsBoundToASite(t *testing.T) {
	bin := buildManager(t)
	data := t.TempDir()
	out, err := exec.Command(bin, "token", "create", "--role", "join", "--data-dir", data).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "site: is required") {
		t.Fatalf("a join token without a site: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "token", "create", "--role", "join", "--site", "fra1", "--uses", "3", "--ttl", "2h",
		"--data-dir", data).Output(); err != nil || !strings.HasPrefix(string(out), "osim_") {
		t.Fatalf("a join token for fra1: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "token", "list", "--data-dir", data).Output()
	if err != nil || !strings.Contains(string(out), "fra1") || !strings.Contains(string(out), "0/3") {
		t.Fatalf("token list: %v\n%s", err, out)
	}
}

// --version names the build: the commit it was built from, when built
// from a checkout.
func TestVersionNamesTheCommit(t *testing.T) {
	bin := buildManager(t)
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "osim-manager ") || !strings.Contains(string(out), "go1.") {
			t.Fatalf("%s: %v %q", arg, err, out)
		}
		head, gerr := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
		if gerr != nil {
			t.Logf("not a git checkout (%v): the commit is not checked", gerr)
			continue
		}
		if want := "commit " + strings.TrimSpace(string(head)); !strings.Contains(string(out), want) {
			t.Errorf("%s: %q lacks %q", arg, out, want)
		}
	}
}

// Every mode answers -h/--help with its usage and exit 0, and creates
// nothing (credentials-key --help is not a file name).
func TestEveryModeAnswersHelp(t *testing.T) {
	bin := buildManager(t)
	dir := t.TempDir()
	for _, args := range [][]string{{"help"}, {"--help"}, {"serve", "-h"}, {"serve", "--help"}, {"token", "--help"}, {"token", "help"},
		{"token", "create", "--help"}, {"token", "list", "-h"}, {"credentials-key", "--help"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(strings.ToLower(string(out)), "usage") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("help made files: %v", entries)
	}
	if out, err := exec.Command(bin, "token", "frobnicate").CombinedOutput(); err == nil || !strings.Contains(string(out), "unknown command") {
		t.Errorf("token frobnicate: %v %s", err, out)
	}
}

// A running manager is backed up through its API while targets are being
// written; the backup restores into an empty dir, a manager serves it
// with the same tokens, targets, image and blob; a cut-short backup and an
// occupied dir are refused; a stopped manager's dir backs up offline.
func TestBackupOfARunningManagerRestoresAndServes(t *testing.T) {
	bin := buildManager(t)
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "admin.token")
	cmd, base := startServe(t, bin, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--bootstrap-token-file", tokFile)
	secret, _ := os.ReadFile(tokFile)
	c := api.NewClient(base, strings.TrimSpace(string(secret)), false)
	ctx := context.Background()
	blob := []byte(strings.Repeat("osim backup blob ", 4096))
	sum := sha256.Sum256(blob)
	sha := hex.EncodeToString(sum[:])
	if _, err := c.UploadBlob(ctx, sha, int64(len(blob)), bytes.NewReader(blob), 1<<16); err != nil {
		t.Fatal(err)
	}
	img, err := c.CreateImage(ctx, api.ImageSpec{Name: "deb", Version: "1", Kind: api.KindOS,
		Files: []api.ImageFile{{Name: "vmlinuz", SHA256: sha, Size: int64(len(blob)), Role: api.RoleKernel}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	loaded := make(chan int)
	go func() { // the write load
		n := 0
		for {
			select {
			case <-stop:
				loaded <- n
				return
			default:
			}
			if _, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("n%d", n), MACs: []string{fmt.Sprintf("52:54:00:00:%02x:%02x", n/256, n%256)},
				Arch: "bios", Site: "lab"}); err != nil {
				t.Errorf("the load: %v", err)
				loaded <- n
				return
			}
			n++
		}
	}()
	time.Sleep(300 * time.Millisecond)
	file := filepath.Join(dir, "manager.backup")
	if out, err := exec.Command(bin, "backup", "--to", file, "--server", base, "--token-file", tokFile).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	close(stop)
	written := <-loaded
	if out, err := exec.Command(bin, "backup", "--to", file, "--server", base, "--token-file", tokFile).CombinedOutput(); err == nil || !strings.Contains(string(out), "exists") {
		t.Errorf("a backup over an existing file: %v %s", err, out)
	}
	stopServe(t, cmd)

	restored := filepath.Join(dir, "restored")
	if out, err := exec.Command(bin, "restore", "--from", file, "--data-dir", restored).CombinedOutput(); err != nil || !strings.Contains(string(out), "1 blobs") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	cmd2, base2 := startServe(t, bin, "--listen", "127.0.0.1:0", "--data-dir", restored)
	c2 := api.NewClient(base2, strings.TrimSpace(string(secret)), false)
	l, err := c2.ListTargets(ctx, "", "", "", 1000)
	if err != nil {
		t.Fatalf("the restored manager with the old admin token: %v", err)
	}
	t.Logf("restored %d of the %d targets the load wrote", len(l.Targets), written)
	if n := len(l.Targets); n == 0 || n > written {
		t.Errorf("restored %d targets of %d written (some, taken while the load ran)", n, written)
	}
	var got bytes.Buffer
	if _, err := c2.DownloadBlob(ctx, sha, 0, &got); err != nil || !bytes.Equal(got.Bytes(), blob) {
		t.Errorf("the restored blob: %v, %d bytes", err, got.Len())
	}
	if im, err := c2.GetImage(ctx, img.ID); err != nil || im.Name != "deb" {
		t.Errorf("the restored image: %v %+v", err, im)
	}
	stopServe(t, cmd2)

	// A stopped manager's data dir backs up offline.
	offline := filepath.Join(dir, "offline.backup")
	if out, err := exec.Command(bin, "backup", "--to", offline, "--data-dir", restored).CombinedOutput(); err != nil {
		t.Fatalf("offline backup: %v\n%s", err, out)
	}
	// Cut short: refused, nothing left behind.
	b, _ := os.ReadFile(offline)
	cut := filepath.Join(dir, "cut.backup")
	os.WriteFile(cut, b[:len(b)-100], 0o600)
	if out, err := exec.Command(bin, "restore", "--from", cut, "--data-dir", filepath.Join(dir, "r2")).CombinedOutput(); err == nil || !strings.Contains(string(out), "not a whole osim backup") {
		t.Errorf("restore of a cut-short backup: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "r2")); err == nil {
		t.Error("a refused restore left its data dir")
	}
	if out, err := exec.Command(bin, "restore", "--from", offline, "--data-dir", restored).CombinedOutput(); err == nil || !strings.Contains(string(out), "not empty") {
		t.Errorf("restore into an occupied dir: %v %s", err, out)
	}
}

// osim-manager man: its usage as a man page groff formats without a
// warning.
func TestManPage(t *testing.T) {
	out, err := exec.Command(buildManager(t), "man").Output()
	if err != nil {
		t.Fatal(err)
	}
	if text := manpage.Check(t, out); !strings.Contains(text, "osim-manager backup --to FILE") {
		t.Errorf("the page lacks the usage:\n%s", text)
	}
}
