package lab

import "testing"

func TestSNMPUDPParse(t *testing.T) {
	s, ok := ParseSNMPUDP("Ip: a b\nIp: 1 2\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\nUdp: 10 1 3 7 3\n")
	if !ok || s != (UDPStats{InDatagrams: 10, InErrors: 3, RcvbufErrors: 3}) {
		t.Errorf("got %+v, %v", s, ok)
	}
}
