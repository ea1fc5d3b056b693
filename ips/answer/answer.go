// Package answer checks and renders vendor installers' answer files
// (Debian preseed, kickstart, Ubuntu autoinstall) from templates with an
// order's parameters. The boot server renders one per order at
// GET /answer/{order}; osim-ips checks a template when it builds an
// installer image.
//
// A template is Go text/template over Data with helpers that quote a
// value for its flavor, so no value (a host name, a parameter) can add a
// line, a key or a command the template did not write. Rendered answer
// files carry the order's secrets (a root password hash, the status
// token): that is their purpose. This package never logs, and its errors
// never quote a value.
package answer

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"
)

// Flavors of answer files (api.Flavor* are the same strings).
const (
	Preseed     = "preseed"
	Kickstart   = "kickstart"
	Autoinstall = "autoinstall"
)

// Flavors lists them.
var Flavors = []string{Preseed, Kickstart, Autoinstall}

// Limits of a template and of one render.
const (
	MaxTemplateBytes = 256 << 10
	MaxRenderedBytes = 1 << 20
	RenderTimeout    = time.Second
)

var (
	// ErrTemplate: the template does not parse or execute, or what it
	// renders is not an answer file of its flavor.
	ErrTemplate = errors.New("answer template refused")
	// ErrValue: a value cannot be quoted safely for the flavor (a newline
	// in a preseed value). The error names the helper, never the value.
	ErrValue = errors.New("answer value refused")
	// ErrFlavor: not one of Flavors.
	ErrFlavor = errors.New("unknown answer-file flavor")
)

// Data is what a template sees.
//
//	{{.Hostname}}   the target's host name in the MDB (may be empty)
//	{{.Order}}      the order id
//	{{.Token}}      the order's bearer token (status reports)
//	{{.MAC}}        the MAC the target booted from (may be empty)
//	{{.BaseURL}}    the boot server's HTTP base, http://10.0.0.1:8080
//	{{.StatusURL}}  where the installer POSTs its progress
//	{{.AnswerURL}}  this answer file's own URL (token included)
//	{{.Params.x}}   parameter x: the image's default, or the order's value
//	{{param "x"}}   the same, but a missing parameter fails the render
//
// Helpers, every flavor: sh (a POSIX shell single-quoted word), json (a
// JSON string), statusCurl PHASE MESSAGE and statusWget PHASE MESSAGE (a
// shell command reporting PHASE, one of installing, done, failed, to the
// status URL with the order's token; statusWget for debian-installer,
// whose wget is GNU Wget, or busybox's). Per flavor: preseed (a d-i
// value: one line), ks (a kickstart argument, double-quoted), yaml (a
// YAML double-quoted scalar).
type Data struct {
	Hostname  string
	Order     string
	Token     string
	MAC       string
	BaseURL   string
	StatusURL string
	AnswerURL string
	Params    map[string]string
}

// Sample is the data Check renders against; defaults are the image's
// parameters.
func Sample(defaults map[string]string) Data {
	const base = "http://boot-server-01.site.example.net:8080"
	const order, token = "o-0123456789abcdef", "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"
	return Data{Hostname: "node-0001", Order: order, Token: token, MAC: "52:54:00:12:34:56", BaseURL: base,
		StatusURL: base + "/status/" + order, AnswerURL: base + "/answer/" + order + "?token=" + token, Params: defaults}
}

// ContentType is what the boot server answers a flavor's file with.
func ContentType(flavor string) string {
	if flavor == Autoinstall {
		return "text/yaml; charset=utf-8"
	}
	return "text/plain; charset=utf-8"
}

// Check parses text as a template of flavor, renders it against
// Sample(nil) with every {{param "x"}} answered by a sample value, and
// checks the result is an answer file of its flavor that reports to the
// status URL. Errors name the template line (or the rendered line).
func Check(flavor, text string) error {
	return CheckWith(flavor, text, nil)
}

// CheckWith is Check with the image's parameter defaults as .Params.
func CheckWith(flavor, text string, defaults map[string]string) error {
	body, err := render(flavor, text, Sample(defaults), func(string) (string, error) { return "sample", nil })
	if err != nil {
		return err
	}
	if !strings.Contains(string(body), Sample(nil).StatusURL) {
		return fmt.Errorf("%w: %s template never reports to the status URL: use {{statusCurl \"done\" ...}}, {{statusWget \"done\" ...}} or {{.StatusURL}} in its last step", ErrTemplate, flavor)
	}
	return nil
}

// Render renders text of flavor for d and checks the result is an answer
// file of its flavor.
func Render(flavor, text string, d Data) ([]byte, error) {
	return render(flavor, text, d, func(k string) (string, error) {
		return "", fmt.Errorf("parameter %q is not set", k)
	})
}

func render(flavor, text string, d Data, missing func(string) (string, error)) ([]byte, error) {
	q, ok := quoters[flavor]
	if !ok {
		return nil, fmt.Errorf("%w: %q, want %s", ErrFlavor, flavor, strings.Join(Flavors, ", "))
	}
	if len(text) > MaxTemplateBytes {
		return nil, fmt.Errorf("%w: template of %d bytes, at most %d", ErrTemplate, len(text), MaxTemplateBytes)
	}
	t, err := template.New(flavor).Option("missingkey=zero").Funcs(funcs(flavor, q, d, missing)).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	out, err := execute(t, d)
	if err != nil {
		return nil, err
	}
	if err := validators[flavor](out); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTemplate, flavor, err)
	}
	return out, nil
}

// execute runs t into a writer capped at MaxRenderedBytes, abandoning a
// render still running after RenderTimeout (its next write fails).
func execute(t *template.Template, d Data) ([]byte, error) {
	w := &cappedWriter{deadline: time.Now().Add(RenderTimeout)}
	done := make(chan error, 1)
	go func() { done <- t.Execute(w, d) }()
	timer := time.NewTimer(RenderTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
		}
		return w.b, nil
	case <-timer.C:
		return nil, fmt.Errorf("%w: render took over %v", ErrTemplate, RenderTimeout)
	}
}

type cappedWriter struct {
	b        []byte
	deadline time.Time
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > MaxRenderedBytes {
		return 0, fmt.Errorf("rendered answer file over %d bytes", MaxRenderedBytes)
	}
	if time.Now().After(w.deadline) {
		return 0, fmt.Errorf("render past its %v", RenderTimeout)
	}
	w.b = append(w.b, p...)
	return len(p), nil
}
