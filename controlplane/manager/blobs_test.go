package manager

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"osim/controlplane/api"
)

func shaOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func testData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestBlobUploadResumesAfterInterruption(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	data := testData(100_000)
	sha := shaOf(data)
	op := e.client(api.RoleOperator)

	_, err := op.BlobStatus(ctx, sha)
	mustStatus(t, err, 404)
	// Announce, then the first chunk.
	st, err := op.UploadBlobChunk(ctx, sha, int64(len(data)), 0, nil)
	if err != nil || st.Size != 100_000 || st.Received != 0 || st.Complete {
		t.Fatalf("announce: %+v %v", st, err)
	}
	st, err = op.UploadBlobChunk(ctx, sha, int64(len(data)), 0, data[:40_000])
	if err != nil || st.Received != 40_000 || st.Complete {
		t.Fatalf("chunk 1: %+v %v", st, err)
	}
	// The uploader lost track: a chunk at the wrong offset says where to resume.
	r := e.as(api.RoleOperator, "PUT", "/api/v1/blobs/"+sha, string(data[60_000:70_000]),
		"Content-Type", "application/octet-stream", "Content-Range", "bytes 60000-69999/100000")
	wantError(t, r, 409, "resume at offset 40000")
	// An interrupted chunk: the body ends early.
	r = e.rawPut(sha, "bytes 40000-59999/100000", data[40_000:50_000], 20_000)
	if r.code < 400 || r.code >= 500 {
		t.Fatalf("short body: %d %s", r.code, r.body)
	}
	// HEAD and status show the progress.
	h := e.as(api.RoleBootServer, "HEAD", "/api/v1/blobs/"+sha, "")
	if h.code != 404 || h.header.Get("X-Blob-Complete") != "false" || h.header.Get("X-Blob-Size") != "100000" {
		t.Fatalf("HEAD of a partial blob: %d %v", h.code, h.header)
	}
	st, err = op.BlobStatus(ctx, sha)
	if err != nil || st.Complete || (st.Received != 40_000 && st.Received != 50_000) {
		t.Fatalf("status after interruption: %+v %v", st, err)
	}
	_, err = e.client(api.RoleBootServer).DownloadBlob(ctx, sha, 0, io.Discard)
	if err == nil {
		t.Fatal("download of a partial blob worked")
	}
	// Resume with the client's loop: it starts from the status.
	st, err = op.UploadBlob(ctx, sha, int64(len(data)), bytes.NewReader(data), 16_384)
	if err != nil || !st.Complete || st.Received != 100_000 {
		t.Fatalf("resume: %+v %v", st, err)
	}
	// Uploading again is a no-op.
	if st, err = op.UploadBlob(ctx, sha, int64(len(data)), bytes.NewReader(data), 0); err != nil || !st.Complete {
		t.Fatalf("again: %+v %v", st, err)
	}
	h = e.as(api.RoleBootServer, "HEAD", "/api/v1/blobs/"+sha, "")
	if h.code != 200 || h.header.Get("Content-Length") != "100000" {
		t.Fatalf("HEAD of a complete blob: %d %v", h.code, h.header)
	}
	var buf bytes.Buffer
	bsc := e.client(api.RoleBootServer)
	if n, err := bsc.DownloadBlob(ctx, sha, 0, &buf); err != nil || n != 100_000 || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("download: %d %v", n, err)
	}
	buf.Reset()
	if n, err := bsc.DownloadBlob(ctx, sha, 99_000, &buf); err != nil || n != 1000 || !bytes.Equal(buf.Bytes(), data[99_000:]) {
		t.Fatalf("ranged download: %d %v", n, err)
	}
}

// rawPut sends a PUT whose body is shorter than its Content-Length says,
// then hangs up: an upload cut in the middle.
func (e *env) rawPut(sha, crange string, body []byte, declared int) reply {
	e.t.Helper()
	req, err := http.NewRequest("PUT", e.ts.URL+"/api/v1/blobs/"+sha, io.MultiReader(bytes.NewReader(body), errReader{}))
	if err != nil {
		e.t.Fatal(err)
	}
	req.ContentLength = int64(declared)
	req.Header.Set("Authorization", "Bearer "+e.secrets[api.RoleOperator])
	req.Header.Set("Content-Range", crange)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The client gave up sending; the server saw a cut body.
		return reply{code: 499}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, header: resp.Header, body: b}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, fmt.Errorf("connection lost") }

