package xdp

import (
	"bufio"
	"compress/gzip"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// jiffyNanos is the kernel's tick in ns (1e9 / CONFIG_HZ), read once from
// the kernel's config (/proc/config.gz, else /boot/config-<release>), or 0
// when neither tells or HZ does not divide 1e9: the BPF program then takes
// its clock from bpf_ktime_get_coarse_ns instead of jiffies (the same
// ticks, but a helper call where jiffies is a load; see now_ns in
// xdp_pxe.c).
var jiffyNanos = sync.OnceValue(func() uint32 {
	var uts unix.Utsname
	release := ""
	if unix.Uname(&uts) == nil {
		release = unix.ByteSliceToString(uts.Release[:])
	}
	for _, path := range []string{"/proc/config.gz", "/boot/config-" + release} {
		if hz := configHZ(path); hz > 0 && 1_000_000_000%hz == 0 {
			return uint32(1_000_000_000 / hz)
		}
	}
	return 0
})

// configHZ reads CONFIG_HZ from a kernel config file (gzipped if its name
// says so); 0 if it cannot.
func configHZ(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			return 0
		}
		defer z.Close()
		r = z
	}
	s := bufio.NewScanner(r)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CONFIG_HZ="); ok {
			hz, err := strconv.Atoi(v)
			if err != nil || hz <= 0 {
				return 0
			}
			return hz
		}
	}
	return 0
}
