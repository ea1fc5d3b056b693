package power

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bmcLab is a BMC for tests: OpenIPMI's ipmi_sim (Debian's openipmi) on a
// loopback UDP port, speaking real IPMI v2.0 LAN to ipmitool. Its
// chassis_control hook is the machine's power wiring: a script (written
// here) that starts and stops a QEMU guest and passes the boot device on
// to it (-boot once=n after "chassis bootdev pxe").
type bmcLab struct {
	t    *testing.T
	dir  string
	port int
	sim  *exec.Cmd
}

const labUser, labPassword = "osim", "s3cret-bmc-pw"

// chassisScript is ipmi_sim's chassis control program (its protocol:
// "<dev> get power boot" prints "power:1"/"boot:pxe"; "<dev> set power 1|0",
// "set reset 1", "set boot pxe|default|none"). The machine is a QEMU
// process: TCG, no disk, no NIC (its power is what matters here).
const chassisScript = `#!/bin/sh
dir=%[1]q
dev=$1; op=$2; shift 2
alive() { [ -f "$dir/qemu.pid" ] && kill -0 "$(cat "$dir/qemu.pid")" 2>/dev/null; }
start() {
	boot=c
	if [ "$(cat "$dir/bootnext" 2>/dev/null)" = pxe ]; then boot=once=n; echo default > "$dir/bootnext"; fi
	echo "$boot" >> "$dir/boots.log"
	qemu-system-x86_64 -accel tcg -m 32 -nodefaults -no-user-config -display none -boot "$boot" \
		-serial "file:$dir/serial.log" -pidfile "$dir/qemu.pid" -daemonize
}
stop() {
	alive && kill "$(cat "$dir/qemu.pid")"
	for _ in 1 2 3 4 5 6 7 8 9 10; do alive || break; sleep 0.2; done
	rm -f "$dir/qemu.pid"
}
case $op in
get)
	for p in "$@"; do
		case $p in
		power) if alive; then echo power:1; else echo power:0; fi ;;
		boot) echo "boot:$(cat "$dir/bootnext" 2>/dev/null || echo default)" ;;
		esac
	done ;;
set)
	while [ $# -gt 1 ]; do
		case $1 in
		power) if [ "$2" = 1 ]; then alive || start; else stop; fi ;;
		reset) stop; start ;;
		boot) echo "$2" > "$dir/bootnext" ;;
		esac
		shift 2
	done ;;
esac
`

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("needs %s (apt-get install openipmi ipmitool qemu-system-x86)", tool)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func startBMC(t *testing.T) *bmcLab {
	t.Helper()
	needTools(t, "ipmi_sim", "ipmitool", "qemu-system-x86_64")
	l := &bmcLab{t: t, dir: t.TempDir(), port: freeUDPPort(t)}
	script := filepath.Join(l.dir, "chassis.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(chassisScript, l.dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`name "osimtest"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%s 0x20"
  startnow false
  user 2 true "%s" "%s" admin 10 none md2 md5 straight
`, l.port, script, labUser, labPassword)
	emu := "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n"
	for name, body := range map[string]string{"lan.conf": conf, "bmc.emu": emu} {
		if err := os.WriteFile(filepath.Join(l.dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(l.dir, "state"), 0o755)
	log, _ := os.Create(filepath.Join(l.dir, "ipmi_sim.log"))
	l.sim = exec.Command("ipmi_sim", "-c", "lan.conf", "-f", "bmc.emu", "-s", filepath.Join(l.dir, "state"), "-n")
	l.sim.Dir, l.sim.Stdout, l.sim.Stderr = l.dir, log, log
	l.sim.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := l.sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.killGuest()
		syscall.Kill(-l.sim.Process.Pid, syscall.SIGKILL)
		l.sim.Wait()
		log.Close()
	})
	// ipmi_sim answers once its LAN channel is up.
	d := l.driver(labPassword)
	for i := 0; ; i++ {
		if _, err := d.Status(t.Context()); err == nil {
			break
		} else if i == 50 {
			b, _ := os.ReadFile(filepath.Join(l.dir, "ipmi_sim.log"))
			t.Fatalf("ipmi_sim does not answer: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return l
}

func (l *bmcLab) driver(password string) Driver {
	l.t.Helper()
	d, err := Open(Spec{Driver: "ipmi", Address: "127.0.0.1:" + strconv.Itoa(l.port), Username: labUser,
		Password: password, Timeout: 20 * time.Second})
	if err != nil {
		l.t.Fatal(err)
	}
	return d
}

// guestPID is the running QEMU guest's pid, 0 when none runs.
func (l *bmcLab) guestPID() int {
	b, err := os.ReadFile(filepath.Join(l.dir, "qemu.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// waitGuest waits up to 15 s for the guest's pid to satisfy ok.
func (l *bmcLab) waitGuest(ok func(pid int) bool) int {
	for range 150 {
		if pid := l.guestPID(); ok(pid) {
			return pid
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0
}

func (l *bmcLab) killGuest() {
	if pid := l.guestPID(); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// boots are the boot orders the guest was started with, oldest first.
func (l *bmcLab) boots() []string {
	b, _ := os.ReadFile(filepath.Join(l.dir, "boots.log"))
	return strings.Fields(string(b))
}

// TestIPMIDriverPowersARealGuestThroughIPMISim drives ipmi_sim with
// ipmitool as the ipmi driver does in production: the QEMU guest behind
// the simulated chassis really starts, restarts and stops, and "network
// boot once" reaches the guest's next start only.
func TestIPMIDriverPowersARealGuestThroughIPMISim(t *testing.T) {
	l := startBMC(t)
	d := l.driver(labPassword)
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
	first := l.guestPID()
	if st, err := d.Status(ctx); err != nil || st != On || first == 0 {
		t.Fatalf("after on: %s %v, guest pid %d", st, err, first)
	}
	if err := d.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	// A BMC cycles in the background (off, a pause, on), as real ones do.
	second := l.waitGuest(func(pid int) bool { return pid != 0 && pid != first })
	if second == 0 {
		t.Fatalf("cycle: guest pid %d, then none: want a new guest", first)
	}
	if got := strings.Join(l.boots(), ","); got != "once=n,c" {
		t.Errorf("the guest's boot orders %q, want the network once, then the disk (once=n,c)", got)
	}
	if err := d.Off(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := d.Status(ctx); err != nil || st != Off || l.guestPID() != 0 {
		t.Fatalf("after off: %s %v, guest pid %d", st, err, l.guestPID())
	}
	// Cycle of a machine that is off powers it on.
	if err := d.Cycle(ctx); err != nil || l.waitGuest(func(pid int) bool { return pid != 0 }) == 0 {
		t.Fatalf("cycle from off: %v, guest pid %d", err, l.guestPID())
	}
	d.Off(ctx)

	// A wrong password: no session, and the error never carries the
	// password (the right one or the wrong one).
	bad := l.driver("wrong-" + labPassword)
	_, err := bad.Status(ctx)
	if !errors.Is(err, ErrSession) || strings.Contains(err.Error(), labPassword) {
		t.Errorf("wrong password: %v, want ErrSession without the password", err)
	}
}

func TestIPMIDriverSaysWhenNoBMCAnswers(t *testing.T) {
	needTools(t, "ipmitool")
	d, err := Open(Spec{Driver: "ipmi", Address: "127.0.0.1:" + strconv.Itoa(freeUDPPort(t)), Username: "u", Password: "p",
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
