package httpboot

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestStatusValidReportReachesTheSink(t *testing.T) {
	f := newFixture(t)
	w := f.do("POST", "/status/o-17", []byte(`{"phase":"installing","message":"partitioning","progress":40}`),
		"Authorization", "Bearer tok123", "Content-Type", "application/json; charset=utf-8")
	if w.Code != 204 {
		t.Fatalf("code %d body %q, want 204", w.Code, w.Body.String())
	}
	got := f.sink.reports()
	if len(got) != 1 {
		t.Fatalf("sink got %d reports", len(got))
	}
	st := got[0]
	if st.Order != "o-17" || st.Phase != PhaseInstalling || st.Message != "partitioning" || st.Progress != 40 || !st.Received.Equal(fixedNow) || st.Client == "" {
		t.Fatalf("sink got %+v", st)
	}
	if n := testutil.ToFloat64(f.metrics.statusReports.WithLabelValues("installing")); n != 1 {
		t.Errorf("status_reports_total{phase=installing} = %v", n)
	}
}

func TestStatusWithoutProgressReportsMinusOne(t *testing.T) {
	f := newFixture(t)
	w := f.do("POST", "/status/o-17", []byte(`{"phase":"done"}`), "Authorization", "Bearer tok123")
	if w.Code != 204 {
		t.Fatalf("code %d body %q", w.Code, w.Body.String())
	}
	if st := f.sink.reports()[0]; st.Progress != -1 || st.Phase != PhaseDone {
		t.Fatalf("sink got %+v", st)
	}
}

