package manager

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
	"osim/internal/clock"
)

// stallEnv is a manager with a short body idle timeout, a small maximum
// image size and a retention clock the test moves.
type stallEnv struct {
	ts    *httptest.Server
	srv   *Server
	reg   *prometheus.Registry
	clock *clock.Fake
	dir   string
	op    string // an operator's secret
}

func newStallEnv(t *testing.T) *stallEnv {
	t.Helper()
	clock := clock.NewFake(time.Now())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	store, err := mdb.Open(dir, mdb.Options{Logger: log, MaxBlobSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(Config{Store: store, Logger: log, Registry: reg, Clock: clock,
		BodyIdleTimeout: 300 * time.Millisecond, UploadTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); store.Close() })
	info, err := CreateToken(context.Background(), store, api.RoleOperator, "op", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &stallEnv{ts: ts, srv: srv, reg: reg, clock: clock, dir: dir, op: info.Secret}
}

func (e *stallEnv) req(t *testing.T, method, path string, body []byte, hdr ...string) (int, string) {
	t.Helper()
	r, _ := http.NewRequest(method, e.ts.URL+api.Prefix+path, bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+e.op)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v (a hang here is the defect)", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStalledBlobUploadBlocksNobody: a PUT that sends 10 of its 100 bytes
// and stops. Status, HEAD and a second writer are answered at once (the
// second with 409, not a hang), the stalled body is ended after the idle
// timeout, and the upload then resumes from what was stored.
func TestStalledBlobUploadBlocksNobody(t *testing.T) {
	e := newStallEnv(t)
	data := bytes.Repeat([]byte("0123456789"), 10)
	sha := shaOf(data)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT %s/blobs/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Range: bytes 0-99/100\r\nContent-Length: 100\r\n\r\n%s",
		api.Prefix, sha, e.op, data[:10])
	time.Sleep(100 * time.Millisecond) // the server is now reading the body

	start := time.Now()
	if code, body := e.req(t, "GET", "/blobs/"+sha+"/status", nil); code != 200 {
		t.Fatalf("status during a stalled upload: %d %s", code, body)
	}
	if code, _ := e.req(t, "HEAD", "/blobs/"+sha, nil); code == 0 {
		t.Fatal("HEAD during a stalled upload")
	}
	if code, body := e.req(t, "PUT", "/blobs/"+sha, data[10:], "Content-Range", "bytes 10-99/100"); code != http.StatusConflict {
		t.Fatalf("a second writer during a stalled upload: %d %s, want 409", code, body)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("status, HEAD and the second writer took %s together: they waited for the stalled body", d)
	}
	// The stalled PUT ends after the idle timeout with an answer.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the stalled PUT got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("the stalled PUT: %d, want 408", resp.StatusCode)
	}
	c := api.NewClient(e.ts.URL, e.op, false)
	st, err := c.UploadBlob(context.Background(), sha, int64(len(data)), bytes.NewReader(data), 64)
	if err != nil || !st.Complete {
		t.Fatalf("resume after the stall: %+v %v", st, err)
	}
}

// TestPartialUploadCanBeAbandonedAndExpires: DELETE drops a partial upload
// (its file and its announced size), a complete blob is 409; an upload
// idle past the TTL goes with the janitor and is counted; an announced
// size over the maximum image size is 413.
func TestPartialUploadCanBeAbandonedAndExpires(t *testing.T) {
	e := newStallEnv(t)
	data := bytes.Repeat([]byte("abcdefghij"), 10)
	sha := shaOf(data)
	if code, body := e.req(t, "PUT", "/blobs/"+sha, data[:50], "Content-Range", "bytes 0-49/100"); code != 200 {
		t.Fatalf("first half: %d %s", code, body)
	}
	partial := filepath.Join(e.dir, "blobs", "partial", sha)
	if _, err := os.Stat(partial); err != nil {
		t.Fatal(err)
	}
	if code, body := e.req(t, "DELETE", "/blobs/"+sha, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE of a partial: %d %s", code, body)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Fatalf("the partial file is still there: %v", err)
	}
	if code, _ := e.req(t, "GET", "/blobs/"+sha+"/status", nil); code != http.StatusNotFound {
		t.Fatalf("status after DELETE: %d, want 404", code)
	}
	if code, _ := e.req(t, "DELETE", "/blobs/"+sha, nil); code != http.StatusNotFound {
		t.Fatalf("DELETE of nothing: %d, want 404", code)
	}
	c := api.NewClient(e.ts.URL, e.op, false)
	if _, err := c.UploadBlob(context.Background(), sha, 100, bytes.NewReader(data), 64); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.req(t, "DELETE", "/blobs/"+sha, nil); code != http.StatusConflict {
		t.Fatalf("DELETE of a complete blob: %d, want 409", code)
	}

	// Expiry: a partial not written for longer than the TTL.
	other := bytes.Repeat([]byte("z"), 100)
	osha := shaOf(other)
	if code, body := e.req(t, "PUT", "/blobs/"+osha, other[:10], "Content-Range", "bytes 0-9/100"); code != 200 {
		t.Fatalf("partial: %d %s", code, body)
	}
	e.srv.Sweep(context.Background())
	if code, _ := e.req(t, "GET", "/blobs/"+osha+"/status", nil); code != 200 {
		t.Fatalf("a fresh partial expired: %d", code)
	}
	e.clock.Step(2 * time.Hour)
	e.srv.Sweep(context.Background())
	if code, _ := e.req(t, "GET", "/blobs/"+osha+"/status", nil); code != http.StatusNotFound {
		t.Fatalf("a partial idle past the TTL is still there: %d", code)
	}
	if n := registryValue(t, e.reg, "osim_manager_uploads_expired_total", nil); n != 1 {
		t.Errorf("uploads_expired_total %v, want 1", n)
	}

	// Over the maximum image size (1 MiB here): refused before a byte.
	big := strings.Repeat("cd", 32)
	if code, body := e.req(t, "PUT", "/blobs/"+big, nil, "Content-Range", fmt.Sprintf("bytes */%d", 2<<20)); code != http.StatusRequestEntityTooLarge ||
		!strings.Contains(body, "maximum image size") {
		t.Fatalf("announcing 2 MiB over a 1 MiB maximum: %d %s, want 413 naming the maximum", code, body)
	}
}
