package mdb

import (
	"strings"

	"osim/controlplane/api"
)

// checkAnswerFile: a file of role answer belongs to an installer-format
// os image and names its flavor; no other file has a flavor. Its template
// text is checked by whoever builds the image (ips/answer.Check) and by
// the boot server when it renders it: registration sees no blob content.
func checkAnswerFile(i int, f api.ImageFile, format string) error {
	if f.Role != api.RoleAnswer {
		if f.Flavor != "" {
			return invalidf("files[%d].flavor: only an answer file (role answer) has a flavor", i)
		}
		return nil
	}
	if format != api.FormatInstaller {
		return invalidf("files[%d] %s: an answer file belongs to an os image of format installer", i, f.Name)
	}
	if !api.ValidAnswerFlavor(f.Flavor) {
		return invalidf("files[%d].flavor: %q: want %s", i, f.Flavor, strings.Join(api.AnswerFlavors, ", "))
	}
	return nil
}
