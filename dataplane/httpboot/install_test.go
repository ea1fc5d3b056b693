package httpboot

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakePlans answers a plan naming the base it was given, or err.
type fakePlans struct{ err error }

func (p fakePlans) Plan(_ context.Context, order, base string) (any, error) {
	if p.err != nil {
		return nil, p.err
	}
	return map[string]string{"order": order, "status_url": base + "/status/" + order}, nil
}

func planFixture(t *testing.T, plans Plans) *fixture {
	t.Helper()
	f := newFixture(t)
	h, err := New(Config{Scripts: StaticScripts{}, Files: f.h.files, Tokens: StaticTokens{"o-17": "tok123"},
		Sink: f.sink, BaseURL: "http://10.0.0.1:8080/", Metrics: f.metrics, Plans: plans, Clock: f.clock,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	return f
}

func TestInstallPlanIsServedToTheOrdersTokenOnlyAndNeverCached(t *testing.T) {
	f := planFixture(t, fakePlans{})
	w := f.do("GET", "/install/o-17", nil, "Authorization", "Bearer tok123")
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("code %d headers %v body %q", w.Code, w.Header(), w.Body.String())
	}
	var got map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got["status_url"] != "http://10.0.0.1:8080/status/o-17" {
		t.Fatalf("plan %q (%v): want the configured base, without its trailing slash", w.Body.String(), err)
	}
	for _, tc := range []struct {
		name, path string
		hdr        []string
		code       int
	}{
		{"no token", "/install/o-17", nil, 401},
		{"wrong token", "/install/o-17", []string{"Authorization", "Bearer tok124"}, 403},
		{"unknown order", "/install/o-99", []string{"Authorization", "Bearer tok123"}, 404},
		{"bad order id", "/install/o%2017", []string{"Authorization", "Bearer tok123"}, 400},
	} {
		if w := f.do("GET", tc.path, nil, tc.hdr...); w.Code != tc.code || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: code %d (Cache-Control %q), want %d", tc.name, w.Code, w.Header().Get("Cache-Control"), tc.code)
		}
	}
	if n := testutil.ToFloat64(f.metrics.installPlans.WithLabelValues("served")); n != 1 {
		t.Errorf("install_plans_total{outcome=served} = %v", n)
	}
	if n := testutil.ToFloat64(f.metrics.installPlans.WithLabelValues("refused")); n != 3 {
		t.Errorf("install_plans_total{outcome=refused} = %v, want 3", n)
	}
	if strings.Contains(f.logs.String(), "tok123") || strings.Contains(f.logs.String(), "tok124") {
		t.Errorf("a token reached the log:\n%s", f.logs.String())
	}
}

func TestInstallPlanFromAnotherAddressIsRefused(t *testing.T) {
	f := newFixture(t)
	f.h.plans = fakePlans{}
	auth := []string{"Authorization", "Bearer tok123"}
	if w := f.doFrom("10.0.0.7:1000", "GET", "/ipxe/52:54:00:12:34:56", ""); w.Code != 200 {
		t.Fatalf("script: %d", w.Code)
	}
	if w := f.doFrom("10.0.0.66:1000", "GET", "/install/o-17", "", auth...); w.Code != 403 || !strings.Contains(w.Body.String(), "10.0.0.66") {
		t.Fatalf("stranger's plan request: %d %q, want 403 naming the address", w.Code, w.Body.String())
	}
	if w := f.doFrom("10.0.0.7:2000", "GET", "/install/o-17", "", auth...); w.Code != 200 {
		t.Fatalf("target's plan request: %d %q", w.Code, w.Body.String())
	}
}

func TestInstallPlanBackendErrorsMapToCodes(t *testing.T) {
	for _, tc := range []struct {
		err     error
		code    int
		outcome string
	}{
		{fmt.Errorf("%w: o-17 is pending", ErrNoPlan), 409, "conflict"},
		{fmt.Errorf("%w: params.disk.min_size: \"ten\"", ErrBadPlanInput), 422, "invalid"},
		{fmt.Errorf("%w: gone", ErrUnknownOrder), 404, "unknown_order"},
		{fmt.Errorf("store down"), 503, "error"},
	} {
		f := planFixture(t, fakePlans{err: tc.err})
		w := f.do("GET", "/install/o-17", nil, "Authorization", "Bearer tok123")
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.err.Error()) {
			t.Errorf("%v: code %d body %q, want %d with the reason", tc.err, w.Code, w.Body.String(), tc.code)
		}
		if n := testutil.ToFloat64(f.metrics.installPlans.WithLabelValues(tc.outcome)); n != 1 {
			t.Errorf("%v: install_plans_total{outcome=%s} = %v", tc.err, tc.outcome, n)
		}
	}
	f := newFixture(t) // no Plans: the route is off
	if w := f.do("GET", "/install/o-17", nil, "Authorization", "Bearer tok123"); w.Code != 404 {
		t.Errorf("no Plans: code %d, want 404", w.Code)
	}
}

func TestInstallBootAppendsTheOsimKeysWithAnAbsoluteBase(t *testing.T) {
	b := Boot{Kernel: "images/img-inst/vmlinuz", Initrds: []string{"images/img-inst/initrd.img"},
		Cmdline: "console=ttyS0", Order: "o-1", Token: "secret-tok", Install: true}
	got, err := renderScript(b, testMAC, "http://10.0.0.1:8080", "efi", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kernel http://10.0.0.1:8080/files/images/img-inst/vmlinuz initrd=initrd.img console=ttyS0 osim.mode=install",
		"osim.url=http://10.0.0.1:8080 ", "osim.order=o-1", "osim.token=secret-tok", "osim.mac=" + testMAC.String()} {
		if !strings.Contains(string(got), want) {
			t.Errorf("script lacks %q:\n%s", want, got)
		}
	}
	if _, err := renderScript(b, testMAC, "http://0.0.0.0:8080", "efi", 0); err == nil {
		t.Error("osim.url of an unspecified address accepted")
	}
	// No base configured: the request's own host makes it absolute.
	f := newFixture(t)
	h, err := New(Config{Scripts: StaticScripts{testMAC.String(): b}, Files: f.h.files, Tokens: StaticTokens{}, Sink: f.sink})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	w := f.do("GET", "/ipxe/"+testMAC.String(), nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "osim.url=http://example.com ") {
		t.Errorf("code %d script %q, want osim.url of the request's host", w.Code, w.Body.String())
	}
}

func TestStatusStepAndDataReachTheSink(t *testing.T) {
	f := newFixture(t)
	w := f.do("POST", "/status/o-17", []byte(`{"phase":"installing","step":"write","progress":40,"data":{"bytes":"1048576","disk":"/dev/vda"}}`),
		"Authorization", "Bearer tok123")
	if w.Code != 204 {
		t.Fatalf("code %d body %q", w.Code, w.Body.String())
	}
	got := f.sink.reports()
	if len(got) != 1 || got[0].Step != "write" || got[0].Data["disk"] != "/dev/vda" || got[0].Data["bytes"] != "1048576" {
		t.Fatalf("sink got %+v", got)
	}
	facts := make([]string, maxFacts)
	for i := range facts {
		facts[i] = fmt.Sprintf(`"disk%d_size":"%d"`, i, 1<<40)
	}
	body := `{"phase":"installing","step":"inventory","facts":{` + strings.Join(facts, ",") + `}}`
	if w := f.do("POST", "/status/o-17", []byte(body), "Authorization", "Bearer tok123"); w.Code != 204 {
		t.Fatalf("an inventory of %d facts (%d bytes): %d %q", maxFacts, len(body), w.Code, w.Body.String())
	}
}
