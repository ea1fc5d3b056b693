package manager

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

// contentRange parses "bytes a-b/total" (a chunk) or "bytes */total" (an
// announcement with an empty body), RFC 9110 §14.4.
func contentRange(h string) (first, last, total int64, announce bool, err error) {
	bad := func(why string) (int64, int64, int64, bool, error) {
		return 0, 0, 0, false, errorf(http.StatusBadRequest, "Content-Range %q: %s (want \"bytes FIRST-LAST/TOTAL\" or \"bytes */TOTAL\")", h, why)
	}
	if h == "" {
		return bad("missing")
	}
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return bad("unit is not bytes")
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("no total size")
	}
	total, err = strconv.ParseInt(tot, 10, 64)
	if err != nil || total < 0 {
		return bad("total size is not a number")
	}
	if rng == "*" {
		return 0, -1, total, true, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return bad("range is not FIRST-LAST")
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return bad("range is not FIRST-LAST with FIRST <= LAST")
	}
	if last >= total {
		return bad("range ends past the total size")
	}
	return first, last, total, false, nil
}

func blobSHA(r *http.Request) (string, error) {
	sha := r.PathValue("sha256")
	if !api.ValidSHA256(sha) {
		return "", errorf(http.StatusBadRequest, "sha256: %q is not 64 lower-case hex digits", sha)
	}
	return sha, nil
}

// putBlob stores one chunk of a resumable upload, streaming the body to
// the store.
func (s *Server) putBlob(w http.ResponseWriter, r *http.Request, p *principal) {
	sha, err := blobSHA(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	first, last, total, announce, err := contentRange(r.Header.Get("Content-Range"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	var body io.Reader
	var offset int64
	if announce {
		if r.ContentLength > 0 {
			s.fail(w, r, errorf(http.StatusBadRequest, "Content-Range %q announces the upload; the body must be empty", r.Header.Get("Content-Range")))
			return
		}
		// Resume where the store is (a no-op for a complete blob).
		st, err := s.store.BlobStatus(ctx, sha)
		switch {
		case errors.Is(err, mdb.ErrNotFound):
		case err != nil:
			s.fail(w, r, err)
			return
		default:
			if st.Size != total {
				s.fail(w, r, errorf(http.StatusConflict, "blob %s: total size %d, but the upload in progress has size %d (received %d)", sha, total, st.Size, st.Received))
				return
			}
			offset = st.Received
		}
		body = http.NoBody
	} else {
		n := last - first + 1
		if n > MaxBlobChunk {
			s.fail(w, r, errorf(http.StatusRequestEntityTooLarge, "Content-Range: a chunk of %d bytes is over the limit of %d; send smaller chunks", n, MaxBlobChunk))
			return
		}
		if r.ContentLength >= 0 && r.ContentLength != n {
			s.fail(w, r, errorf(http.StatusBadRequest, "Content-Range says %d bytes, Content-Length says %d", n, r.ContentLength))
			return
		}
		offset = first
		body = &exactReader{r: &idleReader{r: http.MaxBytesReader(w, r.Body, n), rc: http.NewResponseController(w),
			idle: s.cfg.BodyIdleTimeout}, left: n}
	}
	start := time.Now()
	st, err := s.store.WriteBlob(ctx, sha, total, offset, body)
	if err != nil {
		if errors.Is(err, mdb.ErrConflict) {
			if cur, serr := s.store.BlobStatus(ctx, sha); serr == nil {
				s.fail(w, r, errorf(http.StatusConflict, "blob %s: %v; received %d of %d bytes, resume at offset %d", sha, err, cur.Received, cur.Size, cur.Received))
				return
			}
		}
		s.fail(w, r, err)
		return
	}
	if st.Complete && !announce {
		s.log.Info("blob complete", "sha256", sha, "size", st.Size, "by", p.ID, "last_chunk", time.Since(start))
	}
	writeJSON(w, http.StatusOK, st)
}

// deleteBlob abandons an unfinished upload.
func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request, p *principal) {
	sha, err := blobSHA(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.store.AbortUpload(r.Context(), sha); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("blob upload abandoned", "sha256", sha, "by", p.ID)
	w.WriteHeader(http.StatusNoContent)
}

// idleReader moves the connection's read deadline on before every read:
// a body that stops arriving fails after idle, however long the whole
// chunk takes on a slow link.
type idleReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (i *idleReader) Read(b []byte) (int, error) {
	_ = i.rc.SetReadDeadline(time.Now().Add(i.idle)) // unsupported writers: no deadline
	n, err := i.r.Read(b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return n, errorf(http.StatusRequestTimeout, "body: no byte for %s; resume from the blob's status", i.idle)
	}
	return n, err
}

// exactReader fails when the body ends before the bytes Content-Range promised.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(b []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > e.left {
		b = b[:e.left]
	}
	n, err := e.r.Read(b)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) && e.left > 0 {
		return n, errorf(http.StatusBadRequest, "body ended %d bytes short of the Content-Range", e.left)
	}
	return n, err
}

func (s *Server) blobStatus(w http.ResponseWriter, r *http.Request, _ *principal) {
	sha, err := blobSHA(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st, err := s.store.BlobStatus(r.Context(), sha)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// headBlob answers the status in headers: 200 with Content-Length for a
// complete blob, 404 otherwise (with the upload's progress if one runs).
func (s *Server) headBlob(w http.ResponseWriter, r *http.Request, _ *principal) {
	sha, err := blobSHA(r)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	st, err := s.store.BlobStatus(r.Context(), sha)
	if err != nil {
		w.WriteHeader(statusOf(err))
		return
	}
	h := w.Header()
	h.Set("X-Blob-Size", strconv.FormatInt(st.Size, 10))
	h.Set("X-Blob-Received", strconv.FormatInt(st.Received, 10))
	h.Set("X-Blob-Complete", strconv.FormatBool(st.Complete))
	if !st.Complete {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(st.Size, 10))
	h.Set("ETag", `"`+sha+`"`)
	h.Set("Accept-Ranges", "bytes")
	w.WriteHeader(http.StatusOK)
}

// getBlob serves a complete blob with Range support.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, _ *principal) {
	sha, err := blobSHA(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := s.store.OpenBlob(r.Context(), sha)
	if err != nil {
		s.fail(w, r, fmt.Errorf("blob %s: %w", sha, err))
		return
	}
	defer b.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+sha+`"`)
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	http.ServeContent(w, r, sha, time.Time{}, b)
}
