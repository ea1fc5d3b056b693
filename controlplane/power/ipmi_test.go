package power

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"osim/internal/bmclab"
)

func ipmiDriver(t *testing.T, l *bmclab.Lab, password string) Driver {
	t.Helper()
	d, err := Open(Spec{Driver: "ipmi", Address: "127.0.0.1:" + strconv.Itoa(l.Port), Username: bmclab.User,
		Password: password, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestIPMIDriverPowersARealGuestThroughIPMISim drives ipmi_sim with
// ipmitool as the ipmi driver does in production: the QEMU guest behind
// the simulated chassis really starts, restarts and stops, and "network
// boot once" reaches the guest's next start only.
func TestIPMIDriverPowersARealGuestThroughIPMISim(t *testing.T) {
	l := bmclab.Start(t)
	d := ipmiDriver(t, l, bmclab.Password)
	ctx := t.Context()
	if st, err := d.Status(ctx); err != nil || st != Off {
		t.Fatalf("status at start: %s %v, want off", st, err)
	}
	if err := d.NetworkBootOnce(ctx); err != nil {
		t.Fatalf("network boot once: %v", err)
	}
	if err := d.On(ctx); err != nil {
		t.Fatal(err)
	}
	first := l.GuestPID()
	if st, err := d.Status(ctx); err != nil || st != On || first == 0 {
		t.Fatalf("after on: %s %v, guest pid %d", st, err, first)
	}
	if err := d.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	// A BMC cycles in the background (off, a pause, on), as real ones do.
	second := l.WaitGuest(func(pid int) bool { return pid != 0 && pid != first })
	if second == 0 {
		t.Fatalf("cycle: guest pid %d, then none: want a new guest", first)
	}
	if got := strings.Join(l.Boots(), ","); got != "once=n,c" {
		t.Errorf("the guest's boot orders %q, want the network once, then the disk (once=n,c)", got)
	}
	if err := d.Off(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := d.Status(ctx); err != nil || st != Off || l.GuestPID() != 0 {
		t.Fatalf("after off: %s %v, guest pid %d", st, err, l.GuestPID())
	}
	// Cycle of a machine that is off powers it on.
	if err := d.Cycle(ctx); err != nil || l.WaitGuest(func(pid int) bool { return pid != 0 }) == 0 {
		t.Fatalf("cycle from off: %v, guest pid %d", err, l.GuestPID())
	}
	d.Off(ctx)

	// A wrong password: no session, and the error never carries the
	// password (the right one or the wrong one).
	bad := ipmiDriver(t, l, "wrong-"+bmclab.Password)
	_, err := bad.Status(ctx)
	if !errors.Is(err, ErrSession) || strings.Contains(err.Error(), bmclab.Password) {
		t.Errorf("wrong password: %v, want ErrSession without the password", err)
	}
}

func TestIPMIDriverSaysWhenNoBMCAnswers(t *testing.T) {
	bmclab.NeedTools(t, "ipmitool")
	d, err := Open(Spec{Driver: "ipmi", Address: "127.0.0.1:" + strconv.Itoa(bmclab.FreeUDPPort(t)), Username: "u", Password: "p",
		Timeout: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = d.Status(t.Context())
	if !errors.Is(err, ErrSession) && !errors.Is(err, ErrUnreachable) {
		t.Fatalf("no BMC: %v", err)
	}
	t.Logf("no BMC: %v after %v", err, time.Since(start).Round(time.Millisecond))
}
