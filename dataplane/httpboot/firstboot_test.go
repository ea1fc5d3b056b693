package httpboot

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeFirstBoots struct{ reports []FirstBootReport }

func (f *fakeFirstBoots) FirstBootToken(_ context.Context, order string) (string, error) {
	switch order {
	case "o-done":
		return "tok-done", nil
	case "o-old":
		return "", fmt.Errorf("%w: order o-old was done 25h ago", ErrReportWindowClosed)
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownOrder, order)
}

func (f *fakeFirstBoots) FirstBootReport(_ context.Context, r FirstBootReport) error {
	f.reports = append(f.reports, r)
	return nil
}

func TestFirstBootReportsNeedTheOrderTokenWithinItsWindowAndAWellFormedBody(t *testing.T) {
	fb := &fakeFirstBoots{}
	var logs bytes.Buffer
	h, err := New(Config{Scripts: StaticScripts{}, Files: noFiles{}, Tokens: StaticTokens{}, Sink: &recordingSink{},
		FirstBoots: fb, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	post := func(target, token string, body string) int {
		r := httptest.NewRequest("POST", target, strings.NewReader(body))
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	ok := "/firstboot/o-done?procedure=motd&exit_code=0"
	for _, c := range []struct {
		name, target, token, body string
		code                      int
	}{
		{"no token", ok, "", "", http.StatusUnauthorized},
		{"wrong token", ok, "tok-other", "", http.StatusForbidden},
		{"unknown order", "/firstboot/o-none?procedure=motd&exit_code=0", "tok-done", "", http.StatusNotFound},
		{"window closed", "/firstboot/o-old?procedure=motd&exit_code=0", "tok-done", "", http.StatusGone},
		{"no procedure", "/firstboot/o-done?exit_code=0", "tok-done", "", http.StatusBadRequest},
		{"bad procedure", "/firstboot/o-done?procedure=a%2Fb&exit_code=0", "tok-done", "", http.StatusBadRequest},
		{"bad exit code", "/firstboot/o-done?procedure=motd&exit_code=x", "tok-done", "", http.StatusBadRequest},
		{"exit code out of range", "/firstboot/o-done?procedure=motd&exit_code=256", "tok-done", "", http.StatusBadRequest},
		{"body too large", ok, "tok-done", strings.Repeat("x", maxFirstBootBody+1), http.StatusBadRequest},
	} {
		if got := post(c.target, c.token, c.body); got != c.code {
			t.Errorf("%s: %d, want %d", c.name, got, c.code)
		}
	}
	if len(fb.reports) != 0 {
		t.Fatalf("refused reports recorded: %+v", fb.reports)
	}
	body := strings.Repeat("line\n", 100) + "last\tline\x01\n"
	if got := post("/firstboot/o-done?procedure=motd&exit_code=3", "tok-done", body); got != http.StatusNoContent {
		t.Fatalf("good report: %d", got)
	}
	r := fb.reports[0]
	if r.Order != "o-done" || r.Procedure != "motd" || r.ExitCode != 3 || r.Client == "" {
		t.Errorf("report = %+v", r)
	}
	if len(r.OutputTail) > MaxFirstBootTail || !strings.HasSuffix(r.OutputTail, `last\tline`+"\uFFFD"+`\n`) || strings.ContainsAny(r.OutputTail, "\n\t\x01") {
		t.Errorf("output tail not fitted: %q", r.OutputTail)
	}
	if strings.Contains(logs.String(), "tok-done") {
		t.Errorf("the token is in the log:\n%s", logs.String())
	}
	if got := post("/firstboot/o-done?procedure=motd&exit_code=0", "tok-done", ""); got != http.StatusNoContent {
		t.Fatalf("good report: %d", got)
	}
	for outcome, want := range map[string]float64{"refused": 8, "gone": 1, "failed": 1, "succeeded": 1, "error": 0} {
		if n := testutil.ToFloat64(h.metrics.firstboots.WithLabelValues(outcome)); n != want {
			t.Errorf("osim_httpboot_firstboot_reports_total{outcome=%q} = %v, want %v", outcome, n, want)
		}
	}
}

func TestFitTailKeepsWholeCharactersAtTheEnd(t *testing.T) {
	got := FitTail(strings.Repeat("é", 200), 11)
	if !utf8.ValidString(got) || len(got) > 11 || got != strings.Repeat("é", 5) {
		t.Errorf("FitTail = %q", got)
	}
}

func TestFirstBootRouteIsAbsentWithoutABackend(t *testing.T) {
	h, err := New(Config{Scripts: StaticScripts{}, Files: noFiles{}, Tokens: StaticTokens{}, Sink: &recordingSink{}})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/firstboot/o-1?procedure=a&exit_code=0", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("%d, want 404", w.Code)
	}
}

type noFiles struct{}

func (noFiles) Open(context.Context, string) (File, error) { return nil, ErrNotFound }
