package manager

import (
	"context"
	"maps"
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
	if err := cmdline.Check(spec.Cmdline, specDefaults(spec)); err != nil {
		return errorf(http.StatusUnprocessableEntity, "cmdline: %v", err)
	}
	return nil
}

// checkOrderParams renders the image's template with the order's
// parameters over the image's defaults: a value that makes the command
// line unsafe or too long would fail the order's every boot.
func (s *Server) checkOrderParams(ctx context.Context, req api.OrderRequest) error {
	if len(req.Params) == 0 {
		return nil
	}
	img, err := s.store.GetImage(ctx, req.Image)
	if err != nil {
		return nil // the store names a missing image itself
	}
	params := maps.Clone(img.Defaults)
	if params == nil {
		params = map[string]string{}
	}
	maps.Copy(params, req.Params)
	for _, k := range api.SecretParams(img.Parameters) {
		delete(params, k) // never on a command line (refused at registration)
	}
	if err := cmdline.Check(img.Cmdline, params); err != nil {
		return errorf(http.StatusUnprocessableEntity, "params: image %s's cmdline with these parameters: %v", img.ID, err)
	}
	return nil
}
