package pxeclient

import (
	"bytes"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestBootServerRequestPicksTheFirstMenuItem(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  []byte // option 43 of the proxy offer; nil: absent
		want []byte
	}{
		{"no option 43", nil, nil},
		// osim-bootd: PXE_DISCOVERY_CONTROL 8, the boot file is in the offer.
		{"discovery control 8 only", []byte{6, 1, 8, 255}, nil},
		// dnsmasq 2.90 --pxe-service=x86PC,osim-bench,undionly.kpxe (captured).
		{"dnsmasq menu", []byte{6, 1, 3, 10, 4, 0, 'P', 'X', 'E', 8, 7, 0x80, 0, 1, 10, 78, 0, 1,
			9, 13, 0x80, 0, 10, 'o', 's', 'i', 'm', '-', 'b', 'e', 'n', 'c', 'h', 255}, []byte{71, 4, 0x80, 0, 0, 0, 255}},
		{"pad before the menu", []byte{0, 0, 9, 4, 0, 5, 1, 'x', 255}, []byte{71, 4, 0, 5, 0, 0, 255}},
		{"menu cut short", []byte{9, 13, 0x80, 0}, nil},
		{"menu item too short", []byte{9, 2, 0x80, 0, 255}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := dhcpv4.New()
			if err != nil {
				t.Fatal(err)
			}
			if tc.opt != nil {
				m.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, tc.opt))
			}
			if got := bootItem(m); !bytes.Equal(got, tc.want) {
				t.Errorf("bootItem = % x, want % x", got, tc.want)
			}
		})
	}
}
