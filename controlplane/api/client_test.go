package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestUploadBlobFollowsTheManagerAfterAConflict: the first status says 0
// bytes held, but an earlier interrupted upload lands meanwhile and the
// manager holds 100; the PUT from 0 gets 409, and the upload asks again and
// sends only the rest.
func TestUploadBlobFollowsTheManagerAfterAConflict(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 300)
	const sha = "0000000000000000000000000000000000000000000000000000000000000000"
	var (
		mu       sync.Mutex
		held     int64
		statuses int
		puts     []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case http.MethodGet: // status
			statuses++
			got := held
			if statuses == 1 {
				got, held = 0, 100 // the earlier upload finishes right after this answer
			}
			json.NewEncoder(w).Encode(BlobStatus{SHA256: sha, Size: 300, Received: got})
		case http.MethodPut:
			cr := r.Header.Get("Content-Range")
			puts = append(puts, cr)
			var from, to, total int64
			fmt.Sscanf(cr, "bytes %d-%d/%d", &from, &to, &total)
			if from != held {
				w.WriteHeader(http.StatusConflict)
				json.NewEncoder(w).Encode(Error{Code: 409, Message: fmt.Sprintf("resume at %d", held)})
				return
			}
			b, _ := io.ReadAll(r.Body)
			held += int64(len(b))
			json.NewEncoder(w).Encode(BlobStatus{SHA256: sha, Size: 300, Received: held, Complete: held == 300})
		}
	}))
	defer srv.Close()
	c := NewClient(srv.URL, "t", false)
	st, err := c.UploadBlob(context.Background(), sha, 300, bytes.NewReader(data), 100)
	if err != nil || !st.Complete {
		t.Fatalf("upload: %+v %v", st, err)
	}
	want := []string{"bytes 0-99/300", "bytes 100-199/300", "bytes 200-299/300"}
	if fmt.Sprint(puts) != fmt.Sprint(want) || statuses != 2 {
		t.Fatalf("PUTs %v after %d status calls, want %v after 2", puts, statuses, want)
	}
}
