package httpboot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFilesServeExactBytesWithStrongETagAndLastModified(t *testing.T) {
	f := newFixture(t)
	w := f.do("GET", "/files/vmlinuz", nil)
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), f.kernel) {
		t.Fatalf("code %d, %d bytes; want 200 and the %d kernel bytes", w.Code, w.Body.Len(), len(f.kernel))
	}
	sum := sha256.Sum256(f.kernel)
	if got, want := w.Header().Get("ETag"), `"`+hex.EncodeToString(sum[:])+`"`; got != want {
		t.Errorf("ETag %s, want %s (strong, sha256 of the content)", got, want)
	}
	if w.Header().Get("Last-Modified") == "" || w.Header().Get("Accept-Ranges") != "bytes" {
		t.Errorf("headers %v lack Last-Modified or Accept-Ranges: bytes", w.Header())
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestFilesContentAddressedNameIsTheETag(t *testing.T) {
	f := newFixture(t)
	w := f.do("GET", "/files/blobs/"+f.blobSum, nil)
	if w.Code != 200 || w.Header().Get("ETag") != `"`+f.blobSum+`"` {
		t.Fatalf("code %d ETag %s, want 200 and the name", w.Code, w.Header().Get("ETag"))
	}
}

func TestFilesConditionalAndRangeRequests(t *testing.T) {
	f := newFixture(t)
	etag := f.do("GET", "/files/vmlinuz", nil).Header().Get("ETag")
	lastMod := f.do("GET", "/files/vmlinuz", nil).Header().Get("Last-Modified")
	for _, tc := range []struct {
		name       string
		method     string
		hdr        []string
		code       int
		body       []byte
		contentRng string
	}{
		{"range returns the slice", "GET", []string{"Range", "bytes=100-199"}, 206, f.kernel[100:200], "bytes 100-199/300000"},
		{"open-ended range", "GET", []string{"Range", "bytes=299990-"}, 206, f.kernel[299990:], "bytes 299990-299999/300000"},
		{"suffix range", "GET", []string{"Range", "bytes=-5"}, 206, f.kernel[len(f.kernel)-5:], "bytes 299995-299999/300000"},
		{"range past the end", "GET", []string{"Range", "bytes=400000-"}, 416, nil, "bytes */300000"},
		{"matching If-None-Match", "GET", []string{"If-None-Match", etag}, 304, nil, ""},
		{"other If-None-Match", "GET", []string{"If-None-Match", `"other"`}, 200, f.kernel, ""},
		{"If-Modified-Since now", "GET", []string{"If-Modified-Since", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, 304, nil, ""},
		{"If-Modified-Since long ago", "GET", []string{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200, f.kernel, ""},
		{"If-Range with our ETag honours the range", "GET", []string{"Range", "bytes=0-9", "If-Range", etag}, 206, f.kernel[:10], "bytes 0-9/300000"},
		{"If-Range with a stale ETag sends it all", "GET", []string{"Range", "bytes=0-9", "If-Range", `"stale"`}, 200, f.kernel, ""},
		{"If-Range with Last-Modified", "GET", []string{"Range", "bytes=0-9", "If-Range", lastMod}, 206, f.kernel[:10], "bytes 0-9/300000"},
		{"HEAD sends headers only", "HEAD", nil, 200, nil, ""},
		{"empty file", "GET", nil, 200, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := "/files/vmlinuz"
			if tc.name == "empty file" {
				target = "/files/empty"
			}
			w := f.do(tc.method, target, nil, tc.hdr...)
			if w.Code != tc.code {
				t.Fatalf("code %d, want %d; body %q", w.Code, tc.code, w.Body.String())
			}
			if tc.code != 416 && !bytes.Equal(w.Body.Bytes(), tc.body) {
				t.Errorf("body of %d bytes, want %d", w.Body.Len(), len(tc.body))
			}
			if got := w.Header().Get("Content-Range"); got != tc.contentRng {
				t.Errorf("Content-Range %q, want %q", got, tc.contentRng)
			}
			if tc.method == "HEAD" && w.Header().Get("Content-Length") != "300000" {
				t.Errorf("HEAD Content-Length %q", w.Header().Get("Content-Length"))
			}
		})
	}
}

func TestFilesNamesThatStayInsideAreServed(t *testing.T) {
	f := newFixture(t)
	for target, want := range map[string]string{
		"/files/debian/12/..hidden..":         "dots inside a name are fine",
		"/files/with%20space/file%20name.txt": "spaces are fine",
		"/files/debian/latest/initrd.gz":      "initrd bytes", // symlink to a folder inside the root
	} {
		if w := f.do("GET", target, nil); w.Code != 200 || w.Body.String() != want {
			t.Errorf("%s: code %d body %q, want 200 %q", target, w.Code, w.Body.String(), want)
		}
	}
	if w := f.do("GET", "/files/inside", nil); w.Code != 200 || !bytes.Equal(w.Body.Bytes(), f.kernel) {
		t.Errorf("symlink inside the root: code %d", w.Code)
	}
}

func TestFilesRefusePathsThatLeaveTheStore(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		target string
		code   int
		body   string // the reason the body must give
	}{
		{"/files/../secret", 403, "leaves the root"},
		{"/files/debian/../../secret", 403, "leaves the root"},
		{"/files/%2e%2e/secret", 403, "leaves the root"},
		{"/files/%2E%2E/secret", 403, "leaves the root"},
		{"/files/debian/%2e%2e%2f%2e%2e%2fsecret", 403, "leaves the root"},
		{"/files/..%2fsecret", 403, "leaves the root"},
		{"/files/..", 403, "leaves the root"},
		{"/files/%5c..%5csecret", 403, "backslash"},
		{"/files/debian%5c12%5cinitrd.gz", 403, "backslash"},
		{"/files/vmlinuz%00.txt", 403, "NUL"},
		{"/files//etc/passwd", 403, "absolute path"},
		{"/files/%2fetc/passwd", 403, "absolute path"},
		{"/files/./vmlinuz", 403, "not a clean path"},
		{"/files/debian//12/initrd.gz", 403, "not a clean path"},
		{"/files/a%0ab", 403, "control byte"},
		{"/files/escape", 403, "escape"},
		{"/files/etc-passwd", 403, "etc-passwd"},
		{"/files/debian", 403, "not a regular file"},
		{"/files/missing", 404, "file not found"},
		{"/files/", 404, "empty file name"},
		{"/files/" + strings.Repeat("a", 2000), 403, "exceeds"},
		{"/ipxe/../files/vmlinuz", 403, "leaves the root"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			for _, method := range []string{"GET", "HEAD"} {
				w := f.do(method, tc.target, nil)
				if w.Code != tc.code {
					t.Fatalf("%s: code %d, want %d; body %q; Location %q", method, w.Code, tc.code, w.Body.String(), w.Header().Get("Location"))
				}
				if method == "GET" && !strings.Contains(w.Body.String(), tc.body) {
					t.Errorf("body %q does not say %q", w.Body.String(), tc.body)
				}
				if strings.Contains(w.Body.String(), "outside the root") {
					t.Fatalf("served the file outside the root")
				}
			}
		})
	}
}

