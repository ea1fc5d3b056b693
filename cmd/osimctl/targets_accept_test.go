package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"osim/controlplane/api"
)

// discoveryFake answers the discovery routes: a list filtered by state,
// and accept, recording what it was asked.
type discoveryFake struct {
	mu     sync.Mutex
	asked  []string
	accept api.AcceptRequest
}

func (f *discoveryFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, r.Method+" "+strings.TrimPrefix(r.URL.Path, api.Prefix)+"?"+r.URL.RawQuery)
	loop := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	disc := api.Target{ID: "t-d", Hostname: "discovered-525400000d01", MACs: []string{"52:54:00:00:0d:01"}, Arch: "efi-x64",
		Site: "lab", State: api.TargetDiscovered, BootLoop: loop}
	switch {
	case r.Method == "GET" && r.URL.Path == api.Prefix+"/targets":
		writeJSON(w, 200, api.TargetList{Targets: []api.Target{disc}})
	case r.Method == "POST" && r.URL.Path == api.Prefix+"/targets/t-d/accept":
		if err := json.NewDecoder(r.Body).Decode(&f.accept); err != nil {
			apiError(w, 400, "%v", err)
			return
		}
		disc.State, disc.Hostname, disc.Labels, disc.BootLoop = "", f.accept.Hostname, f.accept.Labels, time.Time{}
		writeJSON(w, 200, disc)
	default:
		apiError(w, 404, "no route %s", r.URL.Path)
	}
}

func TestTargetsListByStateShowsDiscoveredAndBootLoop(t *testing.T) {
	clearEnv(t)
	f := &discoveryFake{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	out, errOut, code := runCmd(t, "--server", srv.URL, "targets", "list", "--state", "discovered")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(f.asked[0], "state=discovered") {
		t.Errorf("asked %q, want the state in the query", f.asked[0])
	}
	if !strings.Contains(out, "STATE") || !strings.Contains(out, "discovered, boot-loop since 2026-03-01T11:00:00Z") {
		t.Errorf("table lacks the state:\n%s", out)
	}
	if _, errOut, code := runCmd(t, "--server", srv.URL, "targets", "list", "--state", "weird"); code != 2 || !strings.Contains(errOut, "--state") {
		t.Errorf("bad state: exit %d, %q; want 2 naming --state", code, errOut)
	}
}

func TestTargetsAcceptSendsHostnameAndLabels(t *testing.T) {
	clearEnv(t)
	f := &discoveryFake{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	out, errOut, code := runCmd(t, "--server", srv.URL, "targets", "accept", "t-d", "--hostname", "web1", "--label", "rack=r1", "--label", "env=lab")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if f.accept.Hostname != "web1" || f.accept.Labels["rack"] != "r1" || f.accept.Labels["env"] != "lab" {
		t.Errorf("sent %+v", f.accept)
	}
	if !strings.Contains(out, "web1") {
		t.Errorf("output lacks the accepted target:\n%s", out)
	}
	if _, errOut, code := runCmd(t, "--server", srv.URL, "targets", "accept", "t-d"); code != 2 || !strings.Contains(errOut, "hostname") {
		t.Errorf("no hostname: exit %d, %q; want 2 naming the hostname", code, errOut)
	}
}
