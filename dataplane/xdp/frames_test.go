package xdp

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"osim/internal/pxeclient"
)

// frame wraps a UDP payload in UDP, IPv4 (with ipOpts, a multiple of 4
// bytes) and Ethernet with the given VLAN tags (TPIDs).
func frame(payload []byte, dport uint16, tags []uint16, ipOpts []byte) []byte {
	f := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc}
	for _, tpid := range tags {
		f = binary.BigEndian.AppendUint16(f, tpid)
		f = binary.BigEndian.AppendUint16(f, 42)
	}
	f = binary.BigEndian.AppendUint16(f, 0x0800)
	ihl := 20 + len(ipOpts)
	ip := make([]byte, ihl)
	ip[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(ip[2:], uint16(ihl+8+len(payload)))
	ip[8], ip[9] = 64, 17
	copy(ip[16:], []byte{255, 255, 255, 255})
	copy(ip[20:], ipOpts)
	var sum uint32
	for i := 0; i < ihl; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	f = append(f, ip...)
	f = binary.BigEndian.AppendUint16(f, 68)
	f = binary.BigEndian.AppendUint16(f, dport)
	f = binary.BigEndian.AppendUint16(f, uint16(8+len(payload)))
	f = binary.BigEndian.AppendUint16(f, 0)
	return append(f, payload...)
}

type opt struct {
	code byte
	val  []byte
}

// bootp builds a BOOTREQUEST from chaddr with the raw options given
// (no end option unless listed).
func bootp(mac net.HardwareAddr, opts ...opt) []byte {
	b := make([]byte, 240)
	b[0], b[1], b[2] = 1, 1, 6
	binary.BigEndian.PutUint32(b[4:], 0x12345678)
	copy(b[28:], mac)
	copy(b[236:], []byte{99, 130, 83, 99})
	for _, o := range opts {
		if o.code == 0 || o.code == 255 {
			b = append(b, o.code)
			continue
		}
		b = append(b, o.code, byte(len(o.val)))
		b = append(b, o.val...)
	}
	return b
}

func end() opt                    { return opt{code: 255} }
func pad() opt                    { return opt{code: 0} }
func vendor(s string) opt         { return opt{60, []byte(s)} }
func userClass(s string) opt      { return opt{77, []byte(s)} }
func msgType(t byte) opt          { return opt{53, []byte{t}} }
func filler(code byte, n int) opt { return opt{code, make([]byte, n)} }

// firmwareDISCOVER is the DISCOVER a recorded firmware sends (bench/lab/README.md):
// its options in the order pxeclient sends them.
func firmwareDISCOVER(t testing.TB, fw pxeclient.Firmware, mac net.HardwareAddr) []byte {
	t.Helper()
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(fw.MaxMsgSize)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, binary.BigEndian.AppendUint16(nil, fw.Arch)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, fw.NDI[:]),
		dhcpv4.WithGeneric(dhcpv4.OptionClassIdentifier, []byte(fw.VendorClass)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, make([]byte, 17)),
		dhcpv4.WithGeneric(dhcpv4.OptionParameterRequestList, fw.RequestList),
	}
	if fw.UserClass != "" {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte(fw.UserClass)))
	}
	m, err := dhcpv4.New(append(mods, dhcpv4.WithHwAddr(mac))...)
	if err != nil {
		t.Fatal(err)
	}
	return m.ToBytes()
}

var (
	macA = net.HardwareAddr{0x52, 0x54, 0x00, 0x11, 0x22, 0x01}
	macB = net.HardwareAddr{0x52, 0x54, 0x00, 0x11, 0x22, 0x02}
)

// longList is option 60 after twenty other options.
func longList(mac net.HardwareAddr, vc string) []byte {
	opts := []opt{msgType(1)}
	for i := range 19 {
		opts = append(opts, filler(byte(100+i), 6))
	}
	return bootp(mac, append(opts, vendor(vc), end())...)
}

type tcase struct {
	name  string
	frame []byte
	class Class
}

