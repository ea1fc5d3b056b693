package installer

import (
	"testing"

	"osim/controlplane/api"
)

func TestScrubSecretsMasksSecretValuesInProcedureOutput(t *testing.T) {
	plan := api.InstallPlan{Params: map[string]string{"pw": "hunter2", "lang": "en", "empty": ""}, SecretParams: []string{"pw", "empty", "gone"}}
	got := scrubSecrets("set password hunter2 for en; again hunter2\n", plan)
	if want := "set password (secret) for en; again (secret)\n"; got != want {
		t.Errorf("scrubSecrets = %q, want %q", got, want)
	}
}
