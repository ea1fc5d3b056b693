package main

import (
	"bufio"
	"errors"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// dropAmbientCaps empties the ambient capability set of every thread.
// The packaged unit gives osim-bootd CAP_NET_BIND_SERVICE, CAP_NET_ADMIN,
// CAP_NET_RAW and CAP_BPF as ambient capabilities (the only way to grant
// them to a non-root user), and a plain exec passes ambient capabilities
// on: ipmitool and virsh, which the power drivers run, would get them.
// Its own permitted and effective capabilities stay. A build with cgo
// cannot reach every thread (ENOTSUP); the packages build without it.
func dropAmbientCaps(log *slog.Logger) {
	amb := ambientCaps()
	if amb == "" || strings.Trim(amb, "0") == "" {
		return // none to drop
	}
	_, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0)
	if errno != 0 {
		what := "the power drivers' tools (ipmitool, virsh) inherit them"
		if errors.Is(errno, syscall.ENOTSUP) {
			what += "; build osim-bootd with CGO_ENABLED=0 (as make package does)"
		}
		log.Warn("ambient capabilities not dropped: "+what, "cap_amb", amb, "err", errno)
	}
}

// ambientCaps is CapAmb of /proc/self/status (hex), or "" if unknown.
func ambientCaps() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return ""
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), "CapAmb:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
