package power

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"osim/internal/virtlab"
)

// needLibvirtd makes sure a libvirtd answers (virtlab.Start): the test's
// domain has a name of its own and is removed at the end.
func needLibvirtd(t *testing.T) {
	t.Helper()
	virtlab.Start(t, nil)
}

// TestLibvirtDriverPowersARealDomain drives a QEMU/TCG domain of a real
// libvirtd through virsh: on, status, cycle (a new QEMU process), the
// network-first boot order, off.
func TestLibvirtDriverPowersARealDomain(t *testing.T) {
	needLibvirtd(t)
	name := "osimtest-" + strconv.Itoa(os.Getpid())
	xml := `<domain type='qemu'><name>` + name + `</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>`
	f := t.TempDir() + "/dom.xml"
	os.WriteFile(f, []byte(xml), 0o644)
	if out, err := exec.Command("virsh", "-c", "qemu:///system", "define", f).CombinedOutput(); err != nil {
		t.Fatalf("define: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("virsh", "-c", "qemu:///system", "destroy", name).Run()
		exec.Command("virsh", "-c", "qemu:///system", "undefine", name).Run()
	})
	d, err := Open(Spec{Driver: "libvirt", Domain: name, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	domid := func() string {
		out, _ := exec.Command("virsh", "-c", "qemu:///system", "domid", name).Output()
		return strings.TrimSpace(string(out))
	}
	if st, err := d.Status(ctx); st != Off || err != nil {
		t.Fatalf("status at start: %s %v", st, err)
	}
	if err := d.NetworkBootOnce(ctx); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("virsh", "-c", "qemu:///system", "dumpxml", "--inactive", name).Output()
	if i, j := strings.Index(string(out), "<boot dev='network'/>"), strings.Index(string(out), "<boot dev='hd'/>"); i < 0 || j < i {
		t.Fatalf("boot order not network first:\n%s", out)
	}
	if err := d.On(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.On(ctx); err != nil {
		t.Errorf("on when on: %v", err)
	}
	first := domid()
	if st, err := d.Status(ctx); st != On || err != nil || first == "-" || first == "" {
		t.Fatalf("after on: %s %v, domid %q", st, err, first)
	}
	if err := d.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	if second := domid(); second == first || second == "-" {
		t.Fatalf("cycle: domid %s then %s, want a new QEMU process", first, second)
	}
	if err := d.Off(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Off(ctx); err != nil {
		t.Errorf("off when off: %v", err)
	}
	if st, err := d.Status(ctx); st != Off || err != nil {
		t.Fatalf("after off: %s %v", st, err)
	}
	if _, err := Open(Spec{Driver: "libvirt", Domain: "-c x"}); err == nil {
		t.Error("a domain name that is a flag opened")
	}
	missing, _ := Open(Spec{Driver: "libvirt", Domain: "osimtest-nope", Timeout: 10 * time.Second})
	if _, err := missing.Status(ctx); err == nil || !strings.Contains(err.Error(), "osimtest-nope") {
		t.Errorf("a missing domain: %v", err)
	}
}
