// Package netup brings the installer's NIC up: it waits for the interface
// with the MAC the machine booted from (or the first with carrier), sets
// it up, takes a DHCP lease (insomniacslk/dhcp nclient4) and installs the
// address and default route with rtnetlink (by hand over x/sys: two
// messages do not justify a dependency).
package netup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"golang.org/x/sys/unix"
)

// Lease is what the NIC got.
type Lease struct {
	Interface string
	Addr      net.IPNet
	Router    net.IP // nil without option 3
	DNS       []net.IP
}

// Up waits up to wait for the NIC, sets it up, asks DHCP and configures
// the lease. sysNet is /sys/class/net (for carrier).
func Up(ctx context.Context, mac string, wait time.Duration, sysNet string) (Lease, error) {
	ifc, err := findNIC(ctx, mac, wait, sysNet)
	if err != nil {
		return Lease{}, err
	}
	c, err := nclient4.New(ifc.Name, nclient4.WithTimeout(4*time.Second), nclient4.WithRetry(4))
	if err != nil {
		return Lease{}, fmt.Errorf("netup: DHCP on %s: %w", ifc.Name, err)
	}
	defer c.Close()
	var lease *nclient4.Lease
	for {
		lease, err = c.Request(ctx)
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return Lease{}, fmt.Errorf("netup: DHCP on %s: %w", ifc.Name, err)
	}
	ack := lease.ACK
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	l := Lease{Interface: ifc.Name, Addr: net.IPNet{IP: ack.YourIPAddr.To4(), Mask: mask}, DNS: ack.DNS()}
	if r := ack.Router(); len(r) > 0 {
		l.Router = r[0]
	}
	return l, Configure(ifc.Index, l)
}

// Configure installs l's address and default route on interface index.
func Configure(index int, l Lease) error {
	if err := AddAddr(index, l.Addr); err != nil {
		return err
	}
	if l.Router != nil {
		if err := AddDefaultRoute(index, l.Router); err != nil {
			return err
		}
	}
	if len(l.DNS) > 0 {
		var b strings.Builder
		for _, d := range l.DNS {
			fmt.Fprintf(&b, "nameserver %s\n", d)
		}
		os.WriteFile("/etc/resolv.conf", []byte(b.String()), 0o644) // best effort: osim.url is usually an address
	}
	return nil
}

// findNIC polls until the interface appears (its driver may still load).
func findNIC(ctx context.Context, mac string, wait time.Duration, sysNet string) (net.Interface, error) {
	deadline := time.Now().Add(wait)
	for {
		ifs, _ := net.Interfaces()
		for _, i := range ifs {
			if i.Flags&net.FlagLoopback != 0 {
				continue
			}
			if mac != "" && !strings.EqualFold(i.HardwareAddr.String(), mac) {
				continue
			}
			if err := SetUp(i.Name); err != nil {
				return i, err
			}
			if mac != "" || carrier(sysNet, i.Name) {
				return i, nil
			}
		}
		if time.Now().After(deadline) {
			if mac != "" {
				return net.Interface{}, fmt.Errorf("netup: no interface with MAC %s after %s", mac, wait)
			}
			return net.Interface{}, fmt.Errorf("netup: no interface with carrier after %s", wait)
		}
		select {
		case <-ctx.Done():
			return net.Interface{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func carrier(sysNet, name string) bool {
	b, _ := os.ReadFile(sysNet + "/" + name + "/carrier")
	return strings.TrimSpace(string(b)) == "1"
}

// SetUp sets IFF_UP on the interface.
func SetUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netup: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("netup: %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("netup: flags of %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("netup: setting %s up: %w", name, err)
	}
	return nil
}

// AddAddr adds an IPv4 address (RTM_NEWADDR); one already there is fine.
func AddAddr(index int, a net.IPNet) error {
	ip := a.IP.To4()
	if ip == nil {
		return fmt.Errorf("netup: %s is not IPv4", a.IP)
	}
	ones, _ := a.Mask.Size()
	msg := []byte{unix.AF_INET, byte(ones), 0, unix.RT_SCOPE_UNIVERSE, 0, 0, 0, 0}
	binary.NativeEndian.PutUint32(msg[4:], uint32(index))
	msg = attr(msg, unix.IFA_LOCAL, ip)
	msg = attr(msg, unix.IFA_ADDRESS, ip)
	if err := request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, msg); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("netup: adding %s to interface %d: %w", a.String(), index, err)
	}
	return nil
}

// AddDefaultRoute adds 0.0.0.0/0 via gw on interface index (RTM_NEWROUTE).
func AddDefaultRoute(index int, gw net.IP) error {
	msg := []byte{unix.AF_INET, 0, 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST, 0, 0, 0, 0}
	msg = attr(msg, unix.RTA_GATEWAY, gw.To4())
	oif := make([]byte, 4)
	binary.NativeEndian.PutUint32(oif, uint32(index))
	msg = attr(msg, unix.RTA_OIF, oif)
	if err := request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, msg); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("netup: default route via %s: %w", gw, err)
	}
	return nil
}

// attr appends an rtattr, padded to 4 bytes.
func attr(msg []byte, typ uint16, data []byte) []byte {
	h := make([]byte, 4)
	binary.NativeEndian.PutUint16(h, uint16(4+len(data)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	msg = append(append(msg, h...), data...)
	for len(msg)%4 != 0 {
		msg = append(msg, 0)
	}
	return msg
}

// request sends one rtnetlink request and reads its ack.
func request(typ, flags uint16, body []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	if n < unix.NLMSG_HDRLEN+4 || binary.NativeEndian.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return fmt.Errorf("netlink: unexpected answer (%d bytes)", n)
	}
	if code := int32(binary.NativeEndian.Uint32(buf[unix.NLMSG_HDRLEN:])); code != 0 {
		return unix.Errno(-code)
	}
	return nil
}
