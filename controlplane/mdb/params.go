package mdb

import (
	"maps"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"osim/controlplane/api"
	"osim/internal/cmdline"
)

// MaxParamDescription bounds a parameter's description.
const MaxParamDescription = 1024

// CheckParameters validates an image spec's typed parameters and derives
// its Defaults from them: names valid and unique, a known type, a default
// of that type, no default on a required parameter (required means every
// order sets it; a default would make that moot, so it is refused rather
// than silently ignored), and a command line template that names only
// declared, non-secret parameters (a secret on the kernel command line
// would be printed in every iPXE script and in /proc/cmdline). A spec
// without parameters keeps its Defaults as they are (old images). Every
// error names the field; all are ErrUnprocessable.
func CheckParameters(spec *api.ImageSpec) error {
	if len(spec.Parameters) == 0 {
		return nil
	}
	names := map[string]int{}
	for i := range spec.Parameters {
		p := &spec.Parameters[i]
		if err := checkParameter(i, p); err != nil {
			return err
		}
		if j, dup := names[p.Name]; dup {
			return invalidf("parameters[%d].name: %q is parameters[%d] again", i, p.Name, j)
		}
		names[p.Name] = i
	}
	derived := api.ParamDefaults(spec.Parameters)
	if spec.Defaults != nil {
		for _, k := range slices.Sorted(maps.Keys(mergeKeys(spec.Defaults, derived))) {
			if spec.Defaults[k] != derived[k] {
				return invalidf("defaults.%s: disagrees with parameters (give parameters alone: defaults derive from them)", k)
			}
		}
	}
	spec.Defaults = derived
	refs, err := cmdline.ParamRefs(spec.Cmdline)
	if err != nil {
		return invalidf("cmdline: %v", err)
	}
	for _, r := range refs {
		i, ok := names[r]
		if !ok {
			return invalidf("cmdline: parameter %q is not declared in parameters", r)
		}
		if spec.Parameters[i].Secret {
			return invalidf("cmdline: parameter %q is secret: a secret never goes on the kernel command line", r)
		}
	}
	return nil
}

func mergeKeys(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

// checkParameter checks one parameter and spells its type out ("" is
// string).
func checkParameter(i int, p *api.Parameter) error {
	if !api.ValidName(p.Name) {
		return invalidf("parameters[%d].name: %q is not valid (1-63 of A-Z a-z 0-9 . _ -)", i, p.Name)
	}
	if p.Type == "" {
		p.Type = api.ParamString
	}
	if !slices.Contains(api.ParamTypes, p.Type) {
		return invalidf("parameters[%d].type: %q: want %s", i, p.Type, strings.Join(api.ParamTypes, ", "))
	}
	if p.Required && p.Default != "" {
		return invalidf("parameters[%d] %s: required with a default: a required parameter has none (every order sets it)", i, p.Name)
	}
	if p.Default != "" {
		if err := p.CheckValue(p.Default); err != nil {
			return invalidf("parameters[%d].default: %v", i, err)
		}
	}
	if len(p.Description) > MaxParamDescription {
		return invalidf("parameters[%d].description: %d bytes, at most %d", i, len(p.Description), MaxParamDescription)
	}
	return nil
}

// checkOrderParams checks an order's parameters against the typed
// parameters of its images (the os image, the boot image named or the
// sites' defaults): with none declared anywhere every key goes (old
// images). Otherwise a key must be declared, an old-style default of one
// of them, or reserved (api.ReservedParams); a value must match its type;
// and every required parameter must be set.
func checkOrderParams(params map[string]string, images []api.Image) error {
	declared := map[string][]api.Parameter{}
	known := map[string]bool{}
	for _, k := range api.ReservedParams {
		known[k] = true
	}
	for _, im := range images {
		for _, p := range im.Parameters {
			declared[p.Name] = append(declared[p.Name], p)
			known[p.Name] = true
		}
		for k := range im.Defaults {
			known[k] = true
		}
	}
	if len(declared) == 0 {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if !known[k] {
			return invalidf("params.%s: no image of the order declares it (declared: %s)", k, strings.Join(slices.Sorted(maps.Keys(declared)), ", "))
		}
		for _, p := range declared[k] {
			if err := p.CheckValue(params[k]); err != nil {
				return invalidf("params.%s: %v", k, err)
			}
		}
	}
	for _, im := range images {
		for _, p := range im.Parameters {
			if _, ok := params[p.Name]; p.Required && !ok {
				return invalidf("params.%s: required by image %s (%s %s), not set", p.Name, im.ID, im.Name, im.Version)
			}
		}
	}
	return nil
}

// orderImages lists an order request's images: the os image, the boot
// image it names, the sites' default boot images it will get.
func orderImages(osImg, boot api.Image, boots map[string]api.Image) []api.Image {
	out := []api.Image{osImg}
	if boot.ID != "" {
		out = append(out, boot)
	}
	for _, id := range slices.Sorted(maps.Keys(boots)) {
		if id != boot.ID {
			out = append(out, boots[id])
		}
	}
	return out
}

// orderSecrets names the secret parameters of an order's images.
func orderSecrets(txn *badger.Txn, ids ...string) ([]string, error) {
	var ps [][]api.Parameter
	for _, id := range ids {
		if id == "" {
			continue
		}
		im, err := getImage(txn, id)
		if err != nil {
			return nil, err
		}
		ps = append(ps, im.Parameters)
	}
	return api.SecretParams(ps...), nil
}
