// Package xdp runs the boot server's first look at every packet on its
// provisioning interface: the XDP program of bpf/xdp_pxe.c when it
// attaches, and otherwise Classifier, a Go copy of its semantics that the
// DHCP service consults per datagram (dhcp.ServerConfig.Guard).
package xdp

import "encoding/binary"

// Class is what a packet is, as both the BPF program and Classifier see it.
type Class uint8

// Classes; the values are the BPF program's.
const (
	ClassPXE      Class = iota // BOOTREQUEST to the DHCP port, option 60 begins "PXEClient"
	ClassHTTP                  // option 60 begins "HTTPClient": UEFI HTTP boot
	ClassIPXE                  // PXE or HTTP class plus option 77 "iPXE"
	ClassDHCP                  // any other datagram to the DHCP port
	ClassProxy                 // to the proxyDHCP port (4011)
	ClassTFTP                  // to the TFTP port: a request
	ClassTFTPData              // to one of the TFTP engine's transfer ports
	ClassOther                 // everything else, including what does not parse
	NumClasses
)

var classNames = [NumClasses]string{"pxe", "http", "ipxe", "dhcp", "proxydhcp", "tftp", "tftp_data", "other"}

func (c Class) String() string {
	if c < NumClasses {
		return classNames[c]
	}
	return "invalid"
}

// ParseClass reads a class name as String writes it.
func ParseClass(s string) (Class, bool) {
	for i, n := range classNames {
		if n == s {
			return Class(i), true
		}
	}
	return 0, false
}

// Verdict is what became of a packet; only VerdictPass lets it through.
type Verdict uint8

// Verdicts; the values are the BPF program's.
const (
	VerdictPass          Verdict = iota
	VerdictDropClass             // the class's configured action is drop
	VerdictDropDeny              // chaddr is on the deny list
	VerdictDropUnknown           // chaddr is on no list and unknown clients are dropped (or, in discovery, not PXE)
	VerdictDropRate              // the client's token bucket is empty
	VerdictDropAdmission         // a new client while new clients are over their limit
	NumVerdicts
)

var verdictNames = [NumVerdicts]string{"pass", "drop_class", "drop_deny", "drop_unknown", "drop_rate", "drop_admission"}

func (v Verdict) String() string {
	if v < NumVerdicts {
		return verdictNames[v]
	}
	return "invalid"
}

// Bounds of the option walk: RFC 2131 §2 (the 312-byte options field a
// client must accept); overload (option 52) into sname/file is ignored.
const (
	bootpHeaderLen = 236
	optionsStart   = bootpHeaderLen + 4
	maxOptionBytes = 312
	maxOptions     = 64
)

// Ports are the UDP destination ports the classes are told by.
type Ports struct {
	DHCP, Proxy, TFTP uint16
	// TFTPLow..TFTPHigh (inclusive) are the TFTP engine's transfer
	// ports; 0: none.
	TFTPLow, TFTPHigh uint16
}

// DefaultPorts are the well-known ports and no transfer range.
var DefaultPorts = Ports{DHCP: 67, Proxy: 4011, TFTP: 69}

// ClassifyFrame classifies an Ethernet frame as the BPF program does: up to
// two VLAN tags (802.1Q, 802.1ad), IPv4 with options, UDP by destination
// port. mac is chaddr when ok (a BOOTREQUEST with the magic cookie to the
// DHCP or proxyDHCP port).
func ClassifyFrame(f []byte, p Ports) (c Class, mac [6]byte, ok bool) {
	if len(f) < 14 {
		return ClassOther, mac, false
	}
	proto := binary.BigEndian.Uint16(f[12:])
	i := 14
	for range 2 {
		if proto != 0x8100 && proto != 0x88a8 {
			break
		}
		if len(f) < i+4 {
			return ClassOther, mac, false
		}
		proto = binary.BigEndian.Uint16(f[i+2:])
		i += 4
	}
	if proto != 0x0800 || len(f) < i+20 {
		return ClassOther, mac, false
	}
	ip := f[i:]
	if ip[0]>>4 != 4 || ip[9] != 17 {
		return ClassOther, mac, false
	}
	ihl := int(ip[0]&0xf) * 4
	if ihl < 20 || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 { // fragments carry no UDP header to read
		return ClassOther, mac, false
	}
	i += ihl
	if len(f) < i+8 {
		return ClassOther, mac, false
	}
	dport := binary.BigEndian.Uint16(f[i+2:])
	return ClassifyDatagram(f[i+8:], dport, p)
}

// ClassifyDatagram classifies a UDP payload sent to port dport.
func ClassifyDatagram(b []byte, dport uint16, p Ports) (c Class, mac [6]byte, ok bool) {
	switch {
	case dport == p.DHCP:
		return classifyDHCP(b)
	case dport == p.Proxy:
		_, mac, ok = classifyDHCP(b)
		return ClassProxy, mac, ok
	case dport == p.TFTP:
		return ClassTFTP, mac, false
	case p.TFTPLow != 0 && dport >= p.TFTPLow && dport <= p.TFTPHigh:
		return ClassTFTPData, mac, false
	}
	return ClassOther, mac, false
}

// classifyDHCP reads chaddr of a BOOTREQUEST with the magic cookie and its
// class from the first option 60 and the first option 77, walking at most
// maxOptions options within maxOptionBytes of the options field and
// stopping at the end option or at the first option that does not fit
// (dhcp.IsPXE's walk, continued past option 60 for option 77).
func classifyDHCP(b []byte) (c Class, mac [6]byte, ok bool) {
	if len(b) < optionsStart || b[0] != 1 || b[236] != 99 || b[237] != 130 || b[238] != 83 || b[239] != 99 {
		return ClassDHCP, mac, false
	}
	copy(mac[:], b[28:34])
	opts := b[optionsStart:]
	if len(opts) > maxOptionBytes {
		opts = opts[:maxOptionBytes]
	}
	vc, uc := 0, 0 // 0 not seen; vc 1 PXEClient, 2 HTTPClient, 3 other; uc 1 iPXE, 2 other
	for off, n := 0, 0; off < len(opts) && n < maxOptions; n++ {
		code := opts[off]
		if code == 0 {
			off++
			continue
		}
		if code == 255 || off+1 >= len(opts) {
			break
		}
		l := int(opts[off+1])
		next := off + 2 + l
		if next > len(opts) {
			break
		}
		v := opts[off+2 : next]
		switch {
		case code == 60 && vc == 0:
			vc = 3
			if hasPrefix(v, "PXEClient") {
				vc = 1
			} else if hasPrefix(v, "HTTPClient") {
				vc = 2
			}
		case code == 77 && uc == 0:
			// "iPXE" as iPXE sends it, or an RFC 3004 list whose first entry is "iPXE"
			uc = 2
			if string(v) == "iPXE" || (len(v) >= 5 && v[0] == 4 && string(v[1:5]) == "iPXE") {
				uc = 1
			}
		}
		off = next
	}
	switch {
	case vc != 1 && vc != 2:
		return ClassDHCP, mac, true
	case uc == 1:
		return ClassIPXE, mac, true
	case vc == 1:
		return ClassPXE, mac, true
	}
	return ClassHTTP, mac, true
}

func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }
