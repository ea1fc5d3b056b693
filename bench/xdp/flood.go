// Package xdpbench drives the XDP fast path under a DHCP storm: a flood of
// random-MAC PXE DISCOVERs sent raw (AF_PACKET) into a veth, for the end
// to end test in dataplane/xdp and for `make bench-xdp`.
package xdpbench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Discover is a broadcast PXE DHCPDISCOVER frame from mac (Ethernet source
// and chaddr), as EDK2 sends it: option 60 PXEClient, arch 7.
func Discover(mac net.HardwareAddr) []byte {
	b := make([]byte, 240, 300)
	b[0], b[1], b[2] = 1, 1, 6
	binary.BigEndian.PutUint16(b[10:], 0x8000) // broadcast flag
	copy(b[28:], mac)
	copy(b[236:], []byte{99, 130, 83, 99})
	b = append(b, 53, 1, 1, 57, 2, 0x05, 0xc0, 93, 2, 0, 7, 94, 3, 1, 3, 0)
	b = append(b, 60, 32)
	b = append(b, "PXEClient:Arch:00007:UNDI:003000"...)
	b = append(b, 255)
	f := make([]byte, 0, 14+20+8+len(b))
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	f = append(f, mac...)
	f = append(f, 0x08, 0x00)
	ip := []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(b)))
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	f = append(f, ip...)
	f = binary.BigEndian.AppendUint16(f, 68)
	f = binary.BigEndian.AppendUint16(f, 67)
	f = binary.BigEndian.AppendUint16(f, uint16(8+len(b)))
	f = binary.BigEndian.AppendUint16(f, 0) // no UDP checksum (RFC 768: allowed over IPv4)
	return append(f, b...)
}

// chaddrOff is where chaddr sits in a Discover frame.
const chaddrOff = 14 + 20 + 8 + 28

// Flood sends random-MAC Discover frames out of ifname as fast as it can
// until ctx is done, and returns how many it sent. do runs the socket's
// creation where the interface lives (pxeclient.Netns.Do); nil: here.
func Flood(ctx context.Context, ifname string, do func(func() error) error, sent *atomic.Uint64) error {
	if do == nil {
		do = func(f func() error) error { return f() }
	}
	var fd int
	err := do(func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // send only: protocol 0 receives nothing
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind to %s: %w", ifname, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("xdpbench: flood on %s: %w", ifname, err)
	}
	defer unix.Close(fd)
	f := Discover(net.HardwareAddr{0x02, 0, 0, 0, 0, 0})
	r := rand.New(rand.NewPCG(rand.Uint64(), 1))
	for ctx.Err() == nil {
		for range 64 {
			x := r.Uint64()
			mac := [6]byte{0x02 | byte(x)&0xfc, byte(x >> 8), byte(x >> 16), byte(x >> 24), byte(x >> 32), byte(x >> 40)}
			copy(f[6:12], mac[:])
			copy(f[chaddrOff:], mac[:])
			if _, err := unix.Write(fd, f); err != nil {
				if err == unix.ENOBUFS || err == unix.EAGAIN {
					continue
				}
				return fmt.Errorf("xdpbench: flood on %s: %w", ifname, err)
			}
			sent.Add(1)
		}
	}
	return nil
}
