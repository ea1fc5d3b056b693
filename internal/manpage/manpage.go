// Package manpage renders a command's help text as a man page (troff,
// man macros): the same text -h prints, so the two never disagree.
package manpage

import (
	"bytes"
	"fmt"
	"strings"
)

// Page is one man page.
type Page struct {
	Name    string // the command
	Summary string // one line: what it is
	Version string // the build (footer)
	// Sections are titled help texts, printed as they are (no fill):
	// the first is usually USAGE, the command's own -h text.
	Sections []Section
}

// Section is a titled part of the page.
type Section struct {
	Title string
	Text  string
}

// Render writes p as a section-1 man page.
func Render(p Page) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, ".TH %s 1 \"\" %q \"osim manual\"\n", strings.ToUpper(p.Name), "osim "+p.Version)
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", escape(p.Name), escape(p.Summary))
	for _, s := range p.Sections {
		fmt.Fprintf(&b, ".SH %s\n.nf\n", strings.ToUpper(s.Title))
		for _, l := range strings.Split(strings.TrimRight(s.Text, "\n"), "\n") {
			fmt.Fprintln(&b, escapeLine(l))
		}
		b.WriteString(".fi\n")
	}
	return b.Bytes()
}

// escape makes text safe inside a troff line: backslashes print as they
// are, and hyphens stay hyphens (flags must copy and paste).
func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r > 127: // troff reads bytes: a non-ASCII character by its name
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// escapeLine is escape, and a line that would start with a control
// character (. or ') is kept text; an empty line stays empty.
func escapeLine(l string) string {
	l = escape(l)
	if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
		l = `\&` + l
	}
	return l
}
