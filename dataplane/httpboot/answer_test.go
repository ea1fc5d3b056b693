package httpboot

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeAnswers answers a file naming the base it was given, or err.
type fakeAnswers struct{ err error }

func (a fakeAnswers) Answer(_ context.Context, order, base string) (string, []byte, error) {
	if a.err != nil {
		return "", nil, a.err
	}
	return "text/plain; charset=utf-8", []byte("d-i passwd/root-password-crypted password $6$SECRET\n# " + base + "/status/" + order + "\n"), nil
}

func TestTheAnswerIsServedToTheQueryTokenFromTheTargetOnlyAndNeverCached(t *testing.T) {
	f := newFixture(t)
	f.h.answers = fakeAnswers{}
	if w := f.doFrom("10.0.0.7:1000", "GET", "/ipxe/52:54:00:12:34:56", ""); w.Code != 200 {
		t.Fatalf("script: %d", w.Code) // binds o-17's token to 10.0.0.7
	}
	w := f.doFrom("10.0.0.7:2000", "GET", "/answer/o-17?token=tok123", "")
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" || !strings.Contains(w.Body.String(), "http://10.0.0.1:8080/status/o-17") {
		t.Fatalf("answer: %d %v %q", w.Code, w.Header(), w.Body.String())
	}
	for _, tc := range []struct {
		from, path string
		code       int
	}{
		{"10.0.0.7:2000", "/answer/o-17", 401},
		{"10.0.0.7:2000", "/answer/o-17?token=tok124", 403},
		{"10.0.0.66:2000", "/answer/o-17?token=tok123", 403},
		{"10.0.0.7:2000", "/answer/o-99?token=tok123", 404},
		{"10.0.0.7:2000", "/answer/o%2017?token=tok123", 400},
	} {
		if w := f.doFrom(tc.from, "GET", tc.path, ""); w.Code != tc.code || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s from %s: %d %q, want %d", tc.path, tc.from, w.Code, w.Body.String(), tc.code)
		}
	}
	if n := testutil.ToFloat64(f.metrics.answers.WithLabelValues("served")); n != 1 {
		t.Errorf("answers_total{outcome=served} = %v", n)
	}
	if n := testutil.ToFloat64(f.metrics.answers.WithLabelValues("refused")); n != 4 {
		t.Errorf("answers_total{outcome=refused} = %v, want 4", n)
	}
	if l := f.logs.String(); strings.Contains(l, "tok123") || strings.Contains(l, "tok124") || strings.Contains(l, "SECRET") {
		t.Errorf("a token or the answer's secret reached the log:\n%s", l)
	}
}

func TestAnswerBackendErrorsMapToCodes(t *testing.T) {
	for _, tc := range []struct {
		err     error
		code    int
		outcome string
	}{
		{fmt.Errorf("%w: a disk image", ErrNoAnswer), 409, "conflict"},
		{fmt.Errorf("%w: parameter \"mirror_host\" is not set", ErrBadAnswerInput), 422, "invalid"},
		{fmt.Errorf("%w: gone", ErrUnknownOrder), 404, "unknown_order"},
		{fmt.Errorf("template not staged"), 503, "error"},
	} {
		f := newFixture(t)
		f.h.answers = fakeAnswers{err: tc.err}
		w := f.do("GET", "/answer/o-17?token=tok123", nil)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.err.Error()) {
			t.Errorf("%v: %d %q, want %d with the reason", tc.err, w.Code, w.Body.String(), tc.code)
		}
		if n := testutil.ToFloat64(f.metrics.answers.WithLabelValues(tc.outcome)); n != 1 {
			t.Errorf("%v: answers_total{outcome=%s} = %v", tc.err, tc.outcome, n)
		}
	}
	f := newFixture(t) // no Answers: the route is off
	if w := f.do("GET", "/answer/o-17?token=tok123", nil); w.Code != 404 {
		t.Errorf("no Answers: %d, want 404", w.Code)
	}
}

func TestAnAnswerBootNamesItsURLWithAnAbsoluteBase(t *testing.T) {
	b := Boot{Kernel: "images/img-di/linux", Initrds: []string{"images/img-di/initrd.gz"},
		Cmdline: "auto=true priority=critical url={{.AnswerURL}} console=ttyS0", Order: "o-1", Token: "tok9", Answer: true}
	f := newFixture(t)
	h, err := New(Config{Scripts: StaticScripts{testMAC.String(): b}, Files: f.h.files, Tokens: StaticTokens{}, Sink: f.sink})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	w := f.do("GET", "/ipxe/"+testMAC.String(), nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), " url=http://example.com/answer/o-1?token=tok9 console=ttyS0") {
		t.Errorf("%d script %q, want the answer URL of the request's host", w.Code, w.Body.String())
	}
	b.Answer = false // no answer file: the field is empty
	if got, err := renderScript(b, testMAC, "http://10.0.0.1", "", 0); err != nil || strings.Contains(string(got), "/answer/") {
		t.Errorf("no answer file: %v %s", err, got)
	}
}
