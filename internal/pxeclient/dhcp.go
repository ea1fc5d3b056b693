package pxeclient

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

var bcast67 = &net.UDPAddr{IP: net.IPv4bcast, Port: 67}

// open68 binds 0.0.0.0:68 on the interface, as firmware does.
func (c *client) open68() (dhcpConn, error) {
	if c.cfg.Shared != nil {
		return c.cfg.Shared.attach(c.cfg.MAC)
	}
	var conn *net.UDPConn
	err := c.cfg.Do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = errors.Join(
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1),
					unix.BindToDevice(int(fd), c.cfg.Interface))
			})
			return errors.Join(err, serr)
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
		if err != nil {
			return err
		}
		conn = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bind 0.0.0.0:68 on %s: %w", c.cfg.Interface, err)
	}
	return conn, nil
}

// localAddr is the interface's first IPv4 address (set by the site's DHCP
// lease in proxy mode, or by OnLease in full mode).
func (c *client) localAddr() (netip.Addr, error) {
	if c.cfg.ClientIP.IsValid() {
		return c.cfg.ClientIP, nil
	}
	var a netip.Addr
	err := c.cfg.Do(func() error {
		ifc, err := net.InterfaceByName(c.cfg.Interface)
		if err != nil {
			return err
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return err
		}
		for _, ad := range addrs {
			if ipn, ok := ad.(*net.IPNet); ok {
				if v, ok := netip.AddrFromSlice(ipn.IP.To4()); ok && ipn.IP.To4() != nil {
					a = v
					return nil
				}
			}
		}
		return fmt.Errorf("no IPv4 address on %s", c.cfg.Interface)
	})
	return a, err
}

// packet builds a request with the firmware's options.
func (c *client) packet(fw *Firmware, mt dhcpv4.MessageType, xid dhcpv4.TransactionID, mods ...dhcpv4.Modifier) (*dhcpv4.DHCPv4, error) {
	arch := binary.BigEndian.AppendUint16(nil, fw.Arch)
	msz := binary.BigEndian.AppendUint16(nil, fw.MaxMsgSize)
	base := []dhcpv4.Modifier{
		dhcpv4.WithHwAddr(c.cfg.MAC),
		dhcpv4.WithTransactionID(xid),
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithGeneric(dhcpv4.OptionMaximumDHCPMessageSize, msz),
		dhcpv4.WithGeneric(dhcpv4.OptionParameterRequestList, fw.RequestList),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, arch),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, fw.NDI[:]),
		dhcpv4.WithGeneric(dhcpv4.OptionClassIdentifier, []byte(fw.VendorClass)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, make([]byte, 17)), // type 0, zero GUID
	}
	if fw.UserClass != "" {
		base = append(base, dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte(fw.UserClass)))
	}
	return dhcpv4.New(append(base, mods...)...)
}

// collect reads replies to xid of the wanted types until deadline; after the
// first one it waits at most window more (0: returns at the first).
func collect(ctx context.Context, conn dhcpConn, xid dhcpv4.TransactionID, deadline time.Time, window time.Duration, want ...dhcpv4.MessageType) ([]*dhcpv4.DHCPv4, error) {
	var got []*dhcpv4.DHCPv4
	buf := make([]byte, 1500)
	// Set only when it moves: on a SharedDHCP view each call wakes the
	// reader and restarts its timer.
	conn.SetReadDeadline(deadline)
	for {
		if err := ctx.Err(); err != nil {
			return got, err
		}
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return got, ctx.Err()
			}
			return got, err
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply || m.TransactionID != xid {
			continue
		}
		for _, w := range want {
			if m.MessageType() == w {
				if len(got) == 0 && window >= 0 {
					if d := time.Now().Add(window); d.Before(deadline) {
						deadline = d
						conn.SetReadDeadline(deadline)
					}
				}
				got = append(got, m)
				break
			}
		}
		if len(got) > 0 && window == 0 {
			return got, nil
		}
	}
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip.To4())
	return a
}

func bootFile(m *dhcpv4.DHCPv4) string {
	if f := m.BootFileNameOption(); f != "" {
		return f
	}
	return m.BootFileName
}

func isProxyOffer(m *dhcpv4.DHCPv4) bool {
	y := addrOf(m.YourIPAddr)
	return (!y.IsValid() || y.IsUnspecified()) && strings.HasPrefix(m.ClassIdentifier(), "PXEClient")
}

