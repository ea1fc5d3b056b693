// Package testlab is what tests and benchmarks need to run against real
// network stacks on this machine: root and tool checks that fail under
// CI=true and skip elsewhere with the reason, and named network namespaces
// (removed again after a killed run), alone or two joined by a veth.
// Tests outside bench/ use it directly; bench/internal/lab adds processes
// and cgroups on top.
package testlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// ErrNotRoot: namespaces, veths, BPF, mounts and cgroups need root.
var ErrNotRoot = errors.New("needs root")

// NeedRoot fails with what the caller needs root for unless it runs as root.
func NeedRoot(what string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w (%s)", ErrNotRoot, what)
	}
	return nil
}

// RequireRoot skips t unless it runs as root, saying why; under CI=true,
// where the tests run as root, it fails instead: a test that needs root
// never passes silently there.
func RequireRoot(t testing.TB, what string) {
	t.Helper()
	if err := NeedRoot(what); err != nil {
		Unavailable(t, "%v: run it as root", err)
	}
}

// RequireTool returns the path of bin, a peer the test talks to. Missing,
// it fails t under CI=true (CI must install pkg, the Debian package) and
// skips it elsewhere, naming the package.
func RequireTool(t testing.TB, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err == nil {
		return p
	}
	Unavailable(t, "%s is not installed: apt-get install %s (scripts/packages.sh)", bin, pkg)
	return ""
}

// Unavailable ends t for want of something this machine lacks (a tool, a
// file, a kernel feature): under CI=true, which must provide it, t fails;
// elsewhere it is skipped. The message says what is missing and how to
// get it.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, but "+format, args...)
	}
	t.Skipf(format+": skipped", args...)
}
