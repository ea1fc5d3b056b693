// Package virtlab runs a real libvirtd for tests, one test at a time on
// the machine: libvirtd's sockets are machine-wide, so packages tested in
// parallel take turns through a lock file.
package virtlab

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"osim/internal/bmclab"
	"osim/internal/testlab"
)

// URI is the connection the tests' virsh and the libvirt power driver use.
const URI = "qemu:///system"

// lockFile serialises the tests that need libvirtd across test binaries.
const lockFile = "/run/lock/osim-virtlab.lock"

// Start makes a libvirtd answer at URI for the rest of t. Inside ns (a
// test's namespace, so that its domains plug into the test's bridge) it
// is always the test's own libvirtd and virtlogd; with ns nil, a libvirtd
// that runs already is used (the caller's domains need no network), and
// otherwise one is started in a namespace of its own so nothing libvirt
// starts touches the machine's network. The daemons stop at t's end.
func Start(t *testing.T, ns *testlab.NS) {
	t.Helper()
	bmclab.NeedTools(t, "virsh", "libvirtd", "virtlogd", "qemu-system-x86_64")
	testlab.RequireRoot(t, "the test starts libvirtd")
	lock(t)
	if answers() {
		if ns == nil {
			return
		}
		testlab.Unavailable(t, "a libvirtd outside this test runs on the machine; the test needs its own inside its namespace (stop it: systemctl stop libvirtd)")
	}
	if ns == nil {
		ns = testlab.NewTestNS(t, "osimvirt", "libvirtd's own namespace")
	}
	var daemons []*exec.Cmd
	t.Cleanup(func() {
		for _, d := range daemons {
			syscall.Kill(-d.Process.Pid, syscall.SIGTERM)
			d.Wait()
		}
	})
	for _, argv := range [][]string{{"virtlogd"}, {"libvirtd", "--timeout", "0"}} {
		cmd := ns.Command(argv...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", argv[0], err)
		}
		daemons = append(daemons, cmd)
	}
	for i := 0; !answers(); i++ {
		if i == 200 {
			t.Fatal("libvirtd started but does not answer")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Virsh runs virsh against URI and fails t with its output on an error.
func Virsh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("virsh", append([]string{"-c", URI}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func answers() bool { return exec.Command("virsh", "-c", URI, "version").Run() == nil }

// lock holds the machine-wide lock until t ends.
func lock(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("virtlab lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("virtlab lock: %v", err)
	}
	t.Cleanup(func() { f.Close() })
}
