package httpboot

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzFilePathNeverLeavesTheStore: whatever decoded path arrives, the
// handler never serves the file next to the store, and never answers 5xx.
func FuzzFilePathNeverLeavesTheStore(f *testing.F) {
	for _, s := range []string{"/files/vmlinuz", "/files/../secret", "/files/escape", "/files//secret",
		"/files/debian/latest/../../secret", "/files/\\..\\secret", "/files/inside", "/ipxe/../secret"} {
		f.Add(s)
	}
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		r := &http.Request{Method: "GET", URL: &url.URL{Path: p}, Header: http.Header{}, Host: "x",
			RemoteAddr: "192.0.2.1:1", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Body: http.NoBody}
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, r)
		if strings.Contains(w.Body.String(), "outside the root") {
			t.Fatalf("%q served the file outside the store", p)
		}
		if w.Code >= 500 {
			t.Fatalf("%q: code %d %q", p, w.Code, w.Body.String())
		}
	})
}
