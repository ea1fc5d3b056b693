package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"osim/controlplane/api"
)

// readParameters reads a JSON list of api.Parameter; unknown keys are
// refused, so a misspelled "secret" cannot leave a password unmasked.
func readParameters(path string) ([]api.Parameter, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ps []api.Parameter
	if err := dec.Decode(&ps); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ps, nil
}

// formatParams is one line per image parameter's summary:
// "name int=2", "host required", "root_password secret=(secret)".
func formatParams(ps []api.Parameter) string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		s := p.Name
		if p.Type != "" && p.Type != api.ParamString {
			s += " " + p.Type
		}
		if p.Required {
			s += " required"
		}
		if p.Secret {
			s += " secret"
		}
		if p.Default != "" {
			s += "=" + p.Default
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}
