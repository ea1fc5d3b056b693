package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"osim/internal/manpage"
)

// The bash completion, run by a real bash: nouns, verbs after a noun and
// after global flags with their values; zsh gets the same through
// bashcompinit.
func TestCompletionInBash(t *testing.T) {
	out, errOut, code := runCmd(t, "completion", "bash")
	if code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	script := filepath.Join(t.TempDir(), "osimctl.bash")
	if err := os.WriteFile(script, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	for words, want := range map[string]string{
		"osimctl tar":                          "targets",
		"osimctl targets up":                   "update",
		"osimctl --server x -o json orders ca": "cancel",
		"osimctl rollouts p":                   "pause",
		"osimctl completion z":                 "zsh",
		"osimctl orders --f":                   "",
		"osimctl --ca":                         "--ca-file",
	} {
		w := strings.Fields(words)
		cmd := exec.Command("bash", "-c", `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _osimctl; echo "${COMPREPLY[*]}"`, "bash", script)
		cmd.Args = append(cmd.Args, w...)
		got, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%q: %v %q, want %q", words, err, got, want)
		}
	}
	if out, _, code := runCmd(t, "completion", "zsh"); code != 0 || !strings.HasPrefix(out, "autoload -U +X bashcompinit") {
		t.Errorf("zsh: exit %d %q", code, out)
	}
	if _, _, code := runCmd(t, "completion", "fish"); code != 2 {
		t.Errorf("fish: exit %d, want 2", code)
	}
}

// osimctl man: the usage and every command's, as a man page groff
// formats without a warning.
func TestManPage(t *testing.T) {
	out, errOut, code := runCmd(t, "man")
	if code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	text := manpage.Check(t, []byte(out))
	for _, want := range []string{"usage: osimctl [global flags] COMMAND", "OSIMCTL ROLLOUTS", "usage: osimctl targets VERB"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}
