package manager

import (
	"net/http"

	"osim/controlplane/api"
	"osim/internal/cmdline"
)

// checkCmdline renders an image's command line template against sample
// data the way a boot server will (internal/cmdline): a template that does
// not parse, names an unknown field, ranges over anything but .Params,
// prints more than cmdline.MaxRenderedBytes or prints an unsafe value would
// fail every boot with a 500, so it is refused here with 422.
func checkCmdline(spec api.ImageSpec) error {
	if err := cmdline.Check(spec.Cmdline, spec.Defaults); err != nil {
		return errorf(http.StatusUnprocessableEntity, "cmdline: %v", err)
	}
	return nil
}
