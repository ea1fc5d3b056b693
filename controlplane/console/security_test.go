package console

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/controlplane/mdb"
)

func TestSignInSetsAStrictHttpOnlySessionCookieAndBadTokensAreRefused(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	if a := b.get("/ui/targets"); a.code != http.StatusSeeOther || !strings.HasPrefix(a.header.Get("Location"), "/ui/signin?next=") {
		t.Fatalf("signed out: %d %s, want a redirect to sign in", a.code, a.header.Get("Location"))
	}
	if a := b.post("/ui/signin", url.Values{"token": {"osim_nope"}}, nil); a.code != http.StatusUnauthorized || !strings.Contains(a.body, "not known") {
		t.Errorf("unknown token: %d", a.code)
	}
	join, err := e.admin.CreateToken(t.Context(), api.TokenRequest{Role: api.RoleJoin, Site: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if a := b.post("/ui/signin", url.Values{"token": {join.Secret}}, nil); a.code != http.StatusUnauthorized || !strings.Contains(a.body, "Only viewer, operator and admin tokens") || strings.Contains(a.body, "join") {
		t.Errorf("join token: %d", a.code)
	}
	a := b.signIn(api.RoleViewer)
	if a.code != http.StatusSeeOther || a.header.Get("Location") != "/ui/overview" {
		t.Fatalf("sign in: %d %s", a.code, a.header.Get("Location"))
	}
	var ck *http.Cookie
	for _, c := range a.resp.Cookies() {
		if c.Name == CookieName {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/ui/" || len(ck.Value) != 64 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/ui/, a 64-hex id", ck)
	}
	if strings.Contains(ck.Value, e.secrets[api.RoleViewer]) {
		t.Fatal("the cookie carries the token")
	}
	if a := b.get("/ui/overview"); a.code != 200 || !strings.Contains(a.body, "viewer-user") {
		t.Fatalf("overview after sign-in: %d", a.code)
	}
	// The security headers are on every page.
	a = b.get("/ui/targets")
	for h, want := range map[string]string{"Content-Security-Policy": "script-src 'self'", "X-Frame-Options": "DENY",
		"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if !strings.Contains(a.header.Get(h), want) {
			t.Errorf("%s: %q, want %q", h, a.header.Get(h), want)
		}
	}
	// Sign-out needs the CSRF token, then ends the session on the server.
	old := b.cookie().Value
	if a := b.post("/ui/signout", url.Values{}, nil); a.code != http.StatusForbidden {
		t.Errorf("sign-out without CSRF: %d", a.code)
	}
	if a := b.post("/ui/signout", url.Values{"csrf": {b.csrf()}}, nil); a.code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", a.code)
	}
	replay := e.browser()
	replay.jar.SetCookies(mustURL(e.ts.URL+"/ui/"), []*http.Cookie{{Name: CookieName, Value: old, Path: "/ui/"}})
	if a := replay.get("/ui/overview"); a.code != http.StatusSeeOther {
		t.Errorf("the signed-out session still works: %d", a.code)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// Session fixation: a session id the browser brings to sign-in is never
// adopted; sign-in always answers a fresh one.
func TestSignInNeverAdoptsASessionIDTheBrowserBrings(t *testing.T) {
	e := newEnv(t)
	attacker := e.browser()
	attacker.signIn(api.RoleViewer)
	planted := attacker.cookie().Value

	victim := e.browser()
	victim.jar.SetCookies(mustURL(e.ts.URL+"/ui/"), []*http.Cookie{{Name: CookieName, Value: planted, Path: "/ui/"}})
	victim.signIn(api.RoleAdmin)
	if got := victim.cookie().Value; got == planted {
		t.Fatal("sign-in kept the planted session id")
	}
	// The planted session was ended by the sign-in over it, and never
	// became the admin's.
	if a := attacker.get("/ui/tokens"); a.code == 200 {
		t.Fatalf("the planted session reached the admin's tokens page")
	}
	fixed := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	v2 := e.browser()
	v2.jar.SetCookies(mustURL(e.ts.URL+"/ui/"), []*http.Cookie{{Name: CookieName, Value: fixed, Path: "/ui/"}})
	v2.signIn(api.RoleOperator)
	if v2.cookie().Value == fixed {
		t.Fatal("sign-in adopted an id the browser made up")
	}
}

func TestFormsNeedTheSessionsCSRFTokenAndTheSameOrigin(t *testing.T) {
	e := newEnv(t)
	seedTargets(t, e, 2)
	b := e.browser()
	b.signIn(api.RoleOperator)
	csrf := b.csrf()
	ts, err := e.admin.ListTargets(t.Context(), "", "", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	id := ts.Targets[0].ID
	form := url.Values{"action": {"label"}, "label": {"pwned=1"}, "id": {id}}
	for _, c := range []struct {
		name    string
		form    url.Values
		headers map[string]string
	}{
		{"no CSRF token", form, nil},
		{"a wrong CSRF token", with(form, "csrf", strings.Repeat("0", 64)), nil},
		{"a cross-site form (Sec-Fetch-Site)", with(form, "csrf", csrf), map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.invalid"}},
		{"another origin", with(form, "csrf", csrf), map[string]string{"Sec-Fetch-Site": "", "Origin": "http://evil.invalid"}},
		{"an opaque origin", with(form, "csrf", csrf), map[string]string{"Sec-Fetch-Site": "", "Origin": "null"}},
		{"another site's referer", with(form, "csrf", csrf), map[string]string{"Sec-Fetch-Site": "", "Origin": "", "Referer": "http://evil.invalid/x"}},
	} {
		if a := b.post("/ui/targets/action", c.form, c.headers); a.code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", c.name, a.code)
		}
	}
	tg, _ := e.admin.GetTarget(t.Context(), id)
	if tg.Labels["pwned"] != "" {
		t.Fatal("a refused form changed the target")
	}
	if a := b.post("/ui/targets/action", with(form, "csrf", csrf), nil); a.code != http.StatusSeeOther {
		t.Fatalf("the console's own form: %d %s", a.code, a.body)
	}
	if tg, _ := e.admin.GetTarget(t.Context(), id); tg.Labels["pwned"] != "1" {
		t.Fatal("the console's own form did not change the target")
	}
	// Sign-in itself refuses a cross-site post (login CSRF).
	other := e.browser()
	if a := other.post("/ui/signin", url.Values{"token": {e.secrets[api.RoleViewer]}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); a.code != http.StatusForbidden {
		t.Errorf("cross-site sign-in: %d", a.code)
	}
}

func with(v url.Values, k, val string) url.Values {
	out := url.Values{}
	for kk, vv := range v {
		out[kk] = append([]string(nil), vv...)
	}
	out.Set(k, val)
	return out
}

// A viewer sees no change buttons, and a form forged with the viewer's
// own valid CSRF token is refused by the API (the console has no
// authority of its own).
func TestAViewerChangesNothingEvenWithAForgedForm(t *testing.T) {
	e := newEnv(t)
	seedTargets(t, e, 2)
	img := seedImage(t, e)
	b := e.browser()
	b.signIn(api.RoleViewer)
	page := b.get("/ui/targets")
	if strings.Contains(page.body, `value="reimage"`) || strings.Contains(page.body, `type="checkbox"`) {
		t.Error("the viewer's targets page has change controls")
	}
	csrf := b.csrf()
	ts, _ := e.admin.ListTargets(t.Context(), "", "", "", 10)
	a := b.post("/ui/reimage", url.Values{"csrf": {csrf}, "targets": {ts.Targets[0].ID}, "image": {img.ID}, "confirm": {"yes"}}, nil)
	if a.code != http.StatusForbidden || !strings.Contains(a.body, "needs role") {
		t.Errorf("viewer reimage: %d, want the API's 403", a.code)
	}
	a = b.post("/ui/targets/action", url.Values{"csrf": {csrf}, "action": {"label"}, "label": {"x=1"}, "id": {ts.Targets[0].ID}}, nil)
	if a.code != http.StatusForbidden {
		t.Errorf("viewer label: %d, want 403", a.code)
	}
	if a := b.get("/ui/tokens"); a.code != http.StatusForbidden {
		t.Errorf("viewer tokens page: %d, want 403", a.code)
	}
	os, _ := e.admin.ListOrders(t.Context(), "", "", "", "", 10)
	tg, _ := e.admin.GetTarget(t.Context(), ts.Targets[0].ID)
	if len(os.Orders) != 0 || tg.Labels["x"] != "" {
		t.Fatalf("a viewer changed something: %d orders, labels %v", len(os.Orders), tg.Labels)
	}
}

func TestRevokingATokenAndTheTTLEndItsSessions(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(api.RoleOperator)
	if a := b.get("/ui/overview"); a.code != 200 {
		t.Fatal(a.code)
	}
	e.clock.Step(DefaultSessionTTL + time.Minute)
	if a := b.get("/ui/overview"); a.code != http.StatusSeeOther {
		t.Errorf("after the TTL: %d, want a redirect to sign in", a.code)
	}
	b.signIn(api.RoleOperator)
	if err := e.admin.DeleteToken(t.Context(), e.ids[api.RoleOperator]); err != nil {
		t.Fatal(err)
	}
	if a := b.get("/ui/overview"); a.code != http.StatusSeeOther {
		t.Errorf("after revocation: %d, want a redirect to sign in", a.code)
	}
	if a := b.get("/ui/overview?fragment=1"); a.code != http.StatusUnauthorized {
		t.Errorf("a live fragment after revocation: %d, want 401", a.code)
	}
}

func TestSafeNextKeepsRedirectsInsideTheConsole(t *testing.T) {
	for in, want := range map[string]string{"/ui/targets?q=a": "/ui/targets?q=a", "//evil.invalid/": "/ui/overview",
		"/ui//evil.invalid": "/ui/overview", "https://evil.invalid/ui/": "/ui/overview", "/ui/x\r\nSet-Cookie: a": "/ui/overview", "": "/ui/overview"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)>`

// Every user-controlled string reaches the page escaped, and no page or
// fragment carries an order's installer token or a secret parameter.
func TestHostileValuesAreEscapedAndNoPageLeaksATokenOrASecret(t *testing.T) {
	e := newEnv(t)
	ts := seedTargets(t, e, 3)
	img := seedImage(t, e)
	ctx := t.Context()
	tg := ts[0]
	if _, err := e.store.SetFacts(ctx, tg.ID, map[string]string{"dmi.product": hostile, "disk.0.model": "a&b \"quoted\""}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"note": "a_b-c.d"}
	if _, err := e.admin.UpdateTarget(ctx, tg.ID, api.TargetPatch{Labels: &labels}); err != nil {
		t.Fatal(err)
	}
	l, err := e.admin.PlaceOrders(ctx, api.OrderRequest{Targets: []string{tg.ID, ts[1].ID}, Image: img.ID,
		Params: map[string]string{"locale": "de_CH.UTF-8"}})
	if err != nil {
		t.Fatal(err)
	}
	failedOrder := l.Orders[0].ID
	if _, err := e.store.Transition(ctx, failedOrder, api.OrderFailed, "installer: "+hostile); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.AppendEvent(ctx, api.Event{Type: api.EventInstallStatus, Target: tg.ID, Order: failedOrder,
		Phase: "failed", Message: hostile, Data: map[string]string{"step": hostile}}); err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for _, o := range l.Orders {
		full, err := e.store.GetOrder(ctx, o.ID)
		if err != nil || full.Token == "" {
			t.Fatalf("order %s: %v (token %q)", o.ID, err, full.Token)
		}
		tokens = append(tokens, full.Token)
	}
	for _, role := range []string{api.RoleViewer, api.RoleAdmin} {
		b := e.browser()
		b.signIn(role)
		pages := []string{"/ui/overview", "/ui/targets", "/ui/targets?q=node", "/ui/targets?state=failed",
			"/ui/targets/" + tg.ID, "/ui/targets/" + tg.ID + "?fragment=1", "/ui/batches/" + l.RequestID,
			"/ui/batches/" + l.RequestID + "?fragment=1", "/ui/batches/" + l.RequestID + "?all=1", "/ui/events", "/ui/events?fragment=1", "/ui/images",
			"/ui/images/" + img.ID, "/ui/bootservers", "/ui/reimage?targets=" + tg.ID}
		if role == api.RoleAdmin {
			pages = append(pages, "/ui/tokens")
		}
		sawEscaped := false
		for _, p := range pages {
			a := b.get(p)
			if a.code != 200 {
				t.Errorf("%s %s: %d %s", role, p, a.code, a.body)
				continue
			}
			if strings.Contains(a.body, "<script>alert") || strings.Contains(a.body, "<img src=x") {
				t.Errorf("%s %s: a hostile value reached the page unescaped", role, p)
			}
			sawEscaped = sawEscaped || strings.Contains(a.body, "&lt;script&gt;alert")
			for _, tok := range tokens {
				if strings.Contains(a.body, tok) {
					t.Errorf("%s %s: an order's installer token is on the page", role, p)
				}
			}
			for _, s := range e.secrets {
				if strings.Contains(a.body, s) {
					t.Errorf("%s %s: an API token secret is on the page", role, p)
				}
			}
			if strings.Contains(a.body, "$6$x$secretdefault") {
				t.Errorf("%s %s: a secret parameter's value is on the page", role, p)
			}
		}
		if !sawEscaped {
			t.Errorf("%s: the hostile value was on no page at all (escaped): the test shows nothing", role)
		}
	}
}

// A message the console shows comes from the server's own redirect, never
// from a link: ?flash= is ignored. Paging follows the Next link with its
// filters intact.
func TestFlashIsServerSideAndPagingKeepsTheFilters(t *testing.T) {
	e := newEnv(t)
	seedTargets(t, e, 25)
	b := e.browser()
	b.signIn(api.RoleOperator)
	if a := b.get("/ui/targets?flash=paste+your+admin+token+here"); strings.Contains(a.body, "paste your admin token") {
		t.Error("a ?flash= from the URL reached the page")
	}
	a := b.get("/ui/targets?label=rack%3Dr1&limit=5")
	m := regexp.MustCompile(`href="([^"]*)" rel="next"`).FindStringSubmatch(a.body)
	if m == nil || !strings.Contains(a.body, "1–5 of 13 matching") {
		t.Fatalf("page 1 of rack=r1: no next link or wrong counts:\n%s", a.body)
	}
	next := html.UnescapeString(m[1])
	p2 := b.get(next)
	if p2.code != 200 || !strings.Contains(p2.body, "6–10 of 13 matching") {
		t.Fatalf("next page %s: %d, want 6–10 of the same 13", next, p2.code)
	}
	if strings.Contains(p2.body, "rack=r2") {
		t.Error("page 2 lost the label filter")
	}
}

// One token signing in again and again keeps at most
// maxSessionsPerToken sessions: others' sessions stay.
func TestOneTokenCannotPushOtherSessionsOut(t *testing.T) {
	e := newEnv(t)
	admin := e.browser()
	admin.signIn(api.RoleAdmin)
	var last *browser
	for range maxSessionsPerToken + 5 {
		last = e.browser()
		last.signIn(api.RoleViewer)
	}
	e.ui.sessions.mu.Lock()
	n := 0
	for _, s := range e.ui.sessions.m {
		if s.tokenID == e.ids[api.RoleViewer] {
			n++
		}
	}
	e.ui.sessions.mu.Unlock()
	if n != maxSessionsPerToken {
		t.Errorf("the viewer token holds %d sessions, want %d", n, maxSessionsPerToken)
	}
	if a := admin.get("/ui/tokens"); a.code != 200 {
		t.Errorf("the admin's session was pushed out: %d", a.code)
	}
	if a := last.get("/ui/overview"); a.code != 200 {
		t.Errorf("the newest viewer session: %d", a.code)
	}
}

// failingTokens is a token store that is down (a hand-written stand-in
// for mdb.DB's TokenByHash failing).
type failingTokens struct{ Tokens }

func (failingTokens) TokenByHash(context.Context, string) (mdb.Token, error) {
	return mdb.Token{}, errors.New("badger: closed")
}

// A store error is a 503 that keeps the session; only a token that is
// gone ends it.
func TestATokenStoreErrorDoesNotSignAnyoneOut(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(api.RoleOperator)
	good := e.ui.cfg.Tokens
	e.ui.cfg.Tokens = failingTokens{good}
	if a := b.get("/ui/overview"); a.code != http.StatusServiceUnavailable {
		t.Errorf("store down: %d, want 503", a.code)
	}
	e.ui.cfg.Tokens = good
	if a := b.get("/ui/overview"); a.code != 200 {
		t.Errorf("after the store came back: %d, want the session still there", a.code)
	}
}

// Links built from ids a boot server can name (an event's target) stay
// one path segment; an event type with a newline never reaches the SSE
// data line as it is.
func TestIDsInLinksArePathEscapedAndEventKindsAreSafe(t *testing.T) {
	e := newEnv(t)
	if _, err := e.store.AppendEvent(t.Context(), api.Event{Type: api.EventDHCPSeen, Target: "../tokens?x=1"}); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signIn(api.RoleViewer)
	a := b.get("/ui/events")
	if strings.Contains(a.body, `href="/ui/targets/../tokens`) || !strings.Contains(a.body, `href="/ui/targets/..%2Ftokens%3Fx=1"`) {
		t.Errorf("an event's target id is not one escaped path segment:\n%s", a.body)
	}
	for k, want := range map[string]bool{"install.status": true, "order.state": true, "a\nevent: gone": false, "": false, "X": false} {
		if safeKind(k) != want {
			t.Errorf("safeKind(%q) = %v", k, !want)
		}
	}
}
