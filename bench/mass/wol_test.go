package mass

import (
	"net"
	"testing"

	"osim/controlplane/power"
)

// The listener wakes the machine a magic frame names, and only on a
// well-formed one.
func TestMagicMAC(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0xbe, 0x01, 0x02}
	frame := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x42}, power.MagicPacket(mac)...)
	if got, ok := magicMAC(frame); !ok || got.String() != mac.String() {
		t.Fatalf("magicMAC = %v %v, want %v", got, ok, mac)
	}
	bad := append([]byte{}, frame...)
	bad[14+6+16*6-1] ^= 1 // the last repetition differs
	wrongType := append([]byte{}, frame...)
	wrongType[13] = 0x00
	for name, f := range map[string][]byte{"short": frame[:100], "a repetition differs": bad, "not 0x0842": wrongType} {
		if got, ok := magicMAC(f); ok {
			t.Errorf("%s: woke %v", name, got)
		}
	}
}
