package manager

import (
	"encoding/json"
	"testing"
	"time"

	"osim/controlplane/api"
)

// joinSecret asks the API for a join token as req says.
func (e *env) joinSecret(req api.TokenRequest) string {
	e.t.Helper()
	req.Role = api.RoleJoin
	info, err := e.client(api.RoleAdmin).CreateToken(e.t.Context(), req)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.Secret
}

func (e *env) registerWith(secret, name, site string) reply {
	e.t.Helper()
	return e.do("POST", "/api/v1/bootservers/register", secret, `{"name":"`+name+`","site":"`+site+`"}`)
}

// The audit's rogue: one join token registered a boot server in another
// site than meant, again and again, and read that site's orders.
func TestRogueCannotRegisterWithAUsedForeignOrExpiredJoinToken(t *testing.T) {
	e := newEnv(t)
	a := e.joinSecret(api.TokenRequest{Site: "A"})
	if r := e.registerWith(a, "bs-a", "A"); r.code != 201 {
		t.Fatalf("first registration: %d %s", r.code, r.body)
	}
	wantError(t, e.registerWith(a, "rogue", "A"), 403, "is used up (1 of 1 registrations)")

	wantError(t, e.registerWith(e.joinSecret(api.TokenRequest{Site: "A", Uses: 3}), "rogue", "B"), 403,
		"registers boot servers of site A, not B")
	wantError(t, e.registerWith(e.joinSecret(api.TokenRequest{Site: "A", Name: "bs-a2"}), "rogue", "A"), 403,
		"registers boot server bs-a2 only, not rogue")

	short := e.joinSecret(api.TokenRequest{Site: "A", TTL: "1h"})
	e.clock.Step(time.Hour)
	wantError(t, e.registerWith(short, "bs-a3", "A"), 401, "expired at 2026-03-01T13:00:00Z")

	// The token listing says how each is bound.
	var l api.TokenList
	r := e.as(api.RoleAdmin, "GET", "/api/v1/tokens", "")
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatal(err)
	}
	for _, tk := range l.Tokens {
		if tk.Role == api.RoleJoin && (tk.Site == "" || tk.Uses < 1 || tk.Expires.IsZero()) {
			t.Errorf("join token listed unbound: %+v", tk)
		}
	}
}

func TestJoinTokenNeedsASiteAndBoundedUsesAndTTL(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ body, want string }{
		{`{"role":"join"}`, "site: is required"},
		{`{"role":"join","site":"a b"}`, `site: "a b" is not a valid site name`},
		{`{"role":"join","site":"A","uses":-1}`, "uses: -1 is not in 1..10000"},
		{`{"role":"join","site":"A","uses":10001}`, "uses: 10001 is not in 1..10000"},
		{`{"role":"join","site":"A","ttl":"forever"}`, `ttl: "forever" is not a duration`},
		{`{"role":"join","site":"A","ttl":"721h"}`, `ttl: "721h" is not a duration`},
		{`{"role":"viewer","site":"A"}`, "for join tokens only"},
	} {
		wantError(t, e.as(api.RoleAdmin, "POST", "/api/v1/tokens", c.body), 400, c.want)
	}
	info, err := e.client(api.RoleAdmin).CreateToken(t.Context(), api.TokenRequest{Role: api.RoleJoin, Site: "A"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Site != "A" || info.Uses != DefaultJoinUses || !info.Expires.Equal(e.clock.Now().Add(DefaultJoinTTL)) {
		t.Fatalf("defaults: %+v, want site A, %d use, expiry in %v", info, DefaultJoinUses, DefaultJoinTTL)
	}
}

func TestTakenNameIsRefusedUnlessTheBootServerPresentsItsCredential(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	wantError(t, e.registerWith(e.joinSecret(api.TokenRequest{Site: "s1"}), "bs1", "s1"), 409, "bs1 is taken by "+e.bs.ID)

	bs := e.client(api.RoleBootServer)
	rr, err := bs.Register(ctx, api.RegisterRequest{Name: "bs1", Site: "s1", Addresses: []string{"10.0.0.9"}, Version: "2"})
	if err != nil {
		t.Fatalf("re-registration with the credential: %v", err)
	}
	if rr.BootServer.ID != e.bs.ID || rr.Token != e.secrets[api.RoleBootServer] ||
		len(rr.BootServer.Addresses) != 1 || rr.BootServer.Addresses[0] != "10.0.0.9" {
		t.Fatalf("re-registered %+v (token echoed: %v)", rr.BootServer, rr.Token == e.secrets[api.RoleBootServer])
	}
	wantError(t, e.as(api.RoleBootServer, "POST", "/api/v1/bootservers/register", `{"name":"bs2","site":"s1"}`), 409,
		"re-registers it under that name and site only")
}

func TestTheLastAdminTokenCannotBeDeletedOverTheAPI(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	admin := e.client(api.RoleAdmin)
	var first string
	for _, tk := range must[[]api.TokenInfo](t)(admin.ListTokens(ctx)) {
		if tk.Role == api.RoleAdmin {
			first = tk.ID
		}
	}
	wantError(t, e.as(api.RoleAdmin, "DELETE", "/api/v1/tokens/"+first, ""), 409, "is the last admin token")
	if _, err := admin.ListTokens(ctx); err != nil {
		t.Fatalf("the admin is locked out: %v", err)
	}
	second := must[api.TokenInfo](t)(admin.CreateToken(ctx, api.TokenRequest{Role: api.RoleAdmin, Name: "second"}))
	if err := admin.DeleteToken(ctx, first); err != nil {
		t.Fatalf("deleting an admin token while another exists: %v", err)
	}
	if _, err := api.NewClient(e.ts.URL, second.Secret, false).ListTokens(ctx); err != nil {
		t.Fatal(err)
	}
}