func TestBlobChecksumMismatchIs422AndDiscards(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	data := testData(5000)
	sha := shaOf(data)
	bad := bytes.Clone(data)
	bad[4999] ^= 1
	op := e.client(api.RoleOperator)
	if _, err := op.UploadBlobChunk(ctx, sha, 5000, 0, bad[:3000]); err != nil {
		t.Fatal(err)
	}
	_, err := op.UploadBlobChunk(ctx, sha, 5000, 3000, bad[3000:])
	mustStatus(t, err, 422)
	st, err := op.BlobStatus(ctx, sha)
	if err == nil && (st.Complete || st.Received != 0) {
		t.Fatalf("after a mismatch: %+v", st)
	}
	if st, err := op.UploadBlob(ctx, sha, 5000, bytes.NewReader(data), 1000); err != nil || !st.Complete {
		t.Fatalf("good upload after the mismatch: %+v %v", st, err)
	}
	// An empty blob completes with the announcement alone.
	if st, err := op.UploadBlob(ctx, shaOf(nil), 0, bytes.NewReader(nil), 0); err != nil || !st.Complete {
		t.Fatalf("empty blob: %+v %v", st, err)
	}
}

func TestBlobPutBadRequests(t *testing.T) {
	e := newEnv(t)
	sha := shaOf([]byte("abc"))
	for _, c := range []struct {
		name, path, crange, body string
		code                     int
		msg                      string
	}{
		{"no range", "/api/v1/blobs/" + sha, "", "abc", 400, "Content-Range"},
		{"bad unit", "/api/v1/blobs/" + sha, "items 0-2/3", "abc", 400, "unit"},
		{"past total", "/api/v1/blobs/" + sha, "bytes 0-3/3", "abc", 400, "past the total"},
		{"length mismatch", "/api/v1/blobs/" + sha, "bytes 0-1/3", "abc", 400, "Content-Length"},
		{"chunk too big", "/api/v1/blobs/" + sha, "bytes 0-67108864/99999999999", "abc", 413, "limit"},
		{"bad sha", "/api/v1/blobs/ABC", "bytes 0-2/3", "abc", 400, "sha256"},
		{"announce with body", "/api/v1/blobs/" + sha, "bytes */3", "abc", 400, "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := []string{"Content-Type", "application/octet-stream"}
			if c.crange != "" {
				h = append(h, "Content-Range", c.crange)
			}
			wantError(t, e.as(api.RoleOperator, "PUT", c.path, c.body, h...), c.code, c.msg)
		})
	}
	wantError(t, e.as(api.RoleOperator, "GET", "/api/v1/blobs/"+strings.Repeat("a", 64)+"/status", ""), 404, "")
	wantError(t, e.as(api.RoleOperator, "GET", "/api/v1/blobs/"+strings.Repeat("a", 64), ""), 404, "")
}

// uploadImageFile stores data as a complete blob and returns its file entry.
func (e *env) uploadImageFile(name, role string, data []byte) api.ImageFile {
	e.t.Helper()
	sha := shaOf(data)
	if _, err := e.client(api.RoleOperator).UploadBlob(e.t.Context(), sha, int64(len(data)), bytes.NewReader(data), 0); err != nil {
		e.t.Fatal(err)
	}
	return api.ImageFile{Name: name, SHA256: sha, Size: int64(len(data)), Role: role}
}

func TestImageNeedsCompleteBlobs(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	op := e.client(api.RoleOperator)
	kernel := e.uploadImageFile("vmlinuz", api.RoleKernel, testData(3000))
	initrd := testData(4000)
	isha := shaOf(initrd)
	if _, err := op.UploadBlobChunk(ctx, isha, 4000, 0, initrd[:1000]); err != nil {
		t.Fatal(err)
	}
	spec := api.ImageSpec{Name: "debian", Version: "12", Kind: api.KindOS, Arch: "efi-x64",
		Files:   []api.ImageFile{kernel, {Name: "initrd.img", SHA256: isha, Size: 4000, Role: api.RoleInitrd}},
		Cmdline: "console=ttyS0"}
	_, err := op.CreateImage(ctx, spec)
	mustStatus(t, err, 409)
	if _, err := op.UploadBlob(ctx, isha, 4000, bytes.NewReader(initrd), 0); err != nil {
		t.Fatal(err)
	}
	img, err := op.CreateImage(ctx, spec)
	if err != nil || img.ID == "" || len(img.Files) != 2 {
		t.Fatalf("create image: %+v %v", img, err)
	}
	_, err = op.CreateImage(ctx, spec)
	mustStatus(t, err, 409)
	imgs, err := e.client(api.RoleBootServer).ListImages(ctx)
	if err != nil || len(imgs) != 1 || imgs[0].ID != img.ID {
		t.Fatalf("list: %+v %v", imgs, err)
	}
	if got, err := e.client(api.RoleViewer).GetImage(ctx, img.ID); err != nil || got.Name != "debian" {
		t.Fatalf("get: %+v %v", got, err)
	}
	wantError(t, e.as(api.RoleOperator, "POST", "/api/v1/images", `{"name":"x","version":"1","kind":"weird","files":[]}`), 422, "kind")
	if err := op.DeleteImage(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	_, err = op.GetImage(ctx, img.ID)
	mustStatus(t, err, 404)
}
