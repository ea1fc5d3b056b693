package cmdline

import (
	"slices"
	"testing"
)

func TestParamRefsNamesEveryStaticReference(t *testing.T) {
	for _, c := range []struct {
		text string
		want []string
	}{
		{"", nil},
		{"console=ttyS0", nil},
		{`a={{param "a"}} b={{.Params.b}} {{if .Params.c}}c{{end}} {{with .Order}}{{$.Params.d}}{{end}}`, []string{"a", "b", "c", "d"}},
		{`{{range $k, $v := .Params}}{{$k}}={{$v}} {{end}}`, nil},
		{`{{param "x"}} {{param "x"}}`, []string{"x"}},
	} {
		got, err := ParamRefs(c.text)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParamRefs(%q) = %v, %v; want %v", c.text, got, err, c.want)
		}
	}
	if _, err := ParamRefs("{{printf}}"); err == nil {
		t.Error("a refused template gave no error")
	}
}
