package manpage

import (
	"strings"
	"testing"
)

// What troff would eat (a leading dot or quote, backslashes, hyphens)
// comes out as written.
func TestRenderKeepsTheHelpTextAsWritten(t *testing.T) {
	help := "usage: osimctl targets list [--selector SEL]\n\n.hidden line\n'quoted line\nC:\\path a-b --flag\nalso \"orders rollout …\"\n"
	text := Check(t, Render(Page{Name: "osimctl", Summary: "drive the osim manager", Version: "v1",
		Sections: []Section{{Title: "usage", Text: help}}}))
	for _, want := range []string{"osimctl - drive the osim manager", "usage: osimctl targets list [--selector SEL]",
		".hidden line", "'quoted line", `C:\path a-b --flag`, `also "orders rollout …"`} {
		if !strings.Contains(strings.ReplaceAll(text, "‐", "-"), want) {
			t.Errorf("page lacks %q:\n%s", want, text)
		}
	}
}
