package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

// ErrNotRoot: namespaces, veths and cgroups need root.
var ErrNotRoot = errors.New("needs root")

// NeedRoot fails with what the caller needs root for unless it runs as root.
func NeedRoot(what string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w (%s)", ErrNotRoot, what)
	}
	return nil
}

// RequireRoot skips t unless it runs as root, saying why; under CI=true,
// where the tests run as root, it fails instead of skipping.
func RequireRoot(t testing.TB, what string) {
	t.Helper()
	if err := NeedRoot(what); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v; CI runs as root", err)
		}
		t.Skip(err)
	}
}

// Sleep waits d or until ctx is done, whichever comes first, and returns
// ctx's error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
