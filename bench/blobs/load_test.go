package blobs

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadersStreamTheWholeFileInRangeChunks(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var ranged, other atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Range"), "bytes=") {
			ranged.Add(1)
		} else {
			other.Add(1)
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	const readers, chunk = 5, 300 << 10 // the last chunk is short
	rd := readAll(context.Background(), srv.URL, readers, int64(len(body)), chunk)
	if rd.errs != 0 {
		t.Fatalf("%d readers failed: %v", rd.errs, rd.firstErr)
	}
	if rd.bytes != readers*int64(len(body)) {
		t.Errorf("read %d bytes; want %d", rd.bytes, readers*len(body))
	}
	perReader := int64((len(body) + chunk - 1) / chunk)
	if ranged.Load() != readers*perReader || other.Load() != 0 {
		t.Errorf("%d Range and %d plain requests; want %d Range only", ranged.Load(), other.Load(), readers*perReader)
	}
}

func TestReaderRefusesAnAnswerThatIsNotPartial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("whole file, Range ignored"))
	}))
	defer srv.Close()
	rd := readAll(context.Background(), srv.URL, 1, 25, 10)
	if rd.errs != 1 || !strings.Contains(rd.firstErr.Error(), "200") {
		t.Fatalf("errs %d (%v); want the 200 answer refused", rd.errs, rd.firstErr)
	}
}
