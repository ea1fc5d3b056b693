// Package pxeclient is a PXE client that imitates the firmware recorded in
// bench/lab/README.md: EDK2's UEFI PXE and iPXE. It runs the whole chain a
// target runs: DHCP DISCOVER and the offers, REQUEST/ACK when an address is
// offered, the proxyDHCP exchange on port 4011 (PXE 2.1 §2.2 steps 5-6),
// TFTP of the boot program with the firmware's options, then the iPXE stage:
// DHCP again with user class "iPXE", the script over HTTP, and its kernel and
// initrds. Every phase is timed; errors name the phase.
//
// DHCP goes out as broadcast from 0.0.0.0:68 bound to one interface, so a
// client normally lives in its own network namespace: Netns runs the socket
// calls there (sockets keep the namespace they were opened in).
package pxeclient

import "time"

// TFTPOptions are the options a firmware puts in its read request.
type TFTPOptions struct {
	Blksize int // 0: none asked (512)
	Window  int // RFC 7440 windowsize; 0: none asked (lockstep)
	Tsize   bool
	// ProbeTsize: ask "tsize 0" with blksize and windowsize first, abort
	// with error 8 after the OACK, then ask again without tsize from a new
	// port (a new TID), as EDK2 does.
	ProbeTsize bool
}

// Firmware is what one boot program sends: its DHCP options and TFTP habits.
type Firmware struct {
	Name        string
	Arch        uint16  // option 93 (RFC 4578 §2.1)
	NDI         [3]byte // option 94: type 1, major, minor
	VendorClass string  // option 60
	UserClass   string  // option 77, empty: not sent
	MaxMsgSize  uint16  // option 57
	RequestList []uint8 // option 55
	TFTP        TFTPOptions
	// Next is the program the boot file loads (iPXE after the firmware
	// fetched snponly.efi or undionly.kpxe); nil: the chain ends with TFTP.
	Next *Firmware
}

// edk2Params is EDK2's PxeBcDhcp4 parameter request list.
var edk2Params = []uint8{1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51,
	54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135}

// ipxeParams is iPXE's list (23 options, as captured).
var ipxeParams = []uint8{1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132,
	133, 134, 135, 175, 203}

// IPXESNP is iPXE's snponly.efi after EDK2 loaded it (bench/lab/README.md).
var IPXESNP = Firmware{
	Name:        "ipxe-snponly-efi-x64",
	Arch:        7,
	NDI:         [3]byte{1, 3, 10},
	VendorClass: "PXEClient:Arch:00007:UNDI:003010",
	UserClass:   "iPXE",
	MaxMsgSize:  1472,
	RequestList: ipxeParams,
	TFTP:        TFTPOptions{Blksize: 1432, Tsize: true},
}

// EDK2x64 is OVMF's own PXE client on x64 (recorded), chaining to IPXESNP.
var EDK2x64 = Firmware{
	Name:        "edk2-efi-x64",
	Arch:        7,
	NDI:         [3]byte{1, 3, 0},
	VendorClass: "PXEClient:Arch:00007:UNDI:003000",
	MaxMsgSize:  1472,
	RequestList: edk2Params,
	TFTP:        TFTPOptions{Blksize: 1468, Window: 4, ProbeTsize: true},
	Next:        &IPXESNP,
}

// IPXEBIOS is iPXE's PXE ROM (pxe-e1000.rom) under legacy BIOS (recorded):
// it says "iPXE" from its first DHCP, so it gets its script URL at once.
var IPXEBIOS = Firmware{
	Name:        "ipxe-rom-bios",
	Arch:        0,
	NDI:         [3]byte{1, 2, 1},
	VendorClass: "PXEClient:Arch:00000:UNDI:002001",
	UserClass:   "iPXE",
	MaxMsgSize:  1472,
	RequestList: ipxeParams,
	TFTP:        TFTPOptions{Blksize: 1432, Tsize: true},
}

// IPXEUndionly is iPXE's undionly.kpxe after a BIOS PXE ROM loaded it: the
// same options as the iPXE ROM (not captured separately), under its own name.
var IPXEUndionly = func() Firmware {
	f := IPXEBIOS
	f.Name = "ipxe-undionly-bios"
	return f
}()

// BIOSPXE is a plain (non-iPXE) legacy BIOS PXE ROM, not captured in the
// lab: PXE 2.1 options, lockstep TFTP with blksize and tsize; it loads
// undionly.kpxe, which continues as IPXEUndionly.
var BIOSPXE = Firmware{
	Name:        "bios-pxe",
	Arch:        0,
	NDI:         [3]byte{1, 2, 1},
	VendorClass: "PXEClient:Arch:00000:UNDI:002001",
	MaxMsgSize:  1472,
	RequestList: edk2Params,
	TFTP:        TFTPOptions{Blksize: 1432, Tsize: true},
	Next:        &IPXEUndionly,
}

// DefaultSchedule is when firmware sends DISCOVER again without an offer
// (PXE 2.1 §2.2: 4, 8, 16 and 32 s after the previous one).
var DefaultSchedule = []time.Duration{4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second}
