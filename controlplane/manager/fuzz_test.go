package manager

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

// FuzzJSONBodies sends arbitrary bodies to every route that decodes JSON
// from a user: whatever arrives, the answer is a 2xx or a 4xx with a
// message, never a 5xx or a panic.
func FuzzJSONBodies(f *testing.F) {
	for _, seed := range []string{
		`{"hostname":"n1","site":"s1","arch":"bios","macs":["52:54:00:00:00:01"]}`,
		`{"selector":"rack=r1","image":"img-1"}`,
		`{"selector":"!nope","image":"img-1","dry_run":true}`,
		`{"name":"deb","version":"12","kind":"os","cmdline":"console=ttyS0 {{.Token}}"}`,
		`{"role":"viewer","name":"x"}`,
		`{"labels":{"a":"b"},"site":"s2"}`,
		`{"name":"bs","site":"s1","addresses":["10.0.0.1"]}`,
		`[]`, `null`, `{"hostname":{"a":[1,2,{"b":null}]}}`, strings.Repeat("[", 10000),
		`{"macs":["` + strings.Repeat("a", 5000) + `"]}`, "\x00\xff", `{"hostname":"\u0000"}`,
	} {
		for route := range 6 {
			f.Add(uint8(route), []byte(seed))
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := mdb.Open(f.TempDir(), mdb.Options{Logger: log})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	srv, err := New(Config{Store: store, Logger: log})
	if err != nil {
		f.Fatal(err)
	}
	admin, err := CreateToken(context.Background(), store, api.RoleAdmin, "fuzz", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	tg, err := store.CreateTarget(context.Background(), api.TargetSpec{Hostname: "fz", Site: "s1", Arch: "bios",
		MACs: []string{"52:54:00:ff:ff:01"}})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	routes := []struct{ method, path string }{
		{"POST", "/targets"}, {"PATCH", "/targets/" + tg.ID}, {"POST", "/orders"},
		{"POST", "/images"}, {"POST", "/tokens"}, {"POST", "/bootservers/register"},
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := routes[int(route)%len(routes)]
		r := httptest.NewRequest(rt.method, api.Prefix+rt.path, strings.NewReader(string(body)))
		r.Header.Set("Authorization", "Bearer "+admin.Secret)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s with %q: %d %s", rt.method, rt.path, body, w.Code, w.Body.String())
		}
		if w.Code >= 400 && !strings.Contains(w.Body.String(), `"message"`) {
			t.Fatalf("%s %s with %q: %d without a message: %s", rt.method, rt.path, body, w.Code, w.Body.String())
		}
	})
}
