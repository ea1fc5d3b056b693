package api

import "testing"

func TestSelectorMatchesEqualityAndExistence(t *testing.T) {
	labels := map[string]string{"rack": "r12", "env": "test", "gpu": ""}
	cases := []struct {
		sel  string
		want bool
	}{
		{"", true},
		{"rack=r12", true},
		{"rack==r12", true},
		{"rack=r13", false},
		{"env!=prod", true},
		{"env!=test", false},
		{"missing!=x", true},
		{"gpu", true},
		{"!gpu", false},
		{"!missing", true},
		{"rack=r12, env=test", true},
		{"rack=r12,env=prod", false},
		{"gpu=", true},
	}
	for _, c := range cases {
		s, err := ParseSelector(c.sel)
		if err != nil {
			t.Fatalf("ParseSelector(%q): %v", c.sel, err)
		}
		if got := s.Matches(labels); got != c.want {
			t.Errorf("%q.Matches = %v, want %v", c.sel, got, c.want)
		}
	}
}

func TestSelectorRejectsMalformedRequirements(t *testing.T) {
	for _, s := range []string{"rack=r1,,env=x", "=x", "ra ck=1", "rack=a b", "!", "rack=r1;rm"} {
		if _, err := ParseSelector(s); err == nil {
			t.Errorf("ParseSelector(%q) accepted", s)
		}
	}
}

// FuzzSelector: the parser never panics; what it accepts reads back the
// same from its String; and Matches agrees with the meaning of each
// requirement on label sets built from the selector itself (the guard of
// mass orders trusts Matches, not the spelling).
func FuzzSelector(f *testing.F) {
	for _, s := range []string{"", "rack=r12", "rack==r12,env!=prod", "gpu", "!gpu", "a!=b", "!no-such-label",
		" rack , !x ", "gpu=", "a=b=c", "a!==b", "!!a", "rack=r1,,env=x", "=x", "é=1", "a\x00=b", "a=b,c!=d,e,!f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		sel, err := ParseSelector(text)
		if err != nil {
			return
		}
		again, err := ParseSelector(sel.String())
		if err != nil || len(again.reqs) != len(sel.reqs) {
			t.Fatalf("%q: String %q reads back as %v, %v", text, sel.String(), again.reqs, err)
		}
		for i := range sel.reqs {
			if again.reqs[i] != sel.reqs[i] {
				t.Fatalf("%q: requirement %d reads back %+v, was %+v", text, i, again.reqs[i], sel.reqs[i])
			}
		}
		// No labels: only negative requirements hold.
		negative := true
		for _, r := range sel.reqs {
			negative = negative && (r.op == "!=" || r.op == "!exists")
		}
		if got := sel.Matches(nil); got != negative {
			t.Fatalf("%q matches no labels: %v, want %v", text, got, negative)
		}
		// Labels that satisfy each positive requirement, and nothing else,
		// match exactly when no requirement contradicts another.
		labels := map[string]string{}
		for _, r := range sel.reqs {
			switch r.op {
			case "=":
				labels[r.key] = r.value
			case "exists":
				if _, ok := labels[r.key]; !ok {
					labels[r.key] = ""
				}
			}
		}
		if sel.Matches(labels) {
			for _, r := range sel.reqs {
				if v, ok := labels[r.key]; (r.op == "=" && v != r.value) || (r.op == "!exists" && ok) || (r.op == "!=" && ok && v == r.value) {
					t.Fatalf("%q matches %v despite %+v", text, labels, r)
				}
			}
		}
	})
}
