package httpboot

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestScriptRouteAnswersEachTargetByMAC(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		code         int
		says         string
	}{
		{"colon MAC", "/ipxe/52:54:00:12:34:56", 200, "kernel http://10.0.0.1:8080/files/debian/12/vmlinuz initrd=initrd.gz initrd=site.cpio "},
		{"hyphen MAC from ${mac:hexhyp}", "/ipxe/52-54-00-12-34-56", 200, "\nboot\n"},
		{"raw MAC from ${mac:hexraw}", "/ipxe/525400123456?platform=efi", 200, "#!ipxe\n"},
		{"local disk under BIOS", "/ipxe/52:54:00:00:00:02?platform=pcbios", 200, "sanboot --no-describe --drive 0x80"},
		{"local disk under EFI", "/ipxe/52:54:00:00:00:02?platform=efi", 200, "\nexit\n"},
		{"unknown target", "/ipxe/52:54:00:00:00:09", 404, "unknown target: 52:54:00:00:00:09"},
		{"not a MAC", "/ipxe/not-a-mac", 400, `"not-a-mac" is not a MAC address`},
		{"EUI-64 is not Ethernet", "/ipxe/02:00:5e:10:00:00:00:01", 400, "not a 6-byte"},
		{"unknown platform", "/ipxe/52:54:00:12:34:56?platform=arm", 400, `platform "arm"`},
		{"decision with an unsafe parameter", "/ipxe/52:54:00:00:00:03", 500, "parameter bad"},
		{"POST is not allowed", "/ipxe/52:54:00:12:34:56", 405, ""},
		{"unknown route", "/nothing", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			method := "GET"
			if strings.HasPrefix(tc.name, "POST") {
				method = "POST"
			}
			w := f.do(method, tc.target, nil)
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.says) {
				t.Fatalf("code %d body %q, want %d containing %q", w.Code, w.Body.String(), tc.code, tc.says)
			}
			if tc.code == 200 && w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("a script may be cached: Cache-Control %q", w.Header().Get("Cache-Control"))
			}
			if tc.code == 500 && strings.Contains(w.Body.String(), "shell") && strings.Contains(w.Body.String(), "#!ipxe") {
				t.Errorf("an unsafe decision still produced a script")
			}
		})
	}
}

func TestMetricsCountRoutesCodesBytesAndRenders(t *testing.T) {
	f := newFixture(t)
	f.do("GET", "/ipxe/52:54:00:12:34:56", nil)
	f.do("GET", "/ipxe/52:54:00:00:00:02", nil)
	f.do("GET", "/ipxe/52:54:00:00:00:09", nil)
	f.do("GET", "/ipxe/52:54:00:00:00:03", nil)
	f.do("GET", "/ipxe/zz", nil)
	f.do("GET", "/files/vmlinuz", nil)
	f.do("GET", "/files/vmlinuz", nil, "Range", "bytes=0-99")
	f.do("GET", "/files/../secret", nil)
	f.do("POST", "/status/o-17", []byte(`{"phase":"done"}`), "Authorization", "Bearer tok123")
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"script", "200"}, 2},
		{[]string{"script", "404"}, 1},
		{[]string{"script", "500"}, 1},
		{[]string{"script", "400"}, 1},
		{[]string{"file", "200"}, 1},
		{[]string{"file", "206"}, 1},
		{[]string{"file", "403"}, 1},
		{[]string{"status", "204"}, 1},
	} {
		if got := testutil.ToFloat64(f.metrics.requests.WithLabelValues(c.labels...)); got != c.want {
			t.Errorf("requests_total%v = %v, want %v", c.labels, got, c.want)
		}
	}
	for outcome, want := range map[string]float64{"boot": 1, "local": 1, "unknown_target": 1, "invalid": 1, "bad_mac": 1} {
		if got := testutil.ToFloat64(f.metrics.renders.WithLabelValues(outcome)); got != want {
			t.Errorf("script_renders_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	fileBytes := testutil.ToFloat64(f.metrics.bytes.WithLabelValues("file"))
	if min := float64(len(f.kernel) + 100); fileBytes < min {
		t.Errorf("response_bytes_total{route=file} = %v, want at least %v", fileBytes, min)
	}
	if n := testutil.CollectAndCount(f.metrics.duration); n != 3 {
		t.Errorf("request_duration_seconds has %d series, want one per route (3)", n)
	}
	problems, err := testutil.GatherAndLint(f.reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", err, problems)
	}
	names, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range names {
		if !strings.HasPrefix(mf.GetName(), "osim_httpboot_") {
			t.Errorf("metric %s outside osim_httpboot_", mf.GetName())
		}
	}
}

func TestRequestLogLineAtDebugNamesPathCodeAndBytes(t *testing.T) {
	f := newFixture(t)
	f.do("GET", "/files/vmlinuz", nil, "Range", "bytes=0-9")
	logs := f.logs.String()
	for _, want := range []string{"level=DEBUG", "msg=request", "component=httpboot", "path=/files/vmlinuz", "code=206", "bytes=10", `range="bytes=0-9"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "Scripts, Files, Tokens, Sink") {
		t.Errorf("New(empty) err = %v, want it to name every missing seam", err)
	}
	base := Config{Scripts: StaticScripts{}, Files: &FolderFiles{}, Tokens: StaticTokens{}, Sink: &recordingSink{}}
	for _, bad := range []string{"10.0.0.1:8080", "ftp://h/", "http://h/${x}", "http://h/a\nb"} {
		c := base
		c.BaseURL = bad
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), "base URL") {
			t.Errorf("BaseURL %q: err = %v", bad, err)
		}
	}
}

type failingScripts struct{}

func (failingScripts) Script(context.Context, net.HardwareAddr) (Boot, error) {
	return Boot{}, errors.New("badger: closed")
}

type failingTokens struct{}

func (failingTokens) Token(context.Context, string) (string, error) {
	return "", errors.New("badger: closed")
}

func TestBackendFailuresAreServerErrorsNotRefusals(t *testing.T) {
	f := newFixture(t)
	f.h.scripts = failingScripts{}
	f.h.tokens = failingTokens{}
	if w := f.do("GET", "/ipxe/52:54:00:12:34:56", nil); w.Code != 500 || !strings.Contains(w.Body.String(), "badger: closed") {
		t.Errorf("script with a failing source: code %d body %q, want 500 with the cause", w.Code, w.Body.String())
	}
	if n := testutil.ToFloat64(f.metrics.renders.WithLabelValues("error")); n != 1 {
		t.Errorf("script_renders_total{outcome=error} = %v", n)
	}
	w := f.do("POST", "/status/o-17", []byte(`{"phase":"done"}`), "Authorization", "Bearer tok123")
	if w.Code != 503 || !strings.Contains(w.Body.String(), "token lookup") {
		t.Errorf("status with a failing token store: code %d body %q, want 503", w.Code, w.Body.String())
	}
	if n := testutil.ToFloat64(f.metrics.statusReports.WithLabelValues("backend_error")); n != 1 {
		t.Errorf("status_reports_total{phase=backend_error} = %v", n)
	}
	if len(f.sink.reports()) != 0 {
		t.Errorf("a report passed without its token checked")
	}
}
