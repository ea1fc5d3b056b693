package manager

import (
	"encoding/json"
	"strings"
	"testing"

	"osim/controlplane/api"
)

func TestImageWithACmdlineTemplateThatCannotRenderIsRefused(t *testing.T) {
	e := newEnv(t)
	kernel := e.uploadImageFile("vmlinuz", api.RoleKernel, testData(3000))
	for _, tc := range []struct{ name, cmdline, says string }{
		{"misspelt field", "osim.status={{.StatusUrl}}", "field .StatusUrl does not exist"},
		{"syntax error", "console={{.Nope", "unclosed action"},
		{"range over integers", "x{{range 200000}}{{range 1000}}A{{end}}{{end}}", "range over 200000"},
		{"over 4 KiB rendered", strings.Repeat("{{.Token}} ", 200), "over 4096 bytes"},
		{"printf", `{{printf "%0999999d" 1}}`, `function "printf" is not allowed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := api.ImageSpec{Name: "debian", Version: tc.name, Kind: api.KindOS, Arch: "efi-x64",
				Files: []api.ImageFile{kernel}, Cmdline: tc.cmdline}
			body, _ := json.Marshal(spec)
			r := e.as(api.RoleOperator, "POST", "/api/v1/images", string(body))
			wantError(t, r, 422, "cmdline: ")
			wantError(t, r, 422, tc.says)
		})
	}
	spec := api.ImageSpec{Name: "debian", Version: "ok", Kind: api.KindOS, Arch: "efi-x64", Files: []api.ImageFile{kernel},
		Cmdline:  `console={{.Params.console}} osim.status={{.StatusURL}} osim.token={{.Token}} host={{param "hostname"}}`,
		Defaults: map[string]string{"console": "ttyS0"}}
	if _, err := e.client(api.RoleOperator).CreateImage(t.Context(), spec); err != nil {
		t.Fatalf("a template that renders: %v", err)
	}
}
