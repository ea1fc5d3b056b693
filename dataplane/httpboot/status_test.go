package httpboot

import (
	"fmt"
	"strings"
	"testing"

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
		{"oversized body", "/status/o-17", `{"phase":"done","message":"` + strings.Repeat("x", 20000) + `"}`, auth, 413, "body over 16384 bytes"},
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

	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	for _, tc := range []struct{ name, body, says string }{
		{"too many keys", `{"phase":"done","facts":{` + strings.Join(many, ",") + `}}`, "65 keys, at most 64"},
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
