package report

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

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