// exchange sends p to dst and waits per the schedule for one reply of the
// wanted types, sending again after each wait.
func (c *client) exchange(ctx context.Context, conn dhcpConn, p *dhcpv4.DHCPv4, dst *net.UDPAddr, want ...dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	for _, wait := range c.cfg.Schedule {
		if _, err := conn.WriteToUDP(p.ToBytes(), dst); err != nil {
			return nil, fmt.Errorf("send %s to %s: %w", p.MessageType(), dst, err)
		}
		got, err := collect(ctx, conn, p.TransactionID, time.Now().Add(wait), 0, want...)
		if len(got) > 0 {
			return got[0], nil
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no %v from %s after %d tries", want, dst, len(c.cfg.Schedule))
}

// dhcp runs one stage's DHCP: DISCOVER and offers, REQUEST/ACK for an
// address offer, and the proxyDHCP request on port 4011.
func (c *client) dhcp(ctx context.Context, fw *Firmware) (*Stage, error) {
	conn, err := c.open68()
	if err != nil {
		return nil, &PhaseError{Stage: fw.Name, Phase: PhaseDiscover, Err: err}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var xid dhcpv4.TransactionID
	rand.Read(xid[:])
	st := Stage{Firmware: fw.Name, XID: xid}
	var offers []*dhcpv4.DHCPv4
	err = c.timed(fw, PhaseDiscover, func() error {
		disc, err := c.packet(fw, dhcpv4.MessageTypeDiscover, xid)
		if err != nil {
			return err
		}
		for _, wait := range c.cfg.Schedule {
			if _, err := conn.WriteToUDP(disc.ToBytes(), bcast67); err != nil {
				return fmt.Errorf("send DISCOVER: %w", err)
			}
			offers, err = collect(ctx, conn, xid, time.Now().Add(wait), c.cfg.OfferWindow, dhcpv4.MessageTypeOffer)
			if len(offers) > 0 {
				return nil
			}
			if err != nil {
				return err
			}
		}
		return fmt.Errorf("%w after %d DISCOVERs (xid %s)", ErrNoOffer, len(c.cfg.Schedule), xid)
	})
	if err != nil {
		return nil, err
	}
	var addrOffer, proxyOffer *dhcpv4.DHCPv4
	for _, o := range offers {
		st.Offers = append(st.Offers, Offer{ServerID: addrOf(o.ServerIdentifier()), Next: addrOf(o.ServerIPAddr),
			YourIP: addrOf(o.YourIPAddr), Proxy: isProxyOffer(o), BootFile: bootFile(o)})
		if isProxyOffer(o) {
			if proxyOffer == nil {
				proxyOffer = o
			}
		} else if addrOffer == nil {
			addrOffer = o
		}
	}
	if addrOffer != nil { // RFC 2131 §3.1 step 3: REQUEST the offered address
		err = c.timed(fw, PhaseRequest, func() error {
			req, err := c.packet(fw, dhcpv4.MessageTypeRequest, xid,
				dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(addrOffer.YourIPAddr)),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(addrOffer.ServerIdentifier())))
			if err != nil {
				return err
			}
			ack, err := c.exchange(ctx, conn, req, bcast67, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
			if err != nil {
				return err
			}
			if ack.MessageType() == dhcpv4.MessageTypeNak {
				return fmt.Errorf("NAK from %s: %s", ack.ServerIdentifier(), ack.Message())
			}
			st.Lease = addrOf(ack.YourIPAddr)
			if c.cfg.BindLease {
				c.bind = st.Lease
			}
			if f := bootFile(ack); f != "" {
				st.BootFile, st.Server = f, addrOf(ack.ServerIPAddr)
			}
			if c.cfg.OnLease != nil {
				return c.cfg.OnLease(ack)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if proxyOffer != nil { // PXE 2.1 §2.2 steps 5-6: ask the boot server on 4011
		err = c.timed(fw, PhaseProxy, func() error {
			server := addrOf(proxyOffer.ServerIdentifier())
			if !server.IsValid() || server.IsUnspecified() {
				server = addrOf(proxyOffer.ServerIPAddr)
			}
			local, err := c.localAddr()
			if err != nil {
				return err
			}
			mods := []dhcpv4.Modifier{dhcpv4.WithClientIP(local.AsSlice())}
			if item := bootItem(proxyOffer); item != nil {
				mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, item))
			}
			req, err := c.packet(fw, dhcpv4.MessageTypeRequest, xid, mods...)
			if err != nil {
				return err
			}
			dst := &net.UDPAddr{IP: server.AsSlice(), Port: 4011}
			ack, err := c.exchange(ctx, conn, req, dst, dhcpv4.MessageTypeAck)
			if err != nil {
				return err
			}
			f := bootFile(ack)
			if f == "" {
				return fmt.Errorf("ACK from %s names no boot file", dst)
			}
			st.ProxyACK = netip.AddrPortFrom(server, 4011)
			st.BootFile = f
			st.Server = addrOf(ack.ServerIPAddr)
			if !st.Server.IsValid() || st.Server.IsUnspecified() {
				st.Server = server
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if st.BootFile == "" {
		return nil, &PhaseError{Stage: fw.Name, Phase: PhaseDiscover, Err: errors.New("no offer names a boot file")}
	}
	c.res.Stages = append(c.res.Stages, st)
	return &st, nil
}
