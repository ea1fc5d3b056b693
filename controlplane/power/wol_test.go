package power

import (
	"bytes"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"osim/internal/pxeclient"
	"osim/internal/testlab"
)

// The wol driver's magic packet, captured on the far end of a veth pair
// (two network namespaces this test makes): an Ethernet broadcast of
// EtherType 0x0842 carrying six 0xff bytes and the target's MAC sixteen
// times, sent three times.
func TestWOLSendsTheMagicPacketOnTheTargetsSegment(t *testing.T) {
	testlab.RequireRoot(t, "the wake-on-LAN capture uses network namespaces")
	p := testlab.NewTestPair(t, testlab.PairSpec{Prefix: "osimwol", ServerIf: "wols", ClientIf: "wolc",
		ServerAddr: netip.MustParsePrefix("10.211.0.1/30"), ClientAddr: netip.MustParsePrefix("10.211.0.2/30")}, "wake-on-LAN")
	server, err := pxeclient.OpenNetns("/run/netns/" + p.Server)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client, err := pxeclient.OpenNetns("/run/netns/" + p.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// The capture: a raw socket for EtherType 0x0842 on the target's end.
	var cap int
	if err := client.Do(func() error {
		ifc, err := net.InterfaceByName("wolc")
		if err != nil {
			return err
		}
		if cap, err = syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(EtherTypeWOL))); err != nil {
			return err
		}
		return syscall.Bind(cap, &syscall.SockaddrLinklayer{Protocol: htons(EtherTypeWOL), Ifindex: ifc.Index})
	}); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(cap)
	tv := syscall.NsecToTimeval(int64(3 * time.Second))
	syscall.SetsockoptTimeval(cap, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)

	target := "52:54:00:77:01:02"
	d, err := Open(Spec{Driver: "wol", MAC: target, Interface: "wols"})
	if err != nil {
		t.Fatal(err)
	}
	d.(*wol).do = server.Do
	if err := d.On(t.Context()); err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC(target)
	want := MagicPacket(mac)
	if len(want) != 102 || !bytes.Equal(want[:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
		t.Fatalf("magic packet %x", want)
	}
	buf := make([]byte, 1600)
	for i := range 3 {
		n, _, err := syscall.Recvfrom(cap, buf, 0)
		if err != nil {
			t.Fatalf("frame %d not captured: %v", i+1, err)
		}
		f := buf[:n]
		if n < 14+102 || !bytes.Equal(f[:6], broadcast) || f[12] != 0x08 || f[13] != 0x42 || !bytes.Equal(f[14:14+102], want) {
			t.Fatalf("frame %d: % x", i+1, f)
		}
	}
	// It powers on only.
	if err := d.Off(t.Context()); err == nil {
		t.Error("wol powered off")
	}
	if st, _ := d.Status(t.Context()); st != Unknown {
		t.Errorf("status %s, want unknown", st)
	}
	for _, bad := range []Spec{{Driver: "wol", Interface: "eth0"}, {Driver: "wol", MAC: target}, {Driver: "wol", MAC: "zz", Interface: "eth0"}} {
		if _, err := Open(bad); err == nil {
			t.Errorf("%+v opened", bad)
		}
	}
}
