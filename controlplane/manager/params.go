package manager

import "osim/controlplane/api"

// userImage answers an image with its secret defaults masked, for every
// role but a boot server's (which renders plans and answer files with
// them; its sync stream carries them too).
func userImage(p *principal, im api.Image) api.Image {
	if p != nil && p.Role == api.RoleBootServer {
		return im
	}
	return api.RedactImage(im)
}

func userImages(p *principal, ims []api.Image) []api.Image {
	out := make([]api.Image, len(ims))
	for i, im := range ims {
		out[i] = userImage(p, im)
	}
	return out
}

// specDefaults is the Defaults a spec stands for: its typed parameters'
// when it has them (the store derives them the same way), else its own.
func specDefaults(spec api.ImageSpec) map[string]string {
	if len(spec.Parameters) > 0 {
		return api.ParamDefaults(spec.Parameters)
	}
	return spec.Defaults
}
