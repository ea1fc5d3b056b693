package harness

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// machineNote is the line that says where the figures come from.
func machineNote() string {
	var u unix.Utsname
	kernel := "?"
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Release[:])
	}
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("nproc %d, Linux %s, %s", runtime.NumCPU(), kernel, cpu)
}

// loadNote is the load average when the run starts: the bench shares two
// cores with whatever else runs, and a busy machine skews every figure.
func loadNote() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load unknown"
	}
	if l, err := strconv.ParseFloat(f[0], 64); err == nil && l > 0.5 {
		slog.Warn("the machine is busy before the bench starts; figures will suffer", "loadavg1", l)
	}
	return "load " + strings.Join(f[:3], " ") + " at start"
}

// warnSystemServers logs TFTP servers running outside the bench (a
// tftpd-hpa service that its package's install started, say): they do not
// take the bench's ports, but they would compete for the CPU.
func warnSystemServers() {
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		switch name := strings.TrimSpace(string(b)); name {
		case "in.tftpd", "atftpd", "dnsmasq":
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			slog.Warn("a TFTP server not started by the bench is running; stop it for clean figures", "pid", pid, "name", name)
		}
	}
}
