package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"osim/controlplane/api"
)

func TestRunModeDiscoversWithoutInitDuties(t *testing.T) {
	var got api.DiscoverReport
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/discover/52:54:00:00:00:01" {
			http.NotFound(w, r)
			return
		}
		json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	code := run([]string{"--cmdline", "console=ttyS0 osim.mode=discover osim.url=" + srv.URL + " osim.mac=52-54-00-00-00-01", "--report-window", "2s"})
	if code != 0 || got.Facts["cpu.count"] == "" {
		t.Fatalf("exit %d, facts %v", code, got.Facts)
	}
}

func TestRunModeRefusesABadCommandLine(t *testing.T) {
	if code := run([]string{"--cmdline", "osim.mode=install osim.url=http://127.0.0.1:1"}); code != 2 {
		t.Errorf("exit %d for a command line without order and token, want 2", code)
	}
}
