package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"osim/internal/testlab"
	"osim/ips/answer"
)

// cloudInitDir is where .ci/run unpacks Debian's cloud-init package
// (apt-get download + dpkg-deb -x: the package itself is not installed, so
// its units never run on the CI machine). OSIM_CLOUDINIT_DIR overrides it.
const cloudInitDir = "/opt/osim-test/cloud-init"

// cloudInitSeed is the real cloud-init's NoCloud datasource, as Ubuntu's
// installer runs it: load_cmdline_data parses "ds=nocloud;s=URL" from the
// kernel command line and read_seeded fetches URL+"meta-data",
// URL+"user-data" and URL+"vendor-data".
const cloudInitSeed = `
import json, sys
from cloudinit import util
from cloudinit.sources import DataSourceNoCloud as nc
fill = {}
if not nc.load_cmdline_data(fill, sys.argv[1]):
    sys.exit("cloud-init found no ds=nocloud on the command line")
md, ud, vd = util.read_seeded(fill["seedfrom"], timeout=5, retries=0)
print(json.dumps({"seedfrom": fill["seedfrom"], "md": md,
    "ud": ud.decode() if ud is not None else None,
    "vd": vd.decode() if vd is not None else None}))
`

// needCloudInit returns the PYTHONPATH of cloud-init's modules, or skips
// (fails in CI) when they or Debian's python3 modules they need are absent.
func needCloudInit(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("OSIM_CLOUDINIT_DIR")
	if dir == "" {
		dir = cloudInitDir
	}
	py := filepath.Join(dir, "usr/lib/python3/dist-packages")
	err := exec.Command("/usr/bin/python3", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import cloudinit.sources.DataSourceNoCloud", py).Run()
	if err != nil {
		msg := "cloud-init's NoCloud datasource is not importable from " + py + " (.ci/run unpacks Debian's cloud-init there and installs python3-requests, python3-yaml and the rest): " + err.Error()
		testlab.Unavailable(t, "%s", msg)
	}
	return py
}

// TestCloudInitReadsTheAutoinstallSeedTheBootScriptNamesFromTheBootServer runs the real
// cloud-init (Debian 12's 22.4, its NoCloud datasource) on the kernel
// command line of the boot script an autoinstall order gets, against the
// boot server's answer route: cloud-init finds the seed URL, fetches its
// meta-data (the order as instance id) and user-data (the order's rendered
// autoinstall). Subiquity itself was not run here (no Ubuntu media).
func TestCloudInitReadsTheAutoinstallSeedTheBootScriptNamesFromTheBootServer(t *testing.T) {
	py := needCloudInit(t)
	e := newEnv(t, nil)
	e.register()
	e.installerWorld("127.0.0.1", answer.Autoinstall, "autoinstall ds=nocloud;s={{.AnswerURL}}&part= console=ttyS0",
		map[string]string{"password_hash": secretHash})
	e.sync()
	e.stagePass(map[string]string{})
	var logs lockedLog
	srv := e.answerServer(&logs)

	code, script := get(t, srv.URL+"/ipxe/52:54:00:00:00:d1", "")
	kernel := regexp.MustCompile(`(?m)^kernel \S+ (.*)$`).FindSubmatch(script)
	if code != 200 || kernel == nil {
		t.Fatalf("script %d has no kernel line:\n%s", code, script)
	}
	cmdline := string(kernel[1])
	if !strings.Contains(cmdline, " ds=nocloud;s="+srv.URL+"/answer/o-di?token=tok-o-di&part= ") {
		t.Fatalf("kernel line %q lacks the seed URL", cmdline)
	}
	cmd := exec.Command("/usr/bin/python3", "-c", cloudInitSeed, cmdline)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+py)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("cloud-init: %v\n%s", err, stderr)
	}
	var got struct {
		Seedfrom string         `json:"seedfrom"`
		MD       map[string]any `json:"md"`
		UD, VD   *string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.MD["instance-id"] != "o-di" {
		t.Errorf("meta-data %v, want instance-id o-di", got.MD)
	}
	if got.VD == nil || *got.VD != "" {
		t.Errorf("vendor-data %v, want empty", got.VD)
	}
	if got.UD == nil || !strings.HasPrefix(*got.UD, "#cloud-config\n") {
		t.Fatalf("user-data is not cloud-config: %v", got.UD)
	}
	var ud struct {
		Autoinstall struct {
			Version  int `yaml:"version"`
			Locale   string
			Identity struct{ Hostname, Password string }
		} `yaml:"autoinstall"`
	}
	if err := yaml.Unmarshal([]byte(*got.UD), &ud); err != nil {
		t.Fatal(err)
	}
	ai := ud.Autoinstall
	if ai.Version != 1 || ai.Locale != "fr_FR.UTF-8" || ai.Identity.Hostname != "db-03" || ai.Identity.Password != secretHash {
		t.Errorf("autoinstall %+v", ai)
	}
	if l := logs.String(); strings.Contains(l, "tok-o-di") || strings.Contains(l, "SECRET") ||
		strings.Count(l, "msg=answer ") != 3 {
		t.Errorf("want three answer lines (meta-data, user-data, vendor-data) and no token or secret:\n%s", l)
	}
	// A part cloud-init does not read is refused before the token is looked at.
	if code, body := get(t, srv.URL+"/answer/o-di?token=tok-o-di&part=network-config", ""); code != 404 {
		t.Errorf("part=network-config: %d %s, want 404", code, body)
	}
}
