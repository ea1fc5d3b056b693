// Package logging builds the text logger on stderr that every osim
// command uses, from its --log-level flag.
package logging

import (
	"fmt"
	"log/slog"
	"os"
)

// New returns a text logger on stderr at level (debug, info, warn, error).
func New(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// NewLeveled is New with the level in a LevelVar, so a running command
// can change it (osim-bootd on SIGHUP).
func NewLeveled(level string) (*slog.Logger, *slog.LevelVar, error) {
	v := new(slog.LevelVar)
	if err := v.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: v})), v, nil
}
