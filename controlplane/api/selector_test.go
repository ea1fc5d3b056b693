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
