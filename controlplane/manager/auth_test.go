package manager

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"osim/controlplane/api"
)

type openAPIOp struct {
	Roles []string `json:"x-osim-roles"`
}

// docRoutes parses the embedded OpenAPI document: "METHOD /path" → roles.
func docRoutes(t *testing.T) map[string][]string {
	t.Helper()
	var doc struct {
		OpenAPI string                          `json:"openapi"`
		Paths   map[string]map[string]openAPIOp `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Fatalf("openapi.json: version %q, want 3.0.x", doc.OpenAPI)
	}
	out := map[string][]string{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			roles := slices.Clone(op.Roles)
			sort.Strings(roles)
			if roles == nil {
				roles = []string{}
			}
			out[strings.ToUpper(method)+" "+path] = roles
		}
	}
	return out
}

func TestOpenAPIDocListsExactlyTheServedRoutes(t *testing.T) {
	e := newEnv(t)
	doc := docRoutes(t)
	served := e.srv.Routes()
	for r, roles := range served {
		if roles == nil {
			roles = []string{}
		}
		dr, ok := doc[r]
		if !ok {
			t.Errorf("route %s is served but not in openapi.json", r)
			continue
		}
		if !slices.Equal(dr, roles) {
			t.Errorf("route %s: openapi.json says roles %v, the server allows %v", r, dr, roles)
		}
	}
	for r := range doc {
		if _, ok := served[r]; !ok {
			t.Errorf("openapi.json lists %s, which the server does not serve", r)
		}
	}
	// The served copy is the embedded one.
	got := e.as(api.RoleViewer, "GET", "/api/v1/openapi.json", "")
	if got.code != 200 || string(got.body) != string(openAPIDoc) || got.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET openapi.json: %d %s", got.code, got.header.Get("Content-Type"))
	}
}

// concrete fills a path template with values that exist nowhere.
func concrete(path string) string {
	r := strings.NewReplacer("{id}", "nothing-here", "{sha256}", strings.Repeat("0", 64))
	return r.Replace(path)
}

func TestEveryDocumentedRouteChecksTokenAndRole(t *testing.T) {
	e := newEnv(t)
	for r, roles := range docRoutes(t) {
		method, path, _ := strings.Cut(r, " ")
		url := concrete(path)
		t.Run(r, func(t *testing.T) {
			if len(roles) == 0 {
				if got := e.do(method, url, "", ""); got.code != http.StatusOK {
					t.Fatalf("public route answered %d without a token", got.code)
				}
				return
			}
			for _, tok := range []string{"", "osim_notatoken", "garbage"} {
				got := e.do(method, url, tok, "")
				if got.code != http.StatusUnauthorized {
					t.Fatalf("token %q: status %d, want 401; body %s", tok, got.code, got.body)
				}
				if !strings.HasPrefix(got.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("401 without WWW-Authenticate: Bearer (%q)", got.header.Get("WWW-Authenticate"))
				}
				if method != "HEAD" {
					wantError(t, got, 401, "")
				}
			}
			for _, role := range api.Roles {
				got := e.as(role, method, url, "")
				allowed := slices.Contains(roles, role)
				switch {
				case allowed && (got.code == 401 || got.code == 403):
					t.Errorf("role %s is allowed but got %d: %s", role, got.code, got.body)
				case allowed && got.code >= 500:
					t.Errorf("role %s: server error %d: %s", role, got.code, got.body)
				case !allowed && got.code != http.StatusForbidden:
					t.Errorf("role %s is not allowed but got %d: %s", role, got.code, got.body)
				case !allowed && method != "HEAD":
					wantError(t, got, 403, "needs role "+strings.Join(e.srv.routeRoles(r), " or "))
				}
			}
		})
	}
}

func TestUnknownPathAndWrongMethodAnswerJSON(t *testing.T) {
	e := newEnv(t)
	wantError(t, e.as(api.RoleAdmin, "GET", "/api/v1/nothing", ""), 404, "no route")
	got := e.as(api.RoleAdmin, "PUT", "/api/v1/targets", "")
	wantError(t, got, 405, "not allowed")
	if a := got.header.Get("Allow"); !strings.Contains(a, "GET") || !strings.Contains(a, "POST") {
		t.Fatalf("Allow %q, want GET and POST", a)
	}
	got = e.do("POST", "/api/v1/orders/x/cancel/more", "", "")
	wantError(t, got, 404, "no route")
}

func TestTokensLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	admin := e.client(api.RoleAdmin)
	info, err := admin.CreateToken(ctx, api.TokenRequest{Role: api.RoleViewer, Name: "dashboard"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.Secret, "osim_") || info.ID == "" || info.Role != api.RoleViewer {
		t.Fatalf("created %+v", info)
	}
	viewer := api.NewClient(e.ts.URL, info.Secret, false)
	if _, err := viewer.ListTargets(ctx, "", "", "", 0); err != nil {
		t.Fatalf("new token: %v", err)
	}
	toks, err := admin.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tk := range toks {
		if tk.Secret != "" {
			t.Fatalf("list shows a secret: %+v", tk)
		}
		found = found || tk.ID == info.ID
	}
	if !found || len(toks) != 6 {
		t.Fatalf("list has %d tokens (found new: %v), want 6", len(toks), found)
	}
	if err := admin.DeleteToken(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	_, err = viewer.ListTargets(ctx, "", "", "", 0)
	mustStatus(t, err, 401)
	mustStatus(t, admin.DeleteToken(ctx, info.ID), 404)

	_, err = admin.CreateToken(ctx, api.TokenRequest{Role: api.RoleBootServer})
	mustStatus(t, err, 400)
	wantError(t, e.as(api.RoleAdmin, "POST", "/api/v1/tokens", `{"role":"root"}`), 400, `"root" is not one of`)
	wantError(t, e.as(api.RoleAdmin, "POST", "/api/v1/tokens", `{"role":"viewer","nme":"x"}`), 400, `unknown field "nme"`)
}
