// Package answer checks and renders vendor installers' answer files
// (Debian preseed, kickstart, Ubuntu autoinstall) from templates with an
// order's parameters.
package answer

import "errors"

// Flavors of answer files.
const (
	Preseed     = "preseed"
	Kickstart   = "kickstart"
	Autoinstall = "autoinstall"
)

// ErrNotBuilt is what Check answers until the renderer lands.
var ErrNotBuilt = errors.New("answer: renderer not available")

// Check parses template as an answer-file template of flavor.
func Check(flavor, template string) error { return ErrNotBuilt }
