package httpboot

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

const maxNameLen = 1024

// cleanName turns a requested file name into a clean relative slash path or
// refuses it with ErrForbidden: "..", backslashes, NUL and other control
// bytes, an absolute path (a leading slash) and over-long names. "a//b" and
// "./a" are refused too rather than rewritten, so one file has one URL.
func cleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty file name", ErrNotFound)
	case len(name) > maxNameLen:
		return "", fmt.Errorf("%w: name of %d bytes exceeds %d", ErrForbidden, len(name), maxNameLen)
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("%w: %q is an absolute path", ErrForbidden, name)
	case strings.IndexByte(name, '\\') >= 0:
		return "", fmt.Errorf("%w: %q contains a backslash", ErrForbidden, name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] == 0x7f {
			return "", fmt.Errorf("%w: %q contains control byte %#x", ErrForbidden, name, name[i])
		}
	}
	for _, el := range strings.Split(name, "/") {
		switch el {
		case "..":
			return "", fmt.Errorf("%w: %q leaves the root", ErrForbidden, name)
		case ".", "":
			return "", fmt.Errorf("%w: %q is not a clean path", ErrForbidden, name)
		}
	}
	return name, nil
}

// serveFile answers GET and HEAD of /files/{name...} with http.ServeContent:
// Range and If-Range, If-None-Match against the strong ETag,
// If-Modified-Since against Last-Modified.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("name")
	name, err := cleanName(raw)
	if err != nil {
		h.refuse(w, r, err, raw)
		return
	}
	f, err := h.files.Open(r.Context(), name)
	if err != nil {
		h.refuse(w, r, err, name)
		return
	}
	defer f.Close()
	w.Header().Set("ETag", f.ETag())
	w.Header().Set("Cache-Control", "no-cache")
	// ServeContent sniffs the type from the content otherwise; kernels and
	// initrds are opaque bytes.
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", f.ModTime(), f)
}

// refuse answers a failed lookup with the code its sentinel calls for and a
// one-line body that names the input.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, err error, input string) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrUnknownTarget), errors.Is(err, ErrUnknownOrder):
		code = http.StatusNotFound
	case errors.Is(err, ErrForbidden):
		code = http.StatusForbidden
	}
	lvl := h.log.Debug
	if code == http.StatusInternalServerError {
		lvl = h.log.Warn
	}
	lvl("httpboot: refused", "path", r.URL.Path, "input", input, "client", r.RemoteAddr, "code", code, "err", err)
	http.Error(w, err.Error(), code)
}
