package bootd

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"time"

	"osim/dataplane/dhcp"
	"osim/dataplane/httpboot"
)

// leasedAddr tells httpboot which address a MAC holds a running lease on,
// so that an installer's status token is accepted from that address only.
func leasedAddr(leases *dhcp.BadgerLeases) httpboot.LeasesFunc {
	return func(_ context.Context, mac net.HardwareAddr) (addr netip.Addr, ok bool) {
		now := time.Now()
		_ = leases.View(func(tx dhcp.LeaseTx) error {
			ip, found, err := tx.ByMAC(mac)
			if err != nil || !found {
				return err
			}
			l, found, err := tx.Get(ip)
			if err != nil || !found {
				return err
			}
			if l.State == dhcp.LeaseBound && l.Active(now) && bytes.Equal(l.MAC, mac) {
				addr, ok = ip, true
			}
			return nil
		})
		return addr, ok
	}
}
