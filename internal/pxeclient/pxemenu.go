package pxeclient

import "github.com/insomniacslk/dhcp/dhcpv4"

// PXE vendor sub-options of option 43 (PXE 2.1 §2.4, table 2-1).
const (
	pxeBootMenu = 9  // PXE_BOOT_MENU: type (2), length (1), description
	pxeBootItem = 71 // PXE_BOOT_ITEM: type (2), layer (2)
)

// bootItem is the option 43 a PXE ROM puts in its boot server request
// when the proxy offer carried a boot menu: the first menu item, layer 0,
// which is what the firmware picks when the menu prompt times out at once
// (PXE 2.1 §2.2.1, steps 5-6). nil when the offer has no menu (as with
// PXE_DISCOVERY_CONTROL 8: the boot file is in the offer itself).
func bootItem(offer *dhcpv4.DHCPv4) []byte {
	v := offer.Options.Get(dhcpv4.OptionVendorSpecificInformation)
	for i := 0; i+1 < len(v); {
		code, l := v[i], int(v[i+1])
		if code == 0 {
			i++
			continue
		}
		if code == 255 || i+2+l > len(v) {
			return nil
		}
		if code == pxeBootMenu && l >= 3 {
			return []byte{pxeBootItem, 4, v[i+2], v[i+3], 0, 0, 255}
		}
		i += 2 + l
	}
	return nil
}