// TestFilesRefusalsHoldOverTheWire sends raw request lines to a real server,
// so no client cleans the path and the server's own handling is in the loop.
func TestFilesRefusalsHoldOverTheWire(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	for target, want := range map[string]int{
		"/files/../secret":           403,
		"/files/%2e%2e/secret":       403,
		"/files/..%5csecret":         403,
		"/files//etc/passwd":         403,
		"/files/escape":              403,
		"/files/vmlinuz%00":          403,
		"/files/debian/12/../../x":   403,
		"/files/debian/12/initrd.gz": 200,
	} {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Fatalf("%s: %v", target, err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != want || bytes.Contains(body, []byte("outside the root")) {
			t.Errorf("%s: code %d body %q, want %d", target, resp.StatusCode, body, want)
		}
	}
}

func TestFilesETagFollowsTheContentWhenAFileIsReplaced(t *testing.T) {
	f := newFixture(t)
	before := f.do("GET", "/files/debian/12/initrd.gz", nil).Header().Get("ETag")
	p := filepath.Join(f.dir, "debian", "12", "initrd.gz")
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte("a newer initrd"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	w := f.do("GET", "/files/debian/12/initrd.gz", nil, "If-None-Match", before)
	sum := sha256.Sum256([]byte("a newer initrd"))
	if w.Code != 200 || w.Body.String() != "a newer initrd" || w.Header().Get("ETag") != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Fatalf("after replace: code %d body %q ETag %s (before %s)", w.Code, w.Body.String(), w.Header().Get("ETag"), before)
	}
}
