// Package bmclab runs a real BMC for tests: OpenIPMI's ipmi_sim speaking
// IPMI v2.0 LAN on loopback, whose chassis powers a QEMU guest.
package bmclab

import (
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

	"osim/internal/testlab"
)

// Lab is a BMC for tests: OpenIPMI's ipmi_sim (Debian's openipmi) on a
// loopback UDP port, speaking real IPMI v2.0 LAN to ipmitool. Its
// chassis_control hook is the machine's power wiring: a script (written
// here) that starts and stops a QEMU guest and passes the boot device on
// to it (-boot once=n after "chassis bootdev pxe").
type Lab struct {
	t *testing.T
	// Dir holds the simulator's files and the guest's boots.log.
	Dir string
	// Port is the BMC's UDP port on 127.0.0.1.
	Port int
	sim  *exec.Cmd
}

// The BMC's admin login.
const User, Password = "osim", "s3cret-bmc-pw"

// chassisScript is ipmi_sim's chassis control program (its protocol:
// "<dev> get power boot" prints "power:1"/"boot:pxe"; "<dev> set power 1|0",
// "set reset 1", "set boot pxe|default|none"). The machine is a QEMU/TCG
// process with the arguments in machine.args (by default no disk, no NIC:
// its power is what matters); "bootdev pxe" starts it with -boot once=n,
// which SeaBIOS honours for that boot only.
const chassisScript = `#!/bin/sh
dir=%[1]q
dev=$1; op=$2; shift 2
alive() { [ -f "$dir/qemu.pid" ] && kill -0 "$(cat "$dir/qemu.pid")" 2>/dev/null; }
start() {
	boot=c
	if [ "$(cat "$dir/bootnext" 2>/dev/null)" = pxe ]; then boot=once=n; echo default > "$dir/bootnext"; fi
	echo "$boot" >> "$dir/boots.log"
	# shellcheck disable=SC2046
	qemu-system-x86_64 -accel tcg $(cat "$dir/machine.args") -boot "$boot" -pidfile "$dir/qemu.pid" -daemonize
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

// NeedTools skips t (fails it under CI=true) without tools.
func NeedTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testlab.Unavailable(t, "needs %s (apt-get install openipmi ipmitool qemu-system-x86)", tool)
		}
	}
}

// FreeUDPPort is a UDP port on 127.0.0.1 that was free a moment ago.
func FreeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Options shape a Lab.
type Options struct {
	// NS runs ipmi_sim, and so the guest, inside a test's network
	// namespace (its BMC answers on that namespace's loopback); nil: here.
	NS *testlab.NS
	// Machine is the guest's QEMU arguments after -accel tcg, words
	// without spaces (disk, NIC, firmware, serial); nil: a 32 MiB machine
	// with no devices and its serial console in Dir/serial.log.
	Machine []string
}

// Start runs ipmi_sim for t (stopped, with its guest, when t ends).
func Start(t *testing.T) *Lab { return StartWith(t, Options{}) }

// StartWith is Start as o says.
func StartWith(t *testing.T, o Options) *Lab {
	t.Helper()
	NeedTools(t, "ipmi_sim", "ipmitool", "qemu-system-x86_64")
	l := &Lab{t: t, Dir: t.TempDir(), Port: FreeUDPPort(t)}
	script := filepath.Join(l.Dir, "chassis.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(chassisScript, l.Dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	machine := o.Machine
	if machine == nil {
		machine = []string{"-m", "32", "-nodefaults", "-no-user-config", "-display", "none", "-serial", "file:" + filepath.Join(l.Dir, "serial.log")}
	}
	for _, w := range machine {
		if strings.ContainsAny(w, " \t\n") {
			t.Fatalf("bmclab: machine argument %q has a space", w)
		}
	}
	if err := os.WriteFile(filepath.Join(l.Dir, "machine.args"), []byte(strings.Join(machine, " ")), 0o644); err != nil {
		t.Fatal(err)
	}
	command := exec.Command
	if o.NS != nil {
		command = func(name string, arg ...string) *exec.Cmd { return o.NS.Command(append([]string{name}, arg...)...) }
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
`, l.Port, script, User, Password)
	emu := "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n"
	for name, body := range map[string]string{"lan.conf": conf, "bmc.emu": emu} {
		if err := os.WriteFile(filepath.Join(l.Dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(l.Dir, "state"), 0o755)
	log, _ := os.Create(filepath.Join(l.Dir, "ipmi_sim.log"))
	l.sim = command("ipmi_sim", "-c", "lan.conf", "-f", "bmc.emu", "-s", filepath.Join(l.Dir, "state"), "-n")
	l.sim.Dir, l.sim.Stdout, l.sim.Stderr = l.Dir, log, log
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
	for i := 0; ; i++ {
		cmd := command("ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", strconv.Itoa(l.Port),
			"-U", User, "-P", Password, "chassis", "power", "status")
		if cmd.Run() == nil {
			break
		} else if i == 50 {
			b, _ := os.ReadFile(filepath.Join(l.Dir, "ipmi_sim.log"))
			t.Fatalf("ipmi_sim does not answer\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return l
}

// GuestPID is the running QEMU guest's pid, 0 when none runs.
func (l *Lab) GuestPID() int {
	b, err := os.ReadFile(filepath.Join(l.Dir, "qemu.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// WaitGuest waits up to 15 s for the guest's pid to satisfy ok.
func (l *Lab) WaitGuest(ok func(pid int) bool) int {
	for range 150 {
		if pid := l.GuestPID(); ok(pid) {
			return pid
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0
}

func (l *Lab) killGuest() {
	if pid := l.GuestPID(); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Boots are the boot orders the guest was started with, oldest first.
func (l *Lab) Boots() []string {
	b, _ := os.ReadFile(filepath.Join(l.Dir, "boots.log"))
	return strings.Fields(string(b))
}
