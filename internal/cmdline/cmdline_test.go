package cmdline

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCheckRefusesTemplatesThatWouldFailOrBlowUpEveryBoot(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       error
		says       string
	}{
		{"misspelt field", "osim.status={{.StatusUrl}}", ErrTemplate, "field .StatusUrl does not exist"},
		{"unknown field in a branch never taken", "{{if false}}{{.Nope}}{{end}}", ErrTemplate, "field .Nope does not exist"},
		{"field of a string", "{{.MAC.Vendor}}", ErrTemplate, `has no field "Vendor"`},
		{"unknown field through $", "{{with .Params}}{{$.Nope}}{{end}}", ErrTemplate, "field .Nope does not exist"},
		{"syntax error", "console={{.Nope", ErrTemplate, "unclosed action"},
		{"range over integers", "x{{range 200000}}{{range 1000}}A{{end}}{{end}}", ErrTemplate, "range over 200000"},
		{"range over a string", `{{range .MAC}}A{{end}}`, ErrTemplate, "only {{range .Params}}"},
		{"nested range over params", "{{range .Params}}{{range $.Params}}A{{end}}{{end}}", ErrTemplate, "nested range"},
		{"define", `{{define "a"}}A{{end}}{{template "a"}}`, ErrTemplate, "define"},
		{"block", `{{block "a" .}}A{{end}}`, ErrTemplate, "define"},
		{"printf width bomb", `{{printf "%0999999d" 1}}`, ErrTemplate, `function "printf" is not allowed`},
		{"slice", `{{slice .MAC 0 2}}`, ErrTemplate, `function "slice" is not allowed`},
		{"unknown function", `{{nope}}`, ErrTemplate, `function "nope" not defined`},
		{"rendered over the limit", strings.Repeat("{{.Token}} ", 200), ErrTooLarge, "over 4096 bytes"},
		{"template over the limit", strings.Repeat("{{/* c */}}", 500), ErrTooLarge, "at most 4096"},
		{"unsafe text", "a{{.MAC}}${x}", ErrUnsafeValue, `byte '$'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.text, nil)
			if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.says) {
				t.Fatalf("Check(%q) = %v, want %v saying %q", tc.text, err, tc.want, tc.says)
			}
		})
	}
}

func TestCheckAcceptsTheDocumentedFields(t *testing.T) {
	for _, text := range []string{
		"",
		"console=ttyS0 osim.mac={{.MAC}} osim.order={{.Order}} osim.token={{.Token}} osim.status={{.StatusURL}} base={{.BaseURL}}",
		"{{.Params.console}} {{param \"hostname\"}}",
		"{{range $k, $v := .Params}}{{$k}}={{$v}} {{end}}",
		"{{with .Params.disk}}root={{.}}{{end}} {{if eq (len .Params) 2}}two{{else}}more{{end}}",
		"{{index .Params \"console\"}} {{$.Params.console}}",
	} {
		if err := Check(text, map[string]string{"console": "ttyS0", "disk": "sda"}); err != nil {
			t.Errorf("Check(%q): %v", text, err)
		}
	}
}

func TestCheckRefusesAnUnsafeDefault(t *testing.T) {
	err := Check("{{.Params.x}}", map[string]string{"x": "a b"})
	if !errors.Is(err, ErrUnsafeValue) || !strings.Contains(err.Error(), "parameter x") {
		t.Fatalf("err %v", err)
	}
}

func TestRenderStopsAtTheSizeLimitWithoutBuildingTheWholeOutput(t *testing.T) {
	// 60 parameters of 200 bytes printed through one range: 12,000 bytes
	// if nothing stopped it.
	params := map[string]string{}
	for i := range 60 {
		params[fmt.Sprintf("p%02d", i)] = strings.Repeat("a", 200)
	}
	_, err := Render("{{range .Params}}{{.}} {{end}}", Data{Params: params}, 0)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
}

func TestRenderGivesUpAtItsTimeout(t *testing.T) {
	params := make(map[string]string, 300000)
	for i := range 300000 {
		params[fmt.Sprintf("p%d", i)] = "v"
	}
	start := time.Now()
	_, err := Render("{{range .Params}}{{end}}{{range .Params}}{{end}}{{range .Params}}{{end}}", Data{Params: params}, time.Millisecond)
	if !errors.Is(err, ErrTooSlow) {
		t.Fatalf("err %v, want ErrTooSlow", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("returned after %v", d)
	}
}

func TestRenderFailsOnAMissingParamButCheckDoesNot(t *testing.T) {
	if _, err := Render(`{{param "hostname"}}`, Data{}, 0); err == nil || !strings.Contains(err.Error(), `parameter "hostname" is not set`) {
		t.Fatalf("Render: %v", err)
	}
	if err := Check(`{{param "hostname"}}`, nil); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestInstallArgsNameEveryKeyAndRefuseARelativeBase(t *testing.T) {
	got, err := InstallArgs("http://10.0.0.1:8080/", "o-1", "tok", "52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"osim.mode=install", "osim.url=http://10.0.0.1:8080 ", "osim.order=o-1", "osim.token=tok", "osim.mac=52:54:00:00:00:01"} {
		if !strings.Contains(got+" ", want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	for _, base := range []string{"", "/boot", "http://0.0.0.0:8080", "http://[::]:8080", "ftp://x"} {
		if _, err := InstallArgs(base, "o-1", "tok", "m"); !errors.Is(err, ErrUnsafeValue) {
			t.Errorf("base %q: %v, want ErrUnsafeValue", base, err)
		}
	}
	if _, err := InstallArgs("http://a", "o-1", "t ok", "m"); !errors.Is(err, ErrUnsafeValue) {
		t.Errorf("token with a space: %v", err)
	}
}

func TestTheAnswerURLWithItsQueryIsOnePlainArgument(t *testing.T) {
	const text = "auto=true priority=critical url={{.AnswerURL}} console=ttyS0"
	if err := Check(text, nil); err != nil {
		t.Fatal(err)
	}
	d := Sample(nil)
	d.AnswerURL = "http://10.77.0.1:8080/answer/o-1?token=0f0f"
	got, err := Render(text, d, 0)
	if err != nil || got != "auto=true priority=critical url=http://10.77.0.1:8080/answer/o-1?token=0f0f console=ttyS0" {
		t.Fatalf("%q %v", got, err)
	}
	d.AnswerURL += " injected=1"
	if _, err := Render(text, d, 0); !errors.Is(err, ErrUnsafeValue) {
		t.Fatalf("an answer URL with a space: %v", err)
	}
}

func TestOnlyParametersTheTemplateCanPrintAreChecked(t *testing.T) {
	// An installer image's answer-file parameter (a crypt hash) never
	// reaches the command line: it does not fail the render.
	params := map[string]string{"root_password_hash": "$6$salt$hash", "console": "ttyS0"}
	if err := Check("console={{.Params.console}} url={{.AnswerURL}}", params); err != nil {
		t.Fatalf("an unprinted parameter failed the check: %v", err)
	}
	for _, text := range []string{
		"x={{.Params.root_password_hash}}",
		`x={{param "root_password_hash"}}`,
		`{{index .Params "root_password_hash"}}`,
		"{{range .Params}}{{.}}{{end}}",
		"{{with $}}{{.Params.root_password_hash}}{{end}}",
		"{{$p := .Params}}{{$p.root_password_hash}}",
		`{{with .Params}}{{.root_password_hash}}{{end}}`,
	} {
		if err := Check(text, params); !errors.Is(err, ErrUnsafeValue) {
			t.Errorf("%s: %v, want ErrUnsafeValue", text, err)
		}
	}
}

// Ubuntu's autoinstall (cloud-init's NoCloud seed) is named on the command
// line as "ds=nocloud;s=URL": a ";" inside a word is one iPXE argument, a
// lone ";" would start another command.
func TestASemicolonInsideAWordPassesButALoneOneDoesNot(t *testing.T) {
	const text = "autoinstall ds=nocloud;s={{.AnswerURL}}&part= x={{.Params.p}}"
	d := Sample(map[string]string{"p": "a;b"})
	d.AnswerURL = "http://10.77.0.1:8080/answer/o-1?token=0f0f"
	got, err := Render(text, d, 0)
	if err != nil || got != "autoinstall ds=nocloud;s=http://10.77.0.1:8080/answer/o-1?token=0f0f&part= x=a;b" {
		t.Fatalf("%q %v", got, err)
	}
	for _, c := range []struct{ text, p string }{
		{"x {{.Params.p}} reboot", ";"},
		{"x ; reboot", ""},
		{"x={{.Params.p}}", ";"},
	} {
		d.Params = map[string]string{"p": c.p}
		if _, err := Render(c.text, d, 0); !errors.Is(err, ErrUnsafeValue) {
			t.Errorf("%q with p=%q: %v, want ErrUnsafeValue", c.text, c.p, err)
		}
	}
}
