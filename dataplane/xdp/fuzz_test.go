package xdp

import (
	"testing"

	"osim/dataplane/dhcp"
)

// pxeLike is what dhcp.IsPXE accepts: a PXE or HTTP vendor class.
func pxeLike(c Class) bool { return c == ClassPXE || c == ClassHTTP || c == ClassIPXE }

// TestAgreesWithIsPXE: the classifier extends dhcp.IsPXE (option 77 on
// top), so on the DHCP port it must call PXE exactly what IsPXE does.
func TestAgreesWithIsPXE(t *testing.T) {
	for _, tc := range classTable(t) {
		c, _, _ := ClassifyFrame(tc.frame, testPorts)
		if c == ClassOther || len(tc.frame) < 42 || tc.frame[36] != 0 || tc.frame[37] != 67 {
			continue
		}
		// untagged, no IP options in these: the payload starts at 42
		if tc.frame[12] != 8 || tc.frame[14] != 0x45 {
			continue
		}
		if got, want := pxeLike(c), dhcp.IsPXE(tc.frame[42:]); got != want {
			t.Errorf("%s: class %s, dhcp.IsPXE %v", tc.name, c, want)
		}
	}
}

func FuzzClassifyDatagram(f *testing.F) {
	for _, tc := range classTable(f) {
		if len(tc.frame) > 42 {
			f.Add(tc.frame[42:])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, _, _ := ClassifyDatagram(b, 67, DefaultPorts)
		if pxeLike(c) != dhcp.IsPXE(b) {
			t.Fatalf("class %s, dhcp.IsPXE %v for % x", c, dhcp.IsPXE(b), b)
		}
	})
}
