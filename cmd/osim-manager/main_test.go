package main

import (
	"bufio"
	"context"
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
	cmd2 := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--bootstrap-token-file", tokFile)
	stdout2, _ := cmd2.StdoutPipe()
	cmd2.Stderr = testLog{t}
	if err := cmd2.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd2.Process.Kill() //nolint:errcheck // if the test fails before SIGINT
	if _, err := bufio.NewReader(stdout2).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(tokFile)
	if string(again) != string(secret) {
		t.Fatal("a restart replaced the bootstrap token")
	}
	_ = cmd2.Process.Signal(os.Interrupt)
	if err := cmd2.Wait(); err != nil {
		t.Fatalf("second serve: %v", err)
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
// URL (http or https, without /api/v1) from the line it prints first. The
// process is killed when the test ends, if it still runs.
func startServe(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testLog{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck // already gone when the test stopped it
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			first <- sc.Text()
		}
		io.Copy(io.Discard, stdout) //nolint:errcheck // keep the pipe drained
	}()
	select {
	case l := <-first:
		// "osim-manager serving http://127.0.0.1:PORT/api/v1/"
		i := strings.Index(l, "http")
		if i < 0 {
			t.Fatalf("first line %q has no URL", l)
		}
		return cmd, strings.TrimSuffix(strings.TrimSuffix(l[i:], "/"), api.Prefix)
	case <-time.After(30 * time.Second):
		t.Fatal("serve printed no URL in 30s")
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
