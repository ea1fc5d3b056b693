// Package procstat reads what a server process tree costs from /proc: CPU
// time, peak memory, live sockets, threads and child processes. A tree is
// the process and all its descendants, so forking servers (tftpd-hpa) and
// threaded ones (atftpd) are measured alike.
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the times in /proc/PID/stat; Linux fixes it at 100
// for userspace whatever the kernel's own tick.
const userHZ = 100

// Tree lists pid and its live descendants, pid first.
func Tree(pid int) []int {
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", tree[i]))
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // the task ended meanwhile
			}
			for _, s := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(s); err == nil {
					tree = append(tree, c)
				}
			}
		}
	}
	return tree
}

// CPU is the CPU time of pid's tree so far: each live process's user and
// system time plus that of the children it has reaped (cutime, cstime).
// Children that ended unreaped, or were reaped by someone else, are lost.
func CPU(pid int) (time.Duration, error) {
	var ticks int64
	for i, p := range Tree(pid) {
		t, err := cpuTicks(p)
		if err != nil {
			if i == 0 {
				return 0, err
			}
			continue
		}
		ticks += t
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("procstat: stat of %d: %w", pid, err)
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("procstat: stat of %d: no ')' in %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, fmt.Errorf("procstat: stat of %d: %d fields", pid, len(f))
	}
	var sum int64
	for _, s := range f[11:15] { // utime stime cutime cstime (fields 14-17)
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("procstat: stat of %d: %q: %w", pid, s, err)
		}
		sum += v
	}
	return sum, nil
}

// statusKB returns a "kB" line of /proc/PID/status, e.g. VmHWM.
func statusKB(pid int, key string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("procstat: status of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("procstat: %s of %d: %w", key, pid, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("procstat: no %s in status of %d", key, pid)
}

// HWM is the peak resident set of pid itself (VmHWM), in bytes.
func HWM(pid int) (int64, error) {
	kb, err := statusKB(pid, "VmHWM")
	return kb << 10, err
}

// RSS is pid's resident set now, split into anonymous memory and
// file-backed mappings (mmapped databases count there), in bytes.
func RSS(pid int) (anon, file int64, err error) {
	if anon, err = statusKB(pid, "RssAnon"); err != nil {
		return 0, 0, err
	}
	file, err = statusKB(pid, "RssFile")
	return anon << 10, file << 10, err
}

// ResetHWM sets pid's VmHWM back to its current RSS, so the next HWM is
// the peak of what follows ("5" in clear_refs, proc(5)).
func ResetHWM(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("procstat: reset VmHWM of %d: %w", pid, err)
	}
	return nil
}

// TreePSS is the proportional set size of pid's tree in bytes: shared pages
// count once across the tree, so 1,000 forked children of one binary do not
// count the binary 1,000 times.
func TreePSS(pid int) int64 {
	var sum int64
	for _, p := range Tree(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Pss:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				sum += kb << 10
				break
			}
		}
	}
	return sum
}

// Load is what a tree holds open right now.
type Load struct {
	Procs, Threads, Sockets int
}

// Count returns the processes, threads and socket descriptors of pid's tree.
func Count(pid int) Load {
	var l Load
	for _, p := range Tree(pid) {
		l.Procs++
		if n, err := statusKB(p, "Threads"); err == nil {
			l.Threads += int(n)
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if t, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p, fd.Name())); err == nil && strings.HasPrefix(t, "socket:") {
				l.Sockets++
			}
		}
	}
	return l
}
