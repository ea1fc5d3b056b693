package report

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"osim/controlplane/api"
)

func TestStatusRetries5xxThenSucceeds(t *testing.T) {
	var n atomic.Int32
	var got Status
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status/o1" || r.Header.Get("Authorization") != "Bearer tk" {
			http.Error(w, "wrong", http.StatusBadRequest)
			return
		}
		if n.Add(1) < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c := &Client{Base: srv.URL, Order: "o1", Token: "tk"}
	err := c.Status(context.Background(), Status{Phase: PhaseInstalling, Step: api.StepInventory, Facts: map[string]string{"cpu.count": "2"}})
	if err != nil || n.Load() != 3 || got.Facts["cpu.count"] != "2" || got.Step != api.StepInventory {
		t.Fatalf("err %v after %d tries, got %+v", err, n.Load(), got)
	}
}

func TestClientErrorIsFatalAtOnce(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Error(w, "bad token", http.StatusUnauthorized)
	}))
	defer srv.Close()
	_, err := (&Client{Base: srv.URL, Order: "o1", Token: "x"}).Plan(context.Background())
	if !errors.Is(err, ErrRefused) || n.Load() != 1 {
		t.Fatalf("got %v after %d tries, want ErrRefused at once", err, n.Load())
	}
}

func TestRetriesEndAfterTheWindow(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	start := time.Now()
	err := (&Client{Base: srv.URL, Order: "o1", Window: 500 * time.Millisecond}).Status(context.Background(), Status{Phase: PhaseDone})
	if err == nil || errors.Is(err, ErrRefused) || time.Since(start) > 5*time.Second {
		t.Fatalf("got %v after %s", err, time.Since(start))
	}
}

// The boot server refuses (422) a status whose message or data values hold
// control characters or exceed its bounds; a failure reason with a
// tool's multi-line output must still reach it.
func TestStatusIsFittedToTheBootServersBounds(t *testing.T) {
	var got Status
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c := &Client{Base: srv.URL, Order: "o1", Token: "tk"}
	long := strings.Repeat("x", 5000)
	err := c.Status(context.Background(), Status{Phase: PhaseFailed, Step: api.StepCustomize,
		Message: "customize: mount: exit 32:\nmount: wrong fs type\x1b[31m\t" + long,
		Data:    map[string]string{"output_tail": "line 1\nline 2\r\n\x00" + long}})
	if err != nil {
		t.Fatal(err)
	}
	for what, v := range map[string]string{"message": got.Message, "data": got.Data["output_tail"]} {
		limit := MaxMessageBytes
		if what == "data" {
			limit = MaxValueBytes
		}
		if len(v) > limit || !utf8.ValidString(v) {
			t.Errorf("%s of %d bytes (limit %d) or invalid UTF-8", what, len(v), limit)
		}
		for i, r := range v {
			if r < 0x20 || 0x7f <= r && r < 0xa0 {
				t.Errorf("%s: control character %U at byte %d", what, r, i)
			}
		}
	}
	if !strings.HasPrefix(got.Message, `customize: mount: exit 32:\nmount: wrong fs type`) {
		t.Errorf("message %.80q lost its start or its line breaks", got.Message)
	}
	if !strings.HasPrefix(got.Data["output_tail"], `line 1\nline 2\r\n`) {
		t.Errorf("data %.80q lost its start or its line breaks", got.Data["output_tail"])
	}
}
