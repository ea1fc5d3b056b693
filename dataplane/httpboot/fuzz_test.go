package httpboot

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
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

// FuzzStatusBody: whatever an installer sends, the status body parser
// answers a 4xx or a report whose phase is known, whose progress is in
// 0..100 and whose message and facts hold no control character.
func FuzzStatusBody(f *testing.F) {
	for _, s := range []string{`{"phase":"installing","message":"partitioning","progress":40}`,
		`{"phase":"done","facts":{"cpu_model":"EPYC"}}`, `{"phase":"failed","message":"\u001b[2J"}`,
		`{"phase":"done"}{"phase":"done"}`, `{"phase":"installing","progress":101}`, `{"phase":`,
		`{"phase":"done","message":"a\r\nb"}`, `{"phase":"done","facts":{"k":5}}`,
		`{"phase":"installing","step":"write","progress":40,"data":{"bytes":"1048576","disk":"/dev/vda"}}`,
		`{"phase":"failed","step":"verify","message":"sha256 mismatch"}`, `{"phase":"installing","step":"dance"}`,
		`{"phase":"done","data":{"k\n":"v"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, herr := parseStatusBody(io.NopCloser(bytes.NewReader(data)), httptest.NewRecorder(), "o-1")
		if herr != nil {
			if herr.code/100 != 4 || herr.reason == "" || herr.msg == "" {
				t.Fatalf("%q: refusal %+v, want a 4xx with a reason and a message", data, herr)
			}
			return
		}
		switch b.Phase {
		case PhaseInstalling, PhaseDone, PhaseFailed:
		default:
			t.Fatalf("%q: accepted phase %q", data, b.Phase)
		}
		if b.Progress != nil && (*b.Progress < 0 || *b.Progress > 100) {
			t.Fatalf("%q: accepted progress %d", data, *b.Progress)
		}
		if len(b.Message) > maxMessage || checkText(b.Message) != nil {
			t.Fatalf("%q: accepted message %q", data, b.Message)
		}
		if checkFacts("facts", b.Facts) != nil {
			t.Fatalf("%q: accepted facts %q", data, b.Facts)
		}
		if checkFacts("data", b.Data) != nil || (b.Step != "" && !slices.Contains(Steps, b.Step)) {
			t.Fatalf("%q: accepted step %q data %q", data, b.Step, b.Data)
		}
	})
}
