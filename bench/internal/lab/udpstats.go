package lab

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"osim/internal/pxeclient"
)

// UDPStats are a namespace's UDP counters from /proc/net/snmp.
// RcvbufErrors counts datagrams dropped because a socket's receive buffer
// was full: drops the socket's reader never saw.
type UDPStats struct {
	InDatagrams  int64 `json:"in_datagrams"`
	InErrors     int64 `json:"in_errors"`
	RcvbufErrors int64 `json:"rcvbuf_errors"`
}

// Minus is the change from b to a.
func (a UDPStats) Minus(b UDPStats) UDPStats {
	return UDPStats{a.InDatagrams - b.InDatagrams, a.InErrors - b.InErrors, a.RcvbufErrors - b.RcvbufErrors}
}

// NamespaceUDP reads the UDP counters of namespace ns (`ip netns exec`).
func NamespaceUDP(ns string) (UDPStats, error) {
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		return UDPStats{}, fmt.Errorf("lab: /proc/net/snmp in %s: %w", ns, err)
	}
	s, ok := ParseSNMPUDP(string(out))
	if !ok {
		return s, fmt.Errorf("lab: no Udp RcvbufErrors in /proc/net/snmp of %s", ns)
	}
	return s, nil
}

// ThreadUDP reads the UDP counters of the namespace n has entered, from
// its thread (/proc/thread-self/net is that thread's namespace).
func ThreadUDP(n *pxeclient.Netns) UDPStats {
	var s UDPStats
	n.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		s, _ = ParseSNMPUDP(string(b))
		return nil
	})
	return s
}

// ParseSNMPUDP reads the Udp lines of /proc/net/snmp; ok is false when
// they hold no RcvbufErrors.
func ParseSNMPUDP(text string) (s UDPStats, ok bool) {
	var head []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "Udp: ") {
			continue
		}
		f := strings.Fields(line)[1:]
		if head == nil {
			head = f
			continue
		}
		for i, h := range head {
			if i >= len(f) {
				break
			}
			v, _ := strconv.ParseInt(f[i], 10, 64)
			switch h {
			case "InDatagrams":
				s.InDatagrams = v
			case "InErrors":
				s.InErrors = v
			case "RcvbufErrors":
				s.RcvbufErrors, ok = v, true
			}
		}
		break
	}
	return s, ok
}
