package cmdline

import (
	"fmt"
	"net/url"
	"strings"
)

// InstallArgs renders the osim.* keys the osim installer reads (see
// controlplane/api/install.go) for an order: always appended after an
// image's own template, so no template can leave them out. base must be
// an absolute http(s) URL: the installer has no script URL to resolve a
// relative one against. Every value is checked with SafeToken.
func InstallArgs(base, order, token, mac string) (string, error) {
	if err := CheckBaseURL(base); err != nil {
		return "", err
	}
	kv := [][2]string{{"osim.mode", "install"}, {"osim.url", strings.TrimSuffix(base, "/")},
		{"osim.order", order}, {"osim.token", token}, {"osim.mac", mac}}
	parts := make([]string, len(kv))
	for i, p := range kv {
		if p[1] == "" {
			return "", fmt.Errorf("%w: %s is empty", ErrUnsafeValue, p[0])
		}
		if err := SafeToken(p[0], p[1]); err != nil {
			return "", err
		}
		parts[i] = p[0] + "=" + p[1]
	}
	return strings.Join(parts, " "), nil
}

// CheckBaseURL accepts an absolute http(s) URL with a host that is not
// the unspecified address (0.0.0.0 or [::]: a listen address, not one a
// target can reach).
func CheckBaseURL(base string) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: base URL %q: want an absolute http(s) URL", ErrUnsafeValue, base)
	}
	switch u.Hostname() {
	case "0.0.0.0", "::":
		return fmt.Errorf("%w: base URL %q: %s is a listen address, not one a target can reach", ErrUnsafeValue, base, u.Hostname())
	}
	return nil
}
