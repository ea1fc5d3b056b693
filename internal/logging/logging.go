// Package logging builds the logger on stderr that every osim command
// uses, from its --log-level and --log-format flags: one line per event
// with stable keys, as text (key=value) or JSON for a log shipper.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
)

// Formats are the --log-format values.
var Formats = []string{"text", "json"}

// New returns a logger on stderr at level (debug, info, warn, error) in
// format (text, json; "" is text).
func New(level, format string) (*slog.Logger, error) {
	l, _, err := NewLeveled(level, format)
	return l, err
}

// NewLeveled is New with the level in a LevelVar, so a running command
// can change it (osim-bootd on SIGHUP).
func NewLeveled(level, format string) (*slog.Logger, *slog.LevelVar, error) {
	return newTo(os.Stderr, level, format)
}

func newTo(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar, error) {
	v := new(slog.LevelVar)
	if err := v.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: v}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), v, nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), v, nil
	}
	return nil, nil, fmt.Errorf("--log-format %q: want text or json", format)
}
