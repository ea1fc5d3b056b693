package testlab

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// NewTestNS is Create for a test: it needs root (RequireRoot) and ip,
// names the namespace prefix+PID after removing a dead run's leftovers,
// and deletes it when t ends. Any failure fails t.
func NewTestNS(t testing.TB, prefix, what string) *NS {
	t.Helper()
	requireIP(t, what)
	RemoveStale(t.Context(), prefix)
	n, err := Create(t.Context(), prefix+strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Delete() })
	return n
}

// NewTestPair is NewPair for a test, as NewTestNS is Create: both
// namespaces are deleted when t ends.
func NewTestPair(t testing.TB, spec PairSpec, what string) *Pair {
	t.Helper()
	requireIP(t, what)
	p, err := NewPair(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// RunIP runs `ip args...` for a test's setup, failing t with ip's output.
func RunIP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func requireIP(t testing.TB, what string) {
	t.Helper()
	RequireRoot(t, what)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2's ip is needed to create namespaces: %v", err)
	}
}
