package answer

import (
	"embed"
	"fmt"
)

//go:embed templates
var examples embed.FS

// Examples names the example template of each flavor under templates/.
var Examples = map[string]string{
	Preseed:     "debian-12.preseed",
	Kickstart:   "rhel.ks",
	Autoinstall: "ubuntu-autoinstall.yaml",
}

// Example is the text of a flavor's example template.
func Example(flavor string) (string, error) {
	name, ok := Examples[flavor]
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrFlavor, flavor)
	}
	b, err := examples.ReadFile("templates/" + name)
	if err != nil {
		return "", fmt.Errorf("answer: example %s: %w", name, err)
	}
	return string(b), nil
}
