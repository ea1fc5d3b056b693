package manager

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"osim/internal/testlab"
)

// redoclyBin is where scripts/packages.sh installs redocly (@redocly/cli,
// the version pinned there).
const redoclyBin = "/opt/osim-test/redocly/node_modules/.bin/redocly"

// redoclyLint is the part of `redocly lint --format=json` the test reads.
type redoclyLint struct {
	Totals struct {
		Errors   int `json:"errors"`
		Warnings int `json:"warnings"`
		Ignored  int `json:"ignored"`
	} `json:"totals"`
	Problems []struct {
		RuleID   string `json:"ruleId"`
		Severity string `json:"severity"`
		Message  string `json:"message"`
		Location []struct {
			Pointer string `json:"pointer"`
		} `json:"location"`
	} `json:"problems"`
}

// TestOpenAPIDocPassesRedoclyLint runs redocly's recommended ruleset
// (redocly.yaml) on openapi.json: no error and no warning. The places
// where a rule does not apply are in .redocly.lint-ignore.yaml, each
// with its reason.
func TestOpenAPIDocPassesRedoclyLint(t *testing.T) {
	if _, err := os.Stat(redoclyBin); err != nil {
		msg := "redocly is not installed at " + redoclyBin + " (scripts/packages.sh installs it): " + err.Error()
		testlab.Unavailable(t, "%s", msg)
	}
	cmd := exec.Command(redoclyBin, "lint", "--config", "redocly.yaml", "--format", "json")
	// No usage report and no update check: the machine has no network
	// but the package registries.
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run() // exits 1 on an error; the JSON says more
	var res redoclyLint
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("redocly lint: %v; output is not its JSON report (%v):\n%s\n%s", runErr, err, stdout.Bytes(), stderr.Bytes())
	}
	for _, p := range res.Problems {
		where := ""
		if len(p.Location) > 0 {
			where = p.Location[0].Pointer
		}
		t.Errorf("openapi.json %s: %s %s: %s", where, p.Severity, p.RuleID, p.Message)
	}
	if res.Totals.Errors != 0 || res.Totals.Warnings != 0 {
		t.Fatalf("redocly lint: %d errors, %d warnings, want none", res.Totals.Errors, res.Totals.Warnings)
	}
	if runErr != nil {
		t.Fatalf("redocly lint: %v with no problem reported:\n%s", runErr, stderr.Bytes())
	}
	t.Logf("redocly lint: no errors, no warnings (%d ignored by .redocly.lint-ignore.yaml)", res.Totals.Ignored)
}
