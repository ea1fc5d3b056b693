package answer

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// orderData is an order's data with the parameters a full install needs;
// the hash has a "$" and the host name a quote, to prove the quoting.
func orderData() Data {
	d := Sample(nil)
	d.Hostname = "web-07"
	d.Params = map[string]string{
		"root_password_hash": "$6$salt$abcdefgh/ijkl.",
		"password_hash":      "$6$salt$abcdefgh/ijkl.",
		"mirror_host":        "10.0.0.1:8080",
		"repo_url":           "http://10.0.0.1:8080/rhel/9",
		"locale":             "de_CH.UTF-8",
	}
	return d
}

func example(t *testing.T, flavor string) string {
	t.Helper()
	text, err := Example(flavor)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

func TestEveryExampleTemplatePassesCheck(t *testing.T) {
	for _, f := range Flavors {
		if err := Check(f, example(t, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestThePreseedParsesAsDebconfLinesWithTheOrdersValues(t *testing.T) {
	d := orderData()
	body, err := Render(Preseed, example(t, Preseed), d)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := ParsePreseed(body)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]PreseedLine{}
	for _, l := range lines {
		if l.Owner != "d-i" && l.Owner != "tasksel" && l.Owner != "popularity-contest" {
			t.Errorf("line %d: owner %q", l.Line, l.Owner)
		}
		got[l.Question] = l
	}
	for q, want := range map[string]string{
		"netcfg/get_hostname":          d.Hostname,
		"netcfg/hostname":              d.Hostname,
		"mirror/http/hostname":         d.Params["mirror_host"],
		"passwd/root-password-crypted": d.Params["root_password_hash"],
		"debian-installer/locale":      "de_CH.UTF-8",
		"time/zone":                    "UTC", // the template's default
		"mirror/http/directory":        "/debian",
	} {
		if got[q].Value != want {
			t.Errorf("%s = %q, want %q", q, got[q].Value, want)
		}
	}
	for _, q := range []string{"preseed/early_command", "preseed/late_command"} {
		cmd := got[q].Value
		if !strings.HasPrefix(cmd, "wget ") || !strings.Contains(cmd, "'--header=Authorization: Bearer "+d.Token+"'") ||
			!strings.HasSuffix(cmd, " "+d.StatusURL) || !strings.Contains(cmd, "--post-data=") {
			t.Errorf("%s does not post to the status URL with the token: %s", q, cmd)
		}
	}
	if !strings.Contains(got["preseed/late_command"].Value, `"phase":"done"`) {
		t.Errorf("the last step does not report done: %s", got["preseed/late_command"].Value)
	}
}

func TestAPreseedValueCannotAddALine(t *testing.T) {
	for _, host := range []string{"web\nd-i passwd/root-password string x", "web\\", " web", "web\x1b[2J"} {
		d := orderData()
		d.Hostname = host
		_, err := Render(Preseed, example(t, Preseed), d)
		if !errors.Is(err, ErrValue) {
			t.Errorf("host %q: %v, want ErrValue", host, err)
		}
		if err != nil && strings.Contains(err.Error(), host) {
			t.Errorf("the error quotes the value: %v", err)
		}
	}
}

func TestTheAutoinstallIsYAMLWhoseLateCommandPostsDone(t *testing.T) {
	d := orderData()
	d.Hostname = "a: b\n  injected: true" // a YAML-looking value stays one string
	body, err := Render(Autoinstall, example(t, Autoinstall), d)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Autoinstall struct {
			Version  int `yaml:"version"`
			Identity struct {
				Hostname string `yaml:"hostname"`
				Password string `yaml:"password"`
			} `yaml:"identity"`
			EarlyCommands []string `yaml:"early-commands"`
			LateCommands  []string `yaml:"late-commands"`
		} `yaml:"autoinstall"`
	}
	if err := yaml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, body)
	}
	ai := doc.Autoinstall
	if ai.Version != 1 || ai.Identity.Hostname != d.Hostname || ai.Identity.Password != d.Params["password_hash"] {
		t.Errorf("autoinstall %+v", ai)
	}
	if len(ai.LateCommands) == 0 {
		t.Fatal("no late-commands")
	}
	last := ai.LateCommands[len(ai.LateCommands)-1]
	for _, want := range []string{"curl ", "'Authorization: Bearer " + d.Token + "'", `"phase":"done"`, d.StatusURL} {
		if !strings.Contains(last, want) {
			t.Errorf("last late-command %q lacks %q", last, want)
		}
	}
}

func TestTheKickstartReportsDoneFromPostOutsideTheChroot(t *testing.T) {
	d := orderData()
	d.Hostname = `web "07"`
	body, err := Render(Kickstart, example(t, Kickstart), d)
	if err != nil {
		t.Fatal(err)
	}
	s := string(body)
	post := regexp.MustCompile(`(?s)%post --nochroot\n(.*?)\n%end`).FindStringSubmatch(s)
	if post == nil {
		t.Fatalf("no %%post --nochroot section:\n%s", s)
	}
	if !strings.Contains(post[1], "curl ") || !strings.Contains(post[1], d.StatusURL) || !strings.Contains(post[1], `"phase":"done"`) {
		t.Errorf("%%post does not post done: %s", post[1])
	}
	if !strings.Contains(s, `--hostname="web \"07\""`) {
		t.Errorf("host name not quoted for shlex:\n%s", s)
	}
	if !strings.Contains(s, `rootpw --iscrypted "`+d.Params["root_password_hash"]+`"`) {
		t.Errorf("root password hash not rendered")
	}
}

func TestAMissingRequiredParameterFailsTheRenderByName(t *testing.T) {
	d := orderData()
	delete(d.Params, "mirror_host")
	_, err := Render(Preseed, example(t, Preseed), d)
	if err == nil || !strings.Contains(err.Error(), `parameter "mirror_host" is not set`) {
		t.Fatalf("got %v", err)
	}
}

func TestCheckRefusesABrokenTemplateNamingItsLine(t *testing.T) {
	for _, c := range []struct {
		flavor, text, says string
	}{
		{Preseed, "d-i a/b string x\nd-i c/d string {{.Hostname\n", "unclosed action started at preseed:2"},
		{Preseed, "d-i a/b string {{.Nope}}\n", "preseed:1:"},
		{Preseed, "d-i a/b string {{preseed .Params.x}}\nd-i c/d strnig {{.StatusURL}}\n", `rendered line 2: type "strnig"`},
		{Preseed, "d-i a/b\n", "rendered line 1"},
		{Preseed, "d-i a/b string x\n", "never reports to the status URL"},
		{Kickstart, "text\n%post\n{{statusCurl \"done\" \"x\"}}\n", "%post has no %end"},
		{Kickstart, "text\n%post\n{{statusCurl \"finished\" \"x\"}}\n%end\n", `phase "finished"`},
		{Kickstart, "{{if}}\n", "kickstart:1:"},
		{Autoinstall, "autoinstall:\n  version: 1\n   x: {{yaml .StatusURL}}\n", "not YAML"},
		{Autoinstall, "version: 1\nurl: {{yaml .StatusURL}}\n", "no autoinstall"},
		{"jumpstart", "x", "unknown answer-file flavor"},
	} {
		err := Check(c.flavor, c.text)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s %q: %v, want %q", c.flavor, c.text, err, c.says)
		}
	}
}

func TestShellWordsSurviveQuotes(t *testing.T) {
	got, err := shWord(`it's "$HOME"`)
	if err != nil || got != `'it'\''s "$HOME"'` {
		t.Fatalf("%s %v", got, err)
	}
}

func TestARenderIsBounded(t *testing.T) {
	big := strings.Repeat("x", MaxRenderedBytes/4)
	text := "d-i a/b string {{.Params.v}}{{.Params.v}}{{.Params.v}}{{.Params.v}}{{.Params.v}}\n{{.StatusURL}}"
	if err := CheckWith(Preseed, text, map[string]string{"v": big}); err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("a render over %d bytes: %v", MaxRenderedBytes, err)
	}
	if err := Check(Preseed, strings.Repeat("#", MaxTemplateBytes+1)); err == nil {
		t.Fatal("a template over the limit passed")
	}
}
