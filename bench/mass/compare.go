package mass

import (
	"context"
	"errors"
	"io"
)

// Comparison is bench-mass's result.
type Comparison struct{}

// Compare runs the peer comparison.
func Compare(ctx context.Context, o Options) (*Comparison, error) { return nil, errors.New("not yet") }

// Print writes the table.
func (c *Comparison) Print(w io.Writer) {}

// OK reports whether every target of every server got its NBP.
func (c *Comparison) OK() bool { return false }
