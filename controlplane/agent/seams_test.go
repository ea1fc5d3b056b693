package agent

import (
	"net/http/httptest"
	"strings"
	"testing"

	"osim/controlplane/api"
	"osim/dataplane/httpboot"
)

// TestStatusTokenIsBoundToWhereTheTargetBooted: the agent tells httpboot
// who an order's target is; a token read from the script by a stranger is
// refused from the stranger's address, accepted from the address that
// fetched the script first and from the target's fixed address.
func TestStatusTokenIsBoundToWhereTheTargetBooted(t *testing.T) {
	e := newEnv(t, nil)
	e.register()
	e.world()
	fixed := target("t-fixed", "52:54:00:00:00:09")
	fixed.Address = "10.0.0.50"
	e.fm.putTarget(fixed)
	e.fm.putOrder(order("o-fixed", "t-fixed", "52:54:00:00:00:09", api.OrderBooting, "img-os", ""))
	e.sync()
	h, err := httpboot.New(httpboot.Config{Scripts: e.a, Files: e.a, Tokens: e.a, Sink: e.a})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, from, token, body string) int {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.RemoteAddr = from
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	const report = `{"phase":"installing","progress":10}`
	if c := do("GET", "/ipxe/52:54:00:00:00:02", "10.0.0.7:1000", "", ""); c != 200 {
		t.Fatalf("script: %d", c)
	}
	if c := do("GET", "/ipxe/52:54:00:00:00:02", "10.0.0.66:1000", "", ""); c != 200 {
		t.Fatalf("script for the stranger: %d", c)
	}
	for _, tc := range []struct {
		name, order, from string
		code              int
	}{
		{"stranger who fetched the script second", "o-default", "10.0.0.66:2000", 403},
		{"the address that fetched the script first", "o-default", "10.0.0.7:2000", 204},
		{"a target's fixed address", "o-fixed", "10.0.0.50:2000", 204},
		{"anyone else for a target with a fixed address", "o-fixed", "10.0.0.66:2000", 403},
	} {
		if c := do("POST", "/status/"+tc.order, tc.from, "tok-"+tc.order, report); c != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, c, tc.code)
		}
	}
	e.fm.putOrder(order("o-default", "t-default", "52:54:00:00:00:02", api.OrderFailed, "img-os", ""))
	e.sync()
	if c := do("POST", "/status/o-default", "10.0.0.7:2000", "tok-o-default", report); c != 404 {
		t.Errorf("status for an order no longer live: %d, want 404", c)
	}
}
