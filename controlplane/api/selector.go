package api

import (
	"fmt"
	"strings"
)

// Selector matches targets by their labels, written like Kubernetes
// equality selectors: comma-separated requirements, all of which must hold.
//
//	rack=r12        label rack equals r12 (== works too)
//	env!=prod       label env is absent or differs from prod
//	gpu             label gpu exists
//	!gpu            label gpu does not exist
//
// The empty selector matches everything.
type Selector struct {
	reqs []requirement
	text string
}

type requirement struct {
	key, value string
	op         string // "=", "!=", "exists", "!exists"
}

// ParseSelector reads a selector; the error names the requirement at fault.
func ParseSelector(s string) (Selector, error) {
	sel := Selector{text: strings.TrimSpace(s)}
	if sel.text == "" {
		return sel, nil
	}
	for i, part := range strings.Split(sel.text, ",") {
		part = strings.TrimSpace(part)
		var r requirement
		switch {
		case part == "":
			return Selector{}, fmt.Errorf("selector: requirement %d is empty", i+1)
		case strings.Contains(part, "!="):
			k, v, _ := strings.Cut(part, "!=")
			r = requirement{key: strings.TrimSpace(k), value: strings.TrimSpace(v), op: "!="}
		case strings.Contains(part, "=="):
			k, v, _ := strings.Cut(part, "==")
			r = requirement{key: strings.TrimSpace(k), value: strings.TrimSpace(v), op: "="}
		case strings.Contains(part, "="):
			k, v, _ := strings.Cut(part, "=")
			r = requirement{key: strings.TrimSpace(k), value: strings.TrimSpace(v), op: "="}
		case strings.HasPrefix(part, "!"):
			r = requirement{key: strings.TrimSpace(part[1:]), op: "!exists"}
		default:
			r = requirement{key: part, op: "exists"}
		}
		if !ValidName(r.key) {
			return Selector{}, fmt.Errorf("selector: %q: label key %q is not valid", part, r.key)
		}
		if (r.op == "=" || r.op == "!=") && r.value != "" && !ValidName(r.value) {
			return Selector{}, fmt.Errorf("selector: %q: label value %q is not valid", part, r.value)
		}
		sel.reqs = append(sel.reqs, r)
	}
	return sel, nil
}

// Empty reports whether the selector matches everything.
func (s Selector) Empty() bool { return len(s.reqs) == 0 }

// String returns the selector as written.
func (s Selector) String() string { return s.text }

// Matches reports whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s.reqs {
		v, ok := labels[r.key]
		switch r.op {
		case "=":
			if !ok || v != r.value {
				return false
			}
		case "!=":
			if ok && v == r.value {
				return false
			}
		case "exists":
			if !ok {
				return false
			}
		case "!exists":
			if ok {
				return false
			}
		}
	}
	return true
}
