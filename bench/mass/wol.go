package mass

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"osim/controlplane/power"
)

// wolListener is the simulated machines' Wake-on-LAN: one raw socket on
// the client namespace's interface receives the magic frames osim-bootd's
// wol driver sends, and wakes the machine whose MAC a frame names, as a
// NIC with WoL armed does for its own machine.
type wolListener struct {
	fd      int
	stopped atomic.Bool
	done    chan struct{}
	frames  atomic.Int64 // magic frames received
	bad     atomic.Int64 // frames of the EtherType that were not magic
}

// listenWOL opens the socket with do (inside the client namespace) and
// calls wake with each magic frame's MAC until close.
func listenWOL(do func(func() error) error, ifname string, wake func(net.HardwareAddr)) (*wolListener, error) {
	l := &wolListener{done: make(chan struct{})}
	err := do(func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(power.EtherTypeWOL>>8 | power.EtherTypeWOL<<8&0xff00)
		if l.fd, err = syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, proto); err != nil {
			return err
		}
		if err := syscall.Bind(l.fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifc.Index}); err != nil {
			syscall.Close(l.fd)
			return err
		}
		// A read wakes every 200 ms to see whether the listener closed.
		tv := syscall.NsecToTimeval(int64(200 * time.Millisecond))
		return syscall.SetsockoptTimeval(l.fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		return nil, fmt.Errorf("mass: wake-on-LAN socket on %s: %w", ifname, err)
	}
	go l.run(wake)
	return l, nil
}

func (l *wolListener) run(wake func(net.HardwareAddr)) {
	defer close(l.done)
	buf := make([]byte, 1600)
	for !l.stopped.Load() {
		n, _, err := syscall.Recvfrom(l.fd, buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		if mac, ok := magicMAC(buf[:n]); ok {
			l.frames.Add(1)
			wake(mac)
		} else {
			l.bad.Add(1)
		}
	}
}

// magicMAC answers the MAC an Ethernet frame's magic packet names.
func magicMAC(f []byte) (net.HardwareAddr, bool) {
	const hdr = 14
	if len(f) < hdr+102 || f[12] != 0x08 || f[13] != 0x42 {
		return nil, false
	}
	mac := net.HardwareAddr(bytes.Clone(f[hdr+6 : hdr+12]))
	return mac, bytes.Equal(f[hdr:hdr+102], power.MagicPacket(mac))
}

func (l *wolListener) close() {
	l.stopped.Store(true)
	<-l.done
	syscall.Close(l.fd)
}
