package answer

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// validators check a rendered file is an answer file of its flavor;
// errors name the rendered line.
var validators = map[string]func([]byte) error{
	Preseed:     checkPreseed,
	Kickstart:   checkKickstart,
	Autoinstall: checkAutoinstall,
}

// preseedTypes are debconf's question types.
var preseedTypes = []string{"string", "boolean", "select", "multiselect", "note", "text", "password", "error", "title"}

// PreseedLine is one "owner question type value" line of a preseed file.
type PreseedLine struct {
	Line                  int // first rendered line it is on
	Owner, Question, Type string
	Value                 string
}

// ParsePreseed splits a preseed file as debconf-set-selections reads it:
// blank lines and "#" comments skipped, a trailing backslash joins the
// next line, every other line "owner question type [value]".
func ParsePreseed(body []byte) ([]PreseedLine, error) {
	if err := checkText(string(body), true); err != nil {
		return nil, err
	}
	var out []PreseedLine
	lines := strings.Split(string(body), "\n")
	for i := 0; i < len(lines); i++ {
		n, l := i+1, lines[i]
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + lines[i]
		}
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		f := strings.Fields(t)
		if len(f) < 3 {
			return nil, fmt.Errorf("rendered line %d: want \"owner question type value\", got %d fields", n, len(f))
		}
		if !slices.Contains(preseedTypes, f[2]) {
			return nil, fmt.Errorf("rendered line %d: type %q of %s is not a debconf type (%s)", n, f[2], f[1], strings.Join(preseedTypes, ", "))
		}
		p := PreseedLine{Line: n, Owner: f[0], Question: f[1], Type: f[2]}
		if len(f) > 3 {
			// The value is the rest of the line after the third field.
			rest := t
			for _, x := range f[:3] {
				rest = strings.TrimLeft(strings.TrimPrefix(strings.TrimLeft(rest, " \t"), x), " \t")
			}
			p.Value = rest
		}
		out = append(out, p)
	}
	return out, nil
}

func checkPreseed(body []byte) error {
	_, err := ParsePreseed(body)
	return err
}

// checkKickstart: text without control characters whose %-sections
// (%pre, %post, %packages, %onerror, %traceback, %addon) each end with
// %end before the next begins.
func checkKickstart(body []byte) error {
	if err := checkText(string(body), true); err != nil {
		return err
	}
	open, at := "", 0
	for i, l := range strings.Split(string(body), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasPrefix(f[0], "%") {
			continue
		}
		switch f[0] {
		case "%end":
			if open == "" {
				return fmt.Errorf("rendered line %d: %%end without a section", i+1)
			}
			open = ""
		case "%include", "%ksappend":
		default:
			if open != "" {
				return fmt.Errorf("rendered line %d: %s begins before %s of line %d has its %%end", i+1, f[0], open, at)
			}
			open, at = f[0], i+1
		}
	}
	if open != "" {
		return fmt.Errorf("rendered line %d: %s has no %%end", at, open)
	}
	return nil
}

// checkAutoinstall: YAML whose top level is a map with an autoinstall
// map (cloud-init user-data for subiquity); version 1 when given.
func checkAutoinstall(body []byte) error {
	var doc map[string]any
	if err := yaml.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	ai, ok := doc["autoinstall"].(map[string]any)
	if !ok {
		return fmt.Errorf("no autoinstall: map at the top level")
	}
	if v, ok := ai["version"]; ok && v != 1 {
		return fmt.Errorf("autoinstall.version: %v, want 1", v)
	}
	return nil
}