// classTable is the one table of packets the Go classifier and the BPF
// program must agree on (TestClassifierTable, TestParityWithBPF).
func classTable(t testing.TB) []tcase {
	p := DefaultPorts
	p.TFTPLow, p.TFTPHigh = 50000, 50100
	_ = p
	pxe := bootp(macA, msgType(1), vendor("PXEClient:Arch:00007:UNDI:003000"), end())
	trunc := func(b []byte, n int) []byte { return b[:n] }
	over312 := []opt{msgType(1)}
	for range 6 {
		over312 = append(over312, filler(120, 50))
	}
	cases := []tcase{
		{"EDK2 UEFI x64 DISCOVER (recorded)", frame(firmwareDISCOVER(t, pxeclient.EDK2x64, macA), 67, nil, nil), ClassPXE},
		{"iPXE snponly.efi DISCOVER (recorded)", frame(firmwareDISCOVER(t, pxeclient.IPXESNP, macA), 67, nil, nil), ClassIPXE},
		{"iPXE BIOS ROM DISCOVER (recorded)", frame(firmwareDISCOVER(t, pxeclient.IPXEBIOS, macA), 67, nil, nil), ClassIPXE},
		{"BIOS PXE ROM DISCOVER", frame(firmwareDISCOVER(t, pxeclient.BIOSPXE, macA), 67, nil, nil), ClassPXE},
		{"EDK2 REQUEST to proxyDHCP", frame(firmwareDISCOVER(t, pxeclient.EDK2x64, macA), 4011, nil, nil), ClassProxy},
		{"PXEClient", frame(pxe, 67, nil, nil), ClassPXE},
		{"HTTPClient", frame(bootp(macA, msgType(1), vendor("HTTPClient:Arch:00016"), end()), 67, nil, nil), ClassHTTP},
		{"HTTPClient with iPXE", frame(bootp(macA, vendor("HTTPClient"), userClass("iPXE"), end()), 67, nil, nil), ClassIPXE},
		{"iPXE user class before option 60", frame(bootp(macA, userClass("iPXE"), vendor("PXEClient"), end()), 67, nil, nil), ClassIPXE},
		{"RFC 3004 user class iPXE", frame(bootp(macA, vendor("PXEClient"), opt{77, []byte("\x04iPXE\x03foo")}, end()), 67, nil, nil), ClassIPXE},
		{"user class other than iPXE", frame(bootp(macA, vendor("PXEClient"), userClass("iPXF"), end()), 67, nil, nil), ClassPXE},
		{"second option 77 ignored", frame(bootp(macA, vendor("PXEClient"), userClass("gPXE"), userClass("iPXE"), end()), 67, nil, nil), ClassPXE},
		{"user class without PXE vendor class", frame(bootp(macA, userClass("iPXE"), end()), 67, nil, nil), ClassDHCP},
		{"other vendor class", frame(bootp(macA, msgType(1), vendor("MSFT 5.0"), end()), 67, nil, nil), ClassDHCP},
		{"short vendor class", frame(bootp(macA, vendor("PXEClien"), end()), 67, nil, nil), ClassDHCP},
		{"second option 60 ignored", frame(bootp(macA, vendor("MSFT"), vendor("PXEClient"), end()), 67, nil, nil), ClassDHCP},
		{"no options", frame(bootp(macA), 67, nil, nil), ClassDHCP},
		{"plain DHCP DISCOVER", frame(bootp(macA, msgType(1), end()), 67, nil, nil), ClassDHCP},
		{"BOOTREPLY with PXEClient", frame(func() []byte { b := bootp(macA, vendor("PXEClient"), end()); b[0] = 2; return b }(), 67, nil, nil), ClassDHCP},
		{"bad magic cookie", frame(func() []byte { b := bootp(macA, vendor("PXEClient"), end()); b[239] = 0; return b }(), 67, nil, nil), ClassDHCP},
		{"option 60 after twenty options", frame(longList(macA, "PXEClient:Arch:00000"), 67, nil, nil), ClassPXE},
		{"option 60 after pads", frame(bootp(macA, pad(), pad(), pad(), vendor("PXEClient"), end()), 67, nil, nil), ClassPXE},
		{"option 60 after the end option", frame(bootp(macA, msgType(1), end(), vendor("PXEClient")), 67, nil, nil), ClassDHCP},
		{"option 60 beyond 312 bytes", frame(bootp(macA, append(over312, vendor("PXEClient"), end())...), 67, nil, nil), ClassDHCP},
		{"option 60 beyond 64 options", frame(bootp(macA, append(func() []opt {
			o := make([]opt, 64)
			for i := range o {
				o[i] = pad()
			}
			return o
		}(), vendor("PXEClient"), end())...), 67, nil, nil), ClassDHCP},
		{"option 60 in the 64th slot", frame(bootp(macA, append(func() []opt {
			o := make([]opt, 63)
			for i := range o {
				o[i] = pad()
			}
			return o
		}(), vendor("PXEClient"))...), 67, nil, nil), ClassPXE},
		{"truncated option 60", frame(trunc(bootp(macA, vendor("PXEClient")), 240+2+5), 67, nil, nil), ClassDHCP},
		{"truncated after option 60", frame(trunc(bootp(macA, vendor("PXEClient"), filler(99, 40)), 240+11+10), 67, nil, nil), ClassPXE},
		{"option length past the packet", frame(append(bootp(macA, vendor("PXEClient")), 12, 200, 1), 67, nil, nil), ClassPXE},
		{"truncated BOOTP header", frame(trunc(pxe, 100), 67, nil, nil), ClassDHCP},
		{"empty UDP payload", frame(nil, 67, nil, nil), ClassDHCP},
		{"802.1Q tagged PXE", frame(pxe, 67, []uint16{0x8100}, nil), ClassPXE},
		{"QinQ tagged PXE", frame(pxe, 67, []uint16{0x88a8, 0x8100}, nil), ClassPXE},
		{"three tags", frame(pxe, 67, []uint16{0x88a8, 0x8100, 0x8100}, nil), ClassOther},
		{"IPv4 options", frame(pxe, 67, nil, []byte{1, 1, 1, 0, 7, 7, 4, 0, 0, 0, 0, 0}), ClassPXE},
		{"IPv4 options and VLAN", frame(pxe, 67, []uint16{0x8100}, []byte{1, 1, 1, 0}), ClassPXE},
		{"TFTP read request", frame([]byte("\x00\x01snponly.efi\x00octet\x00"), 69, nil, nil), ClassTFTP},
		{"TFTP ACK to a transfer port", frame([]byte{0, 4, 0, 1}, 50050, nil, nil), ClassTFTPData},
		{"UDP elsewhere", frame([]byte("hello"), 53, nil, nil), ClassOther},
		{"runt frame", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, ClassOther},
		{"truncated VLAN tag", frame(pxe, 67, []uint16{0x8100}, nil)[:16], ClassOther},
		{"truncated IPv4 header", frame(pxe, 67, nil, nil)[:30], ClassOther},
		{"truncated UDP header", frame(pxe, 67, nil, nil)[:38], ClassOther},
		{"IHL below 5", func() []byte { f := frame(pxe, 67, nil, nil); f[14] = 0x44; return f }(), ClassOther},
		{"IPv6", func() []byte { f := frame(pxe, 67, nil, nil); f[12], f[13] = 0x86, 0xdd; return f }(), ClassOther},
		{"TCP", func() []byte { f := frame(pxe, 67, nil, nil); f[23] = 6; return f }(), ClassOther},
		{"fragment", func() []byte { f := frame(pxe, 67, nil, nil); f[20] = 0x20; return f }(), ClassOther},
		{"IHL past the packet", func() []byte { f := frame(nil, 67, nil, nil)[:40]; f[14] = 0x4f; return f }(), ClassOther},
	}
	return cases
}

// testPorts are the ports of the table: the well-known ones plus a
// transfer range.
var testPorts = Ports{DHCP: 67, Proxy: 4011, TFTP: 69, TFTPLow: 50000, TFTPHigh: 50100}

func TestClassifierTable(t *testing.T) {
	for _, tc := range classTable(t) {
		if c, _, _ := ClassifyFrame(tc.frame, testPorts); c != tc.class {
			t.Errorf("%s: class %s, want %s", tc.name, c, tc.class)
		}
	}
}
