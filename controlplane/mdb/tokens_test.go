package mdb

import (
	"context"
	"testing"
	"time"

	"osim/controlplane/api"
)

// joinToken stores a join token bound as given and returns its id.
func joinToken(t *testing.T, d *DB, site, name string, uses int, expires time.Time) string {
	t.Helper()
	tok := Token{TokenInfo: api.TokenInfo{ID: "tok-join-" + site, Role: api.RoleJoin, Name: name, Site: site, Uses: uses, Expires: expires},
		Hash: shaOf([]byte("join " + site + name))}
	if err := d.CreateToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	return tok.ID
}

func TestJoinTokenRegistersItsSiteAndNameOnlyAndIsUsedUp(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	d, _ := openTest(t, func(o *Options) { o.Clock = clock })
	paris := joinToken(t, d, "paris", "", 1, clock.Fake.Now().Add(time.Hour))
	cred := func(s string) Token { return Token{Hash: shaOf([]byte("cred " + s))} }

	_, err := d.RegisterBootServer(ctx, api.RegisterRequest{Name: "rogue", Site: "lyon"}, paris, cred("1"))
	wantErr(t, err, ErrForbidden, paris, "site paris, not lyon")
	must[api.BootServer](t)(d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs1", Site: "paris"}, paris, cred("2")))
	_, err = d.RegisterBootServer(ctx, api.RegisterRequest{Name: "rogue", Site: "paris"}, paris, cred("3"))
	wantErr(t, err, ErrForbidden, paris, "used up (1 of 1")

	named := joinToken(t, d, "lyon", "bs-lyon", 5, clock.Fake.Now().Add(time.Hour))
	_, err = d.RegisterBootServer(ctx, api.RegisterRequest{Name: "rogue", Site: "lyon"}, named, cred("4"))
	wantErr(t, err, ErrForbidden, named, "bs-lyon only, not rogue")
	must[api.BootServer](t)(d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs-lyon", Site: "lyon"}, named, cred("6")))

	short := joinToken(t, d, "nice", "", 5, clock.Fake.Now().Add(time.Minute))
	clock.Step(time.Minute)
	_, err = d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs-nice", Site: "nice"}, short, cred("7"))
	wantErr(t, err, ErrForbidden, short, "expired at 2026-01-02T03:05:05Z")

	for _, ti := range must[[]api.TokenInfo](t)(d.ListTokens(ctx)) {
		if ti.ID == paris && (ti.Used != 1 || ti.Uses != 1) {
			t.Errorf("paris join token after one registration: %+v", ti)
		}
		if ti.ID == named && ti.Used != 1 {
			t.Errorf("lyon join token: %+v, want used 1 (refusals do not count)", ti)
		}
	}
}

func TestTakenNameIsRefusedWithoutUsingTheJoinToken(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	join := joinToken(t, d, "paris", "", 1, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	must[api.BootServer](t)(d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs1", Site: "paris"}, "", Token{Hash: shaOf([]byte("a"))}))
	_, err := d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs1", Site: "paris"}, join, Token{Hash: shaOf([]byte("b"))})
	wantErr(t, err, ErrConflict, "bs1 is taken")
	must[api.BootServer](t)(d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs2", Site: "paris"}, join, Token{Hash: shaOf([]byte("c"))}))
}

func TestJoinTokensMustBeBound(t *testing.T) {
	d, _ := openTest(t)
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		ti   api.TokenInfo
		want string
	}{
		{api.TokenInfo{Role: api.RoleJoin, Uses: 1, Expires: exp}, "bound to a site"},
		{api.TokenInfo{Role: api.RoleJoin, Site: "s", Expires: exp}, "at least one registration"},
		{api.TokenInfo{Role: api.RoleJoin, Site: "s", Uses: 1}, "must expire"},
		{api.TokenInfo{Role: api.RoleJoin, Site: "s", Name: "a b", Uses: 1, Expires: exp}, "boot server name"},
		{api.TokenInfo{Role: api.RoleViewer, Site: "s"}, "join tokens only"},
	} {
		wantErr(t, d.CreateToken(context.Background(), Token{TokenInfo: c.ti, Hash: shaOf([]byte(c.want))}), ErrInvalid, c.want)
	}
}

func TestReRegisterKeepsNameAndSite(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	bs := must[api.BootServer](t)(d.RegisterBootServer(ctx, api.RegisterRequest{Name: "bs1", Site: "paris"}, "", Token{Hash: shaOf([]byte("a"))}))
	got := must[api.BootServer](t)(d.ReRegisterBootServer(ctx, bs.ID, api.RegisterRequest{Name: "bs1", Site: "paris",
		Addresses: []string{"10.0.0.9"}, Version: "2"}))
	if got.ID != bs.ID || len(got.Addresses) != 1 || got.Addresses[0] != "10.0.0.9" || got.Version != "2" {
		t.Fatalf("re-registered %+v", got)
	}
	_, err := d.ReRegisterBootServer(ctx, bs.ID, api.RegisterRequest{Name: "bs2", Site: "paris"})
	wantErr(t, err, ErrConflict, "bs1 at site paris")
	_, err = d.ReRegisterBootServer(ctx, bs.ID, api.RegisterRequest{Name: "bs1", Site: "lyon"})
	wantErr(t, err, ErrConflict, "bs1 at site paris")
}

func TestTheLastAdminTokenCannotBeDeleted(t *testing.T) {
	ctx := context.Background()
	d, _ := openTest(t)
	a1 := Token{TokenInfo: api.TokenInfo{ID: "tok-a1", Role: api.RoleAdmin}, Hash: shaOf([]byte("a1"))}
	a2 := Token{TokenInfo: api.TokenInfo{ID: "tok-a2", Role: api.RoleAdmin}, Hash: shaOf([]byte("a2"))}
	v := Token{TokenInfo: api.TokenInfo{ID: "tok-v", Role: api.RoleViewer}, Hash: shaOf([]byte("v"))}
	for _, tok := range []Token{a1, a2, v} {
		if err := d.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.DeleteToken(ctx, a1.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, d.DeleteToken(ctx, a2.ID), ErrConflict, "tok-a2 is the last admin token")
	if _, err := d.TokenByHash(ctx, a2.Hash); err != nil {
		t.Fatalf("the last admin token is gone: %v", err)
	}
	if err := d.DeleteToken(ctx, v.ID); err != nil {
		t.Fatalf("a viewer token is deleted as before: %v", err)
	}
}
