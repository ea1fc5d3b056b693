package e2e

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// slowProxy sits between a boot server and the manager and slows the
// parts a fault test must catch in the middle: sync answers (delay, and a
// smaller limit so a big change set comes in many steps) and blob
// downloads (a byte rate). The manager behind it may die and come back.
type slowProxy struct {
	srv *httptest.Server
	// syncDelay delays every incremental sync answer, snapDelay every
	// snapshot page (ns).
	syncDelay, snapDelay atomic.Int64
	// syncLimit, when > 0, replaces ?limit= of sync requests.
	syncLimit atomic.Int64
	// blobRate, when > 0, caps blob downloads at that many bytes/s.
	blobRate atomic.Int64
	// snapPages counts snapshot page answers passed on.
	snapPages atomic.Int64
	// afterEvents, when set, is called once after the manager stored an
	// event upload and before the boot server gets the answer; the boot
	// server then sees its connection cut (the manager died before
	// acknowledging).
	afterEvents atomic.Pointer[func()]
}

func newSlowProxy(t *testing.T, managerURL string) *slowProxy {
	t.Helper()
	target, err := url.Parse(managerURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			if r.In.URL.Path == "/api/v1/sync" {
				if l := p.syncLimit.Load(); l > 0 {
					q := r.Out.URL.Query()
					q.Set("limit", strconv.FormatInt(l, 10))
					r.Out.URL.RawQuery = q.Encode()
				}
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			r := resp.Request
			if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/blobs/") && resp.StatusCode/100 == 2 {
				resp.Body = &throttled{rc: resp.Body, rate: &p.blobRate, start: time.Now()}
			}
			return nil
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/sync" {
			d := p.syncDelay.Load()
			snap := r.URL.Query().Has("snapshot") || r.URL.Query().Get("since") == "0"
			if snap {
				d = p.snapDelay.Load()
			}
			if d > 0 {
				select {
				case <-time.After(time.Duration(d)):
				case <-r.Context().Done():
					return
				}
			}
			rw := &statusWriter{ResponseWriter: w}
			rp.ServeHTTP(rw, r)
			if snap && rw.code == http.StatusOK {
				p.snapPages.Add(1)
			}
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/events" {
			if hook := p.afterEvents.Swap(nil); hook != nil {
				rec := httptest.NewRecorder()
				rp.ServeHTTP(rec, r)
				if rec.Code != http.StatusOK {
					p.afterEvents.Store(hook) // not stored: try the next upload
					w.WriteHeader(rec.Code)
					_, _ = w.Write(rec.Body.Bytes())
					return
				}
				(*hook)()
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						conn.Close()
						return
					}
				}
				w.WriteHeader(http.StatusBadGateway)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// throttled reads at most rate bytes per second (rate read on every call,
// so a test may lift it).
type throttled struct {
	rc    io.ReadCloser
	rate  *atomic.Int64
	start time.Time
	n     int64
}

func (t *throttled) Read(p []byte) (int, error) {
	rate := t.rate.Load()
	if rate > 0 {
		p = p[:min(len(p), 32<<10)]
		// Sleep until the bytes so far are due at rate.
		if due := t.start.Add(time.Duration(float64(t.n) / float64(rate) * float64(time.Second))); time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
	}
	n, err := t.rc.Read(p)
	t.n += int64(n)
	return n, err
}

func (t *throttled) Close() error { return t.rc.Close() }
