package httpboot

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"osim/internal/testlab"
)

func runCurl(t *testing.T, curl string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "--fail-with-body"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestCurlFetchesExactBytesWholeAndByRange(t *testing.T) {
	curl := testlab.RequireTool(t, "curl", "curl")
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	out := t.TempDir()
	url := srv.URL + "/files/vmlinuz"

	whole := filepath.Join(out, "whole")
	runCurl(t, curl, "-o", whole, url)
	if got, _ := os.ReadFile(whole); !bytes.Equal(got, f.kernel) {
		t.Fatalf("whole fetch: %d bytes differ from the %d served", len(got), len(f.kernel))
	}

	for _, rng := range []struct {
		arg        string
		start, end int
	}{{"1000-4999", 1000, 5000}, {"299000-", 299000, 300000}, {"0-0", 0, 1}} {
		part := filepath.Join(out, "part-"+rng.arg)
		hdr := runCurl(t, curl, "--range", rng.arg, "-D", "-", "-o", part, url)
		if !strings.Contains(hdr, " 206 ") {
			t.Errorf("--range %s: headers %q, want 206", rng.arg, hdr)
		}
		if got, _ := os.ReadFile(part); !bytes.Equal(got, f.kernel[rng.start:rng.end]) {
			t.Errorf("--range %s: %d bytes, not kernel[%d:%d]", rng.arg, len(got), rng.start, rng.end)
		}
	}

	// curl's own ETag cache: the second fetch must be a 304 with no body.
	etags := filepath.Join(out, "etags")
	runCurl(t, curl, "--etag-save", etags, "-o", filepath.Join(out, "first"), url)
	code := runCurl(t, curl, "--etag-compare", etags, "-o", filepath.Join(out, "second"), "-w", "%{http_code}", url)
	if code != "304" {
		t.Errorf("fetch with the saved ETag answered %q, want 304", code)
	}
}

func TestCurlCannotClimbOutOfTheStore(t *testing.T) {
	curl := testlab.RequireTool(t, "curl", "curl")
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	for _, p := range []string{"/files/../secret", "/files/%2e%2e/secret", "/files/escape"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, _ := exec.CommandContext(ctx, curl, "-sS", "--path-as-is", "-w", "\n%{http_code}", srv.URL+p).CombinedOutput()
		cancel()
		if !strings.HasSuffix(string(out), "\n403") || strings.Contains(string(out), "outside the root") {
			t.Errorf("curl %s: %q, want 403 without the file", p, out)
		}
	}
}

// TestCurlReportsStatusAsAnInstallerWould posts the way an installer script
// does (curl --json sets Content-Type and Accept to application/json).
func TestCurlReportsStatusAsAnInstallerWould(t *testing.T) {
	curl := testlab.RequireTool(t, "curl", "curl")
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	code := runCurl(t, curl, "-o", "/dev/null", "-w", "%{http_code}", "--oauth2-bearer", "tok123",
		"--json", `{"phase":"installing","message":"unpacking base system","progress":55}`, srv.URL+"/status/o-17")
	if code != "204" {
		t.Fatalf("status POST answered %q, want 204", code)
	}
	if got := f.sink.reports(); len(got) != 1 || got[0].Progress != 55 || got[0].Message != "unpacking base system" {
		t.Fatalf("sink got %+v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, curl, "-sS", "-w", "\n%{http_code}", "--oauth2-bearer", "wrong",
		"--json", `{"phase":"done"}`, srv.URL+"/status/o-17").CombinedOutput()
	if !strings.HasSuffix(string(out), "\n403") || !strings.Contains(string(out), "token does not match") {
		t.Fatalf("wrong token: %q, want 403 saying why", out)
	}
}
