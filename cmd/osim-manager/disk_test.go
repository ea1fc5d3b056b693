package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/internal/disktest"
	"osim/internal/promtext"
)

// TestFullDiskIsAnErrorNeverACrash runs osim-manager with its data dir on
// a filesystem of 1 GiB that the test mounts (tmpfs, then ext4 on a loop
// device) and fills: a blob that cannot fit is refused before its first
// byte, writes answer 507 naming the data dir and its free space once the
// free space is below the reserve, reads keep working, a disk filled to
// the last byte by someone else is survived (the ballast file goes), the
// process stops cleanly, a start on the full disk exits with one line, a
// start with little space runs read-only, and when the space comes back
// writes resume without a restart. Before the guard, the manager died of
// SIGBUS here and at every start after.
func TestFullDiskIsAnErrorNeverACrash(t *testing.T) {
	bin := buildManager(t)
	for _, kind := range disktest.Kinds {
		t.Run(kind, func(t *testing.T) { fullDisk(t, bin, kind) })
	}
}

func fullDisk(t *testing.T, bin, kind string) {
	ctx := context.Background()
	mnt := disktest.Mount(t, kind, 1<<30)
	data := filepath.Join(mnt, "data")
	tokFile := filepath.Join(t.TempDir(), "admin.token")
	mport := freePort(t)
	args := []string{"--listen", "127.0.0.1:0", "--data-dir", data, "--bootstrap-token-file", tokFile,
		"--metrics-listen", "127.0.0.1:" + strconv.Itoa(mport)}
	cmd, base := startServe(t, bin, args...)
	secret, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(base, strings.TrimSpace(string(secret)), false)
	target := func(i int) error {
		_, err := c.CreateTarget(ctx, api.TargetSpec{Hostname: fmt.Sprintf("n%d", i), Site: "s1", Arch: "bios",
			MACs: []string{fmt.Sprintf("02:d1:00:00:%02x:%02x", i>>8, i&0xff)}})
		return err
	}
	want507 := func(what string, err error) {
		t.Helper()
		var e *api.Error
		if !errors.As(err, &e) || e.Code != http.StatusInsufficientStorage || !strings.Contains(e.Message, data) || !strings.Contains(e.Message, "free") {
			t.Fatalf("%s: %v, want 507 naming the data dir %s and its free space", what, err, data)
		}
	}
	if err := target(0); err != nil {
		t.Fatalf("a write with room: %v", err)
	}

	// An upload that cannot fit: refused whole before its first byte.
	sha := strings.Repeat("ab", 32)
	req, _ := http.NewRequest(http.MethodPut, base+api.Prefix+"/blobs/"+sha, http.NoBody)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Range", fmt.Sprintf("bytes */%d", 900<<20))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want507("announcing a 900 MiB blob on a 1 GiB disk", &api.Error{Code: resp.StatusCode, Message: string(b)})
	if left, _ := os.ReadDir(filepath.Join(data, "blobs", "partial")); len(left) != 0 {
		t.Fatalf("the refused upload left %d partial file(s)", len(left))
	}

	// Below the reserve: writes 507, reads fine, counted.
	filler := disktest.Fill(t, mnt, 100<<20)
	want507("a target write with 100 MiB free", target(1))
	if _, err := c.ListTargets(ctx, "", "", "", 0); err != nil {
		t.Fatalf("a read below the reserve: %v", err)
	}
	if n := scrapeValue(t, mport, "osim_disk_refused_writes_total"); n < 1 {
		t.Errorf("osim_disk_refused_writes_total %v after a refusal", n)
	}
	if n := scrapeValue(t, mport, "osim_disk_low"); n != 1 {
		t.Errorf("osim_disk_low %v below the reserve", n)
	}

	// Someone fills the rest: the ballast goes so that Badger can flush.
	filler2 := disktest.Fill(t, mnt, 0)
	waitUntil(t, 5*time.Second, "the ballast to be released", func() bool {
		return scrapeValue(t, mport, "osim_disk_ballast_bytes") == 0
	})
	for i := range 20 {
		want507("a target write on a full disk", target(100+i))
	}
	if _, err := c.ListTargets(ctx, "", "", "", 0); err != nil {
		t.Fatalf("a read on a full disk: %v", err)
	}
	stopServe(t, cmd)

	// A start on the disk still full: one line and exit 1, no fault.
	out, err := exec.Command(bin, append([]string{"serve"}, args...)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "needed to open the database") {
		t.Fatalf("start on a full disk: %v\n%s", err, out)
	}
	if strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Errorf("start on a full disk printed more than one line:\n%s", out)
	}

	// With some space but below the reserve: starts read-only.
	if err := os.Remove(filler2); err != nil {
		t.Fatal(err)
	}
	cmd, base = startServe(t, bin, args...)
	c = api.NewClient(base, strings.TrimSpace(string(secret)), false)
	if _, err := c.ListTargets(ctx, "", "", "", 0); err != nil {
		t.Fatalf("a read after a read-only start: %v", err)
	}
	want507("a write after a read-only start", target(2))

	// Space back: writes resume, no restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "writes to resume", func() bool { return target(3) == nil })
	waitUntil(t, 5*time.Second, "the ballast to be made again", func() bool {
		return scrapeValue(t, mport, "osim_disk_ballast_bytes") > 0
	})
	tg, err := c.ListTargets(ctx, "", "", "", 0)
	if err != nil || len(tg.Targets) != 2 {
		t.Fatalf("targets after it all: %d %v, want the 2 written with room", len(tg.Targets), err)
	}
	stopServe(t, cmd)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// scrapeValue sums the samples of a metric family on the manager's
// /metrics (-1 if it is not there).
func scrapeValue(t *testing.T, port int, name string) float64 {
	t.Helper()
	page, err := promtext.Get(context.Background(), nil, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	if len(page[name]) == 0 {
		return -1
	}
	return page.Sum(name)
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
