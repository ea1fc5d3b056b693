package mass

import (
	"os"
	"strconv"
	"strings"
)

// UDPStats are a namespace's UDP counters from /proc/net/snmp.
type UDPStats struct {
	InDatagrams  int64 `json:"in_datagrams"`
	InErrors     int64 `json:"in_errors"`
	RcvbufErrors int64 `json:"rcvbuf_errors"`
}

func (a UDPStats) minus(b UDPStats) UDPStats {
	return UDPStats{a.InDatagrams - b.InDatagrams, a.InErrors - b.InErrors, a.RcvbufErrors - b.RcvbufErrors}
}

// serverUDP reads the server namespace's UDP counters (from a thread
// inside it: /proc/thread-self/net is that thread's namespace).
func (l *Lab) serverUDP() UDPStats {
	var s UDPStats
	l.ns.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		s = parseSNMPUDP(string(b))
		return nil
	})
	return s
}

func parseSNMPUDP(text string) UDPStats {
	var s UDPStats
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
				s.RcvbufErrors = v
			}
		}
		break
	}
	return s
}
