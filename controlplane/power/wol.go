package power

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"syscall"
)

// EtherTypeWOL is Wake-on-LAN's EtherType.
const EtherTypeWOL = 0x0842

// wol wakes a machine with a magic packet: an Ethernet broadcast frame
// (EtherType 0x0842) whose payload is six 0xff bytes and the target's MAC
// sixteen times, sent from the boot server's interface on the target's
// segment. It powers on only; the machine's state cannot be read.
type wol struct {
	ifname string
	mac    net.HardwareAddr
	// do runs the socket's opening where the interface is (tests: in a
	// network namespace); nil: here.
	do func(func() error) error
}

func newWOL(spec Spec) (*wol, error) {
	mac, err := net.ParseMAC(spec.MAC)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("%w: wol needs the target's Ethernet MAC (got %q)", ErrSpec, spec.MAC)
	}
	if spec.Interface == "" {
		return nil, fmt.Errorf("%w: wol needs the boot server's interface on the target's segment", ErrSpec)
	}
	return &wol{ifname: spec.Interface, mac: mac}, nil
}

// MagicPacket is the Wake-on-LAN payload for mac.
func MagicPacket(mac net.HardwareAddr) []byte {
	p := bytes.Repeat([]byte{0xff}, 6)
	for range 16 {
		p = append(p, mac...)
	}
	return p
}

// On sends the magic packet three times (a switch may drop the first
// while it learns; NICs wake on any of them).
func (d *wol) On(ctx context.Context) error {
	var fd int
	var ifc *net.Interface
	open := func() error {
		var err error
		if ifc, err = net.InterfaceByName(d.ifname); err != nil {
			return err
		}
		fd, err = syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(EtherTypeWOL)))
		if err != nil {
			return fmt.Errorf("raw socket (needs CAP_NET_RAW): %w", err)
		}
		if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(EtherTypeWOL), Ifindex: ifc.Index}); err != nil {
			syscall.Close(fd)
			return err
		}
		return nil
	}
	do := d.do
	if do == nil {
		do = func(f func() error) error { return f() }
	}
	if err := do(open); err != nil {
		return fmt.Errorf("power: wol on %s: %w", d.ifname, err)
	}
	defer syscall.Close(fd)
	frame := append(append([]byte{}, broadcast...), ifc.HardwareAddr...)
	frame = append(frame, byte(EtherTypeWOL>>8), byte(EtherTypeWOL&0xff))
	frame = append(frame, MagicPacket(d.mac)...)
	to := &syscall.SockaddrLinklayer{Protocol: htons(EtherTypeWOL), Ifindex: ifc.Index, Halen: 6}
	copy(to.Addr[:], broadcast)
	for range 3 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := syscall.Sendto(fd, frame, 0, to); err != nil {
			return fmt.Errorf("power: wol on %s: %w", d.ifname, err)
		}
	}
	return nil
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Off, Cycle and NetworkBootOnce cannot be done by a packet: the machine
// is powered off by an operator (or its OS); cycling needs a BMC.
func (d *wol) Off(context.Context) error { return fmt.Errorf("%w: wol powers on only", ErrUnsupported) }
func (d *wol) Cycle(ctx context.Context) error {
	return fmt.Errorf("%w: wol powers on only (On wakes a machine that is off)", ErrUnsupported)
}
func (d *wol) Status(context.Context) (State, error) { return Unknown, nil }
func (d *wol) NetworkBootOnce(context.Context) error {
	return fmt.Errorf("%w: wol sets no boot device (boot network first)", ErrUnsupported)
}
