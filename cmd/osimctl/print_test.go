package main

import (
	"strings"
	"testing"

	"osim/controlplane/api"
)

func TestPrintableEscapesWhatATerminalWouldActOn(t *testing.T) {
	for in, want := range map[string]string{
		"partitioning 40 %":         "partitioning 40 %",
		"écrit — ok":                "écrit — ok",
		"\x1b[2Jowned":              `\x1b[2Jowned`,
		"line\r\nforged":            `line\r\nforged`,
		"tab\there":                 `tab\there`,
		"csi\u009b2J":               `csi\u009b2J`,
		"bad \xff byte":             `bad \xff byte`,
		"bell\a del\x7f":            `bell\a del\x7f`,
		"bidi \u202eevil\u202c end": `bidi \u202eevil\u202c end`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEventsTailPrintsInstallerMessagesEscaped: the audit's message
// (clear screen, then a forged line) reaches the terminal as text.
func TestEventsTailPrintsInstallerMessagesEscaped(t *testing.T) {
	clearEnv(t)
	f, url := newFake(t)
	f.events = []api.Event{{Seq: 1, Type: api.EventInstallStatus, Order: "o-1", Phase: "failed",
		Message: "\x1b[2J\r\n2       2026-01-01 00:00:00 order.state     o-1 done", Data: map[string]string{"client": "10.0.0.7:1\x1b]0;x\a"}}}
	out, errOut, code := runCmd(t, "--server", url, "events", "tail")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.ContainsAny(out, "\x1b\r\a") || strings.Count(out, "\n") != 2 {
		t.Fatalf("control characters or a forged line reached the terminal:\n%q", out)
	}
	if !strings.Contains(out, `\x1b[2J\r\n2`) || !strings.Contains(out, `\x1b]0;x\a`) {
		t.Fatalf("escapes not shown:\n%s", out)
	}
}

func TestTablesPrintUntrustedCellsEscaped(t *testing.T) {
	var o strings.Builder
	a := &app{stdout: &o}
	a.table([]string{"ID", "HOSTNAME"}, [][]string{{"t-1", "node\x1b[31m1\nforged\trow"}})
	a.fields([][2]string{{"message", "a\rb"}})
	out := o.String()
	if strings.ContainsAny(out, "\x1b\r") || strings.Count(out, "\n") != 3 {
		t.Fatalf("%q", out)
	}
}
