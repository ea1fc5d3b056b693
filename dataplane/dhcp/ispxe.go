package dhcp

import "bytes"

// Bounds of the cheap pre-check.
const (
	bootpHeaderLen = 236 // fixed BOOTP fields before the magic cookie (RFC 2131 §2)
	optionsStart   = bootpHeaderLen + 4
	maxOptionBytes = 312 // the options field a client must accept (RFC 2131 §2)
	maxOptions     = 64
)

var (
	magicCookie = []byte{99, 130, 83, 99} // RFC 2131 §3
	pxeClass    = []byte("PXEClient")
	httpClass   = []byte("HTTPClient")
)

// IsPXE reports whether raw is a BOOTREQUEST whose option 60 begins with
// "PXEClient" or "HTTPClient". It walks at most maxOptionBytes of options
// and maxOptions options without allocating; option overload (52) into
// sname/file is ignored, so a packet hiding option 60 there is not PXE.
func IsPXE(raw []byte) bool {
	if len(raw) < optionsStart+1 || raw[0] != 1 || !bytes.Equal(raw[bootpHeaderLen:optionsStart], magicCookie) {
		return false
	}
	opts := raw[optionsStart:]
	if len(opts) > maxOptionBytes {
		opts = opts[:maxOptionBytes]
	}
	for i, n := 0, 0; i < len(opts) && n < maxOptions; n++ {
		code := opts[i]
		switch code {
		case 0: // pad
			i++
			continue
		case 255: // end
			return false
		}
		if i+1 >= len(opts) {
			return false
		}
		l := int(opts[i+1])
		val := i + 2
		if val+l > len(opts) {
			return false
		}
		if code == 60 {
			v := opts[val : val+l]
			return bytes.HasPrefix(v, pxeClass) || bytes.HasPrefix(v, httpClass)
		}
		i = val + l
	}
	return false
}
