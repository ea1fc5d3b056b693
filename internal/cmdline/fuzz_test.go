package cmdline

import (
	"strings"
	"testing"
	"time"
)

// FuzzCmdlineTemplate: whatever the template, Check and Render return
// within their time bound, never panic, and a render that succeeds is one
// line of at most MaxRenderedBytes made of plain iPXE arguments.
func FuzzCmdlineTemplate(f *testing.F) {
	for _, s := range []string{
		"console=ttyS0 osim.status={{.StatusURL}} osim.token={{.Token}}",
		"{{.StatusUrl}}", "{{.Nope", "x{{range 200000}}{{range 1000}}A{{end}}{{end}}",
		"{{range $k, $v := .Params}}{{$k}}={{$v}} {{end}}", `{{param "hostname"}}`,
		`{{define "a"}}{{template "a"}}{{end}}{{template "a"}}`, `{{printf "%0999999d" 1}}`,
		"{{with .Params}}{{.console}}{{end}}", "{{if eq .MAC \"x\"}}a{{else}}b{{end}}",
	} {
		f.Add(s)
	}
	defaults := map[string]string{"console": "ttyS0", "hostname": strings.Repeat("h", 200)}
	f.Fuzz(func(t *testing.T, text string) {
		start := time.Now()
		checkErr := Check(text, defaults)
		s, err := Render(text, Sample(defaults), 0)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%q: Check and Render took %v", text, d)
		}
		if err != nil {
			return
		}
		if checkErr != nil {
			t.Fatalf("%q: Check refused (%v) what Render accepts", text, checkErr)
		}
		if len(s) > MaxRenderedBytes || strings.ContainsAny(s, "\r\n") {
			t.Fatalf("%q rendered %d bytes: %q", text, len(s), s)
		}
		if err := SafeLine("line", s); err != nil {
			t.Fatalf("%q rendered an unsafe line: %v", text, err)
		}
	})
}
