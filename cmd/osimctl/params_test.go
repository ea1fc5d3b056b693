package main

import (
	"strings"
	"testing"

	"osim/controlplane/api"
)

// TestOrderShowNeverPrintsASecretParameter: even from a manager that
// answered it unmasked, osimctl masks the order's secret parameters, in
// the table and in --json.
func TestOrderShowNeverPrintsASecretParameter(t *testing.T) {
	clearEnv(t)
	f, url := newFake(t)
	f.orders["o-1"] = api.Order{ID: "o-1", Target: "t-1", State: api.OrderPending,
		Params: map[string]string{"root_password": "hunter2", "lang": "en"}, SecretParams: []string{"root_password"}}
	for _, args := range [][]string{{"orders", "show", "o-1"}, {"-o", "json", "orders", "show", "o-1"}} {
		out, errOut, code := runCmd(t, append([]string{"--server", url}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		if strings.Contains(out, "hunter2") || !strings.Contains(out, api.SecretMask) || !strings.Contains(out, "en") {
			t.Errorf("%v printed:\n%s", args, out)
		}
	}
}

func TestFormatParamsSummarisesEachParameter(t *testing.T) {
	got := formatParams(api.RedactImage(api.Image{Parameters: []api.Parameter{{Name: "cpus", Type: api.ParamInt, Default: "2"},
		{Name: "host", Required: true}, {Name: "pw", Secret: true, Default: "x"}}}).Parameters)
	if want := "cpus int=2, host required, pw secret=(secret)"; got != want {
		t.Errorf("formatParams = %q, want %q", got, want)
	}
}
