package httpboot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"osim/internal/clock"
)

// fixture is a Handler over a temp folder of files, a static target map and
// a recording sink.
type fixture struct {
	h       *Handler
	dir     string
	kernel  []byte // files/vmlinuz
	blobSum string // name of the content-addressed blob
	sink    *recordingSink
	reg     *prometheus.Registry
	metrics *Metrics
	logs    *syncBuffer
	clock   *clock.Fake // at fixedNow until a test steps it
}

type recordingSink struct {
	mu   sync.Mutex
	got  []Status
	fail error
}

func (s *recordingSink) Report(_ context.Context, st Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.got = append(s.got, st)
	return nil
}

func (s *recordingSink) reports() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.got...)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var fixedNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	parent := t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("outside the root"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "files")
	rng := rand.New(rand.NewPCG(1, 2))
	kernel := make([]byte, 300_000)
	for i := range kernel {
		kernel[i] = byte(rng.Uint32())
	}
	blob := []byte("content-addressed blob\n")
	sum := sha256.Sum256(blob)
	blobSum := hex.EncodeToString(sum[:])
	for name, data := range map[string][]byte{
		"vmlinuz":                    kernel,
		"debian/12/initrd.gz":        []byte("initrd bytes"),
		"blobs/" + blobSum:           blob,
		"empty":                      nil,
		"debian/12/..hidden..":       []byte("dots inside a name are fine"),
		"with space/file name.txt":   []byte("spaces are fine"),
		"debian/12/initrd.gz.sha256": []byte("x"),
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"escape":        "../secret",
		"etc-passwd":    "/etc/passwd",
		"inside":        "vmlinuz",
		"debian/latest": "12",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	files, err := NewFolderFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	f := &fixture{dir: dir, kernel: kernel, blobSum: blobSum, sink: &recordingSink{},
		reg: prometheus.NewRegistry(), logs: &syncBuffer{}, clock: clock.NewFake(fixedNow)}
	f.metrics = NewMetrics(f.reg)
	b := installBoot()
	f.h, err = New(Config{
		Scripts: StaticScripts{
			"52:54:00:12:34:56": b,
			"52:54:00:00:00:02": {Local: true},
			"52:54:00:00:00:03": {Kernel: "vmlinuz", Cmdline: "x={{.Params.bad}}", Params: map[string]string{"bad": "a\nshell"}},
		},
		Files:   files,
		Tokens:  StaticTokens{"o-17": "tok123"},
		Sink:    f.sink,
		BaseURL: "http://10.0.0.1:8080/",
		Logger:  slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: f.metrics,
		Clock:   f.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// do sends a request with a raw target (not cleaned by any client) to the
// handler.
func (f *fixture) do(method, target string, body []byte, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

var errSinkDown = errors.New("event queue full")
