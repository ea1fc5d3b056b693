package api

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Parameter types (Parameter.Type; "" is ParamString).
const (
	ParamString = "string"
	ParamInt    = "int"  // a base-10 integer that fits 64 bits
	ParamBool   = "bool" // true or false
)

// ParamTypes lists the parameter types.
var ParamTypes = []string{ParamString, ParamInt, ParamBool}

// SecretMask replaces a secret parameter's value in every answer of the
// manager's API except the boot servers' sync stream.
const SecretMask = "(secret)"

// Parameter is one typed parameter an image declares: an order may set
// it (its Params), otherwise Default applies. A Required parameter has no
// default (the manager refuses one with a default): every order sets it.
// A Secret one (a password, a key) is never printed: the API answers
// SecretMask for its value, and it reaches the installed system only
// through the first-boot seed or answer file.
type Parameter struct {
	Name        string `json:"name"`
	Type        string `json:"type,omitempty"` // ParamTypes; "" is string
	Default     string `json:"default,omitempty"`
	Required    bool   `json:"required,omitempty"`
	Secret      bool   `json:"secret,omitempty"`
	Description string `json:"description,omitempty"`
}

// ReservedParams are the order parameters the installer and the boot
// server read themselves: an order may set them whatever its image
// declares.
var ReservedParams = []string{"disk.serial", "disk.path", "disk.min_size", "disk.max_size", "ssh_authorized_keys"}

// quote is v for an error message, or "(secret)" for a secret parameter:
// an error answer must not carry a secret back.
func (p Parameter) quote(v string) string {
	if p.Secret {
		return "(secret)"
	}
	return strconv.Quote(v)
}

// CheckValue checks v against the parameter's type; the error names it.
func (p Parameter) CheckValue(v string) error {
	switch p.Type {
	case "", ParamString:
		return nil
	case ParamInt:
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("parameter %s: %s is not an int", p.Name, p.quote(v))
		}
	case ParamBool:
		if v != "true" && v != "false" {
			return fmt.Errorf("parameter %s: %s is not a bool (true or false)", p.Name, p.quote(v))
		}
	default:
		return fmt.Errorf("parameter %s: type %q is not %v", p.Name, p.Type, ParamTypes)
	}
	return nil
}

// ParamDefaults is the Defaults map a parameter list stands for: every
// parameter with a non-empty default, secret or not (the boot server
// renders plans and answer files with them).
func ParamDefaults(ps []Parameter) map[string]string {
	var out map[string]string
	for _, p := range ps {
		if p.Default == "" {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[p.Name] = p.Default
	}
	return out
}

// SecretParams lists the names of the secret parameters of ps, sorted.
func SecretParams(ps ...[]Parameter) []string {
	var out []string
	for _, l := range ps {
		for _, p := range l {
			if p.Secret && !slices.Contains(out, p.Name) {
				out = append(out, p.Name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// RedactImage answers im with its secret defaults replaced by SecretMask.
func RedactImage(im Image) Image {
	secrets := SecretParams(im.Parameters)
	if len(secrets) == 0 {
		return im
	}
	im.Parameters = slices.Clone(im.Parameters)
	for i, p := range im.Parameters {
		if p.Secret && p.Default != "" {
			im.Parameters[i].Default = SecretMask
		}
	}
	im.Defaults = redactMap(im.Defaults, secrets)
	return im
}

// RedactOrder answers o with the values of its secret parameters
// (o.SecretParams) replaced by SecretMask.
func RedactOrder(o Order) Order {
	o.Params = redactMap(o.Params, o.SecretParams)
	return o
}

// RedactParams answers params with the values of the keys in secrets
// replaced by SecretMask (a copy when any is).
func RedactParams(params map[string]string, secrets []string) map[string]string {
	return redactMap(params, secrets)
}

func redactMap(m map[string]string, secrets []string) map[string]string {
	var out map[string]string
	for _, k := range secrets {
		if _, ok := m[k]; !ok {
			continue
		}
		if out == nil {
			out = maps.Clone(m)
		}
		out[k] = SecretMask
	}
	if out == nil {
		return m
	}
	return out
}

// EventFirstBoot: a first-boot procedure ran on the installed system and
// its reporter posted the result to the boot server (Data: procedure,
// exit_code, output_tail).
const EventFirstBoot = "firstboot.result"