func TestStatusRefusesBadReportsWith4xxAndAMessage(t *testing.T) {
	const ok = `{"phase":"done","message":"ok","progress":100}`
	auth := []string{"Authorization", "Bearer tok123"}
	for _, tc := range []struct {
		name   string
		target string
		body   string
		hdr    []string
		code   int
		says   string
	}{
		{"no token", "/status/o-17", ok, nil, 401, "no bearer token"},
		{"basic auth instead of bearer", "/status/o-17", ok, []string{"Authorization", "Basic dG9rMTIz"}, 401, "no bearer token"},
		{"wrong token", "/status/o-17", ok, []string{"Authorization", "Bearer tok124"}, 403, "token does not match"},
		{"token of a prefix", "/status/o-17", ok, []string{"Authorization", "Bearer tok12"}, 403, "token does not match"},
		{"unknown order", "/status/o-99", ok, auth, 404, `unknown order "o-99"`},
		{"order with a space", "/status/o%2017", ok, auth, 400, "only letters"},
		{"order too long", "/status/" + strings.Repeat("o", 200), ok, auth, 400, "want 1..128"},
		{"unknown field", "/status/o-17", `{"phase":"done","percent":5}`, auth, 400, `unknown field "percent"`},
		{"malformed JSON", "/status/o-17", `{"phase":`, auth, 400, "body"},
		{"empty body", "/status/o-17", ``, auth, 400, "EOF"},
		{"two objects", "/status/o-17", ok + ok, auth, 400, "data after the JSON object"},
		{"wrong type", "/status/o-17", `{"phase":"done","progress":"50%"}`, auth, 400, "progress"},
		{"oversized body", "/status/o-17", `{"phase":"done","message":"` + strings.Repeat("x", 70000) + `"}`, auth, 413, "body over 65536 bytes"},
		{"unknown step", "/status/o-17", `{"phase":"installing","step":"dance"}`, auth, 422, `step "dance"`},
		{"bad data key", "/status/o-17", `{"phase":"installing","step":"write","data":{"a b":"1"}}`, auth, 422, `data: key "a b"`},
		{"data value with a newline", "/status/o-17", `{"phase":"installing","data":{"disk":"a\nb"}}`, auth, 422, "data.disk"},
		{"unknown phase", "/status/o-17", `{"phase":"rebooting"}`, auth, 422, `phase "rebooting"`},
		{"missing phase", "/status/o-17", `{"message":"hi"}`, auth, 422, `phase ""`},
		{"progress over 100", "/status/o-17", `{"phase":"installing","progress":101}`, auth, 422, "progress 101 outside 0..100"},
		{"negative progress", "/status/o-17", `{"phase":"installing","progress":-1}`, auth, 422, "outside 0..100"},
		{"message too long", "/status/o-17", `{"phase":"failed","message":"` + strings.Repeat("x", 5000) + `"}`, auth, 422, "message of 5000 bytes"},
		{"form content type", "/status/o-17", ok, append([]string{"Content-Type", "application/x-www-form-urlencoded"}, auth...), 415, "want application/json"},
		{"GET is not allowed", "/status/o-17", "", auth, 405, ""},
		{"climbing order", "/status/..%2fo-17", ok, auth, 403, "leaves the root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			method := "POST"
			if strings.HasPrefix(tc.name, "GET") {
				method = "GET"
			}
			w := f.do(method, tc.target, []byte(tc.body), tc.hdr...)
			if w.Code != tc.code {
				t.Fatalf("code %d, want %d; body %q", w.Code, tc.code, w.Body.String())
			}
			if !strings.Contains(w.Body.String(), tc.says) {
				t.Errorf("body %q does not say %q", w.Body.String(), tc.says)
			}
			if n := len(f.sink.reports()); n != 0 {
				t.Errorf("sink got %d reports from a refused request", n)
			}
			if tc.code == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
}

func TestStatusSinkFailureAsksTheInstallerToRetry(t *testing.T) {
	f := newFixture(t)
	f.sink.fail = errSinkDown
	w := f.do("POST", "/status/o-17", []byte(`{"phase":"done"}`), "Authorization", "Bearer tok123")
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "event queue full") {
		t.Fatalf("code %d Retry-After %q body %q, want 503 with Retry-After and the cause", w.Code, w.Header().Get("Retry-After"), w.Body.String())
	}
	if n := testutil.ToFloat64(f.metrics.statusReports.WithLabelValues("sink_error")); n != 1 {
		t.Errorf("status_reports_total{phase=sink_error} = %v", n)
	}
}

func TestStatusFactsAreValidatedAndPassedOn(t *testing.T) {
	f := newFixture(t)
	w := f.do("POST", "/status/o-17", []byte(`{"phase":"installing","facts":{"cpu_model":"EPYC 7302","disk0.size":"480G"}}`),
		"Authorization", "Bearer tok123")
	if w.Code != 204 {
		t.Fatalf("code %d body %q", w.Code, w.Body.String())
	}
	st := f.sink.reports()[0]
	if len(st.Facts) != 2 || st.Facts["cpu_model"] != "EPYC 7302" || st.Facts["disk0.size"] != "480G" {
		t.Fatalf("facts %v", st.Facts)
	}
	w = f.do("POST", "/status/o-17", []byte(`{"phase":"done"}`), "Authorization", "Bearer tok123")
	if st := f.sink.reports()[1]; w.Code != 204 || st.Facts != nil {
		t.Fatalf("without facts: code %d facts %v", w.Code, st.Facts)
	}

	many := make([]string, maxFacts+1)
	for i := range many {
		many[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	for _, tc := range []struct{ name, body, says string }{
		{"too many keys", `{"phase":"done","facts":{` + strings.Join(many, ",") + `}}`, "257 keys, at most 256"},
		{"bad key", `{"phase":"done","facts":{"cpu model":"x"}}`, `key "cpu model"`},
		{"key starting with a dot", `{"phase":"done","facts":{".x":"x"}}`, `key ".x"`},
		{"empty key", `{"phase":"done","facts":{"":"x"}}`, `key ""`},
		{"long value", `{"phase":"done","facts":{"k":"` + strings.Repeat("v", 257) + `"}}`, "257 bytes exceeds 256"},
		{"control byte", `{"phase":"done","facts":{"k":"a\u0001b"}}`, "control character"},
		{"not strings", `{"phase":"done","facts":{"k":5}}`, "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do("POST", "/status/o-17", []byte(tc.body), "Authorization", "Bearer tok123")
			if w.Code/100 != 4 || !strings.Contains(w.Body.String(), tc.says) {
				t.Errorf("code %d body %q, want 4xx saying %q", w.Code, w.Body.String(), tc.says)
			}
		})
	}
	if n := len(f.sink.reports()); n != 2 {
		t.Errorf("sink got %d reports, want 2 (refused ones must not reach it)", n)
	}
}

// doFrom sends a request from a given peer address.
func (f *fixture) doFrom(from, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.RemoteAddr = from
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func TestStatusTokenIsAcceptedOnlyFromTheAddressThatFetchedTheScriptFirst(t *testing.T) {
	f := newFixture(t)
	const report = `{"phase":"done"}`
	auth := []string{"Authorization", "Bearer tok123"}
	if w := f.doFrom("10.0.0.7:1000", "GET", "/ipxe/52:54:00:12:34:56", ""); w.Code != 200 {
		t.Fatalf("script: %d", w.Code)
	}
	// The audit's attack: a stranger reads the token from the script.
	if w := f.doFrom("10.0.0.66:1000", "GET", "/ipxe/52:54:00:12:34:56", ""); w.Code != 200 || !strings.Contains(w.Body.String(), "osim.token=tok123") {
		t.Fatalf("script for the stranger: %d", w.Code)
	}
	w := f.doFrom("10.0.0.66:2000", "POST", "/status/o-17", report, auth...)
	if w.Code != 403 || !strings.Contains(w.Body.String(), "10.0.0.66") {
		t.Fatalf("stranger's report: %d %q, want 403 naming the address", w.Code, w.Body.String())
	}
	if w := f.doFrom("10.0.0.7:2000", "POST", "/status/o-17", report, auth...); w.Code != 204 {
		t.Fatalf("target's report: %d %q", w.Code, w.Body.String())
	}
	if n := testutil.ToFloat64(f.metrics.statusRefused.WithLabelValues("address")); n != 1 {
		t.Errorf("status_refused_total{reason=address} = %v", n)
	}
	if n := len(f.sink.reports()); n != 1 {
		t.Errorf("sink got %d reports, want the target's only", n)
	}
}

func TestStatusTokenIsBoundToTheTargetsLeaseAndFixedAddress(t *testing.T) {
	f := newFixture(t)
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	f.h.targets = staticTargets{"o-17": {MACs: []net.HardwareAddr{mac}, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.50")}}}
	f.h.leases = LeasesFunc(func(_ context.Context, m net.HardwareAddr) (netip.Addr, bool) {
		return netip.MustParseAddr("10.0.0.8"), m.String() == mac.String()
	})
	auth := []string{"Authorization", "Bearer tok123"}
	for _, tc := range []struct {
		from string
		code int
	}{{"10.0.0.66:1", 403}, {"10.0.0.8:1", 204}, {"10.0.0.50:1", 204}, {"[::ffff:10.0.0.8]:1", 204}} {
		if w := f.doFrom(tc.from, "POST", "/status/o-17", `{"phase":"installing"}`, auth...); w.Code != tc.code {
			t.Errorf("from %s: %d %q, want %d", tc.from, w.Code, w.Body.String(), tc.code)
		}
	}
	f.h.targets = staticTargets{}
	if w := f.doFrom("10.0.0.8:1", "POST", "/status/o-17", `{"phase":"installing"}`, auth...); w.Code != 404 {
		t.Errorf("order the backend no longer has live: %d, want 404", w.Code)
	}
}

func TestStatusWithNoKnownAddressIsAcceptedAndCountedUnbound(t *testing.T) {
	f := newFixture(t)
	if w := f.doFrom("10.0.0.66:1", "POST", "/status/o-17", `{"phase":"installing"}`, "Authorization", "Bearer tok123"); w.Code != 204 {
		t.Fatalf("%d %q", w.Code, w.Body.String())
	}
	if n := testutil.ToFloat64(f.metrics.statusUnbound); n != 1 {
		t.Errorf("status_unbound_total = %v", n)
	}
}

func TestBadTokenFloodIsCountedAndLoggedRateLimited(t *testing.T) {
	f := newFixture(t)
	for i := range 4000 {
		f.doFrom("10.0.0.66:1", "POST", "/status/o-17", `{"phase":"done"}`, "Authorization", fmt.Sprintf("Bearer guess%d", i))
	}
	if n := testutil.ToFloat64(f.metrics.statusRefused.WithLabelValues("bad_token")); n != 4000 {
		t.Errorf("status_refused_total{reason=bad_token} = %v, want 4000", n)
	}
	logs := f.logs.String()
	if n := strings.Count(logs, `msg="status refused"`); n != 1 || !strings.Contains(logs, "reason=bad_token") {
		t.Fatalf("%d refusal lines in one second of the clock, want 1 naming the reason", n)
	}
	// A second later the next line says how many were left out.
	f.clock.Step(time.Second)
	f.doFrom("10.0.0.66:1", "POST", "/status/o-17", `{"phase":"done"}`, "Authorization", "Bearer nope")
	if !strings.Contains(f.logs.String(), "suppressed=3999") {
		t.Errorf("no line with suppressed=3999:\n%s", lastLines(f.logs.String(), 3))
	}
}

func TestStatusMessageWithControlCharactersIsRefused(t *testing.T) {
	for _, msg := range []string{`\u001b[2Jowned`, `line\r\nforged: done`, `bell\u0007`, `csi\u009b2J`, `del\u007f`} {
		f := newFixture(t)
		w := f.do("POST", "/status/o-17", []byte(`{"phase":"installing","message":"`+msg+`"}`), "Authorization", "Bearer tok123")
		if w.Code != 422 || !strings.Contains(w.Body.String(), "message: control character") {
			t.Errorf("message %s: %d %q, want 422 naming the control character", msg, w.Code, w.Body.String())
		}
	}
	f := newFixture(t)
	if w := f.do("POST", "/status/o-17", []byte(`{"phase":"installing","message":"écrit 40 % — ok\u00a0"}`), "Authorization", "Bearer tok123"); w.Code != 204 {
		t.Errorf("printable UTF-8 message: %d %q", w.Code, w.Body.String())
	}
}

type staticTargets map[string]Target

func (s staticTargets) OrderTarget(_ context.Context, order string) (Target, error) {
	t, ok := s[order]
	if !ok {
		return Target{}, fmt.Errorf("%w: %q", ErrUnknownOrder, order)
	}
	return t, nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
