package tftp

import (
	"strconv"
	"time"
)

// Protocol bounds of the options we negotiate.
const (
	minBlksize = 8     // RFC 2348
	maxBlksize = 65464 // RFC 2348
	maxWindow  = 65535 // RFC 7440
	// defaultBlksize is RFC 1350's fixed block size when none is negotiated.
	defaultBlksize = 512
)

// Limits are the server's caps applied during negotiation.
type Limits struct {
	MaxBlksize int
	MaxWindow  int
	// MaxUpload caps a WRQ's size (tsize and bytes received); 0 means no write.
	MaxUpload int64
}

// Params are the negotiated parameters of one transfer.
type Params struct {
	Blksize  int
	Window   int
	Timeout  time.Duration // client's RFC 2349 timeout, 0 if not asked
	Tsize    int64         // WRQ: announced size, -1 if unknown
	RollTo   uint16        // block number after 65535: 0 (default) or 1
	Netascii bool
	// OACK holds the options to acknowledge, in the client's order; empty
	// means no OACK (RFC 2347: only options asked for and accepted).
	OACK []Option
}

// Negotiate applies RFC 2347/2348/2349/7440 to a request. size is the file
// size for an RRQ (used in tsize), ignored for a WRQ. Malformed values of
// options we know are refused with error 8; unknown options are ignored.
func Negotiate(req Request, lim Limits, size int64) (Params, error) {
	p := Params{Blksize: defaultBlksize, Window: 1, Tsize: -1, Netascii: req.Mode == "netascii"}
	for _, o := range req.Options {
		switch o.Name {
		case "blksize":
			n, err := strconv.Atoi(o.Value)
			if err != nil || n < minBlksize {
				return p, protoErr(ErrOptionRefuse, "blksize %q is not a number in %d..%d", o.Value, minBlksize, maxBlksize)
			}
			// RFC 2348: the server may answer with a smaller size than asked.
			n = min(n, maxBlksize, lim.MaxBlksize)
			p.Blksize = n
			p.OACK = append(p.OACK, Option{"blksize", strconv.Itoa(n)})
		case "windowsize":
			if req.Write {
				continue // we receive uploads in lockstep; not acknowledging it is allowed
			}
			n, err := strconv.Atoi(o.Value)
			if err != nil || n < 1 || n > maxWindow {
				return p, protoErr(ErrOptionRefuse, "windowsize %q is not a number in 1..%d", o.Value, maxWindow)
			}
			n = min(n, lim.MaxWindow)
			p.Window = n
			p.OACK = append(p.OACK, Option{"windowsize", strconv.Itoa(n)})
		case "timeout":
			n, err := strconv.Atoi(o.Value)
			if err != nil {
				return p, protoErr(ErrOptionRefuse, "timeout %q is not a number", o.Value)
			}
			// RFC 2349: 1..255 seconds; out of range we do not acknowledge it.
			if n < 1 || n > 255 {
				continue
			}
			p.Timeout = time.Duration(n) * time.Second
			p.OACK = append(p.OACK, Option{"timeout", o.Value})
		case "tsize":
			n, err := strconv.ParseInt(o.Value, 10, 64)
			if err != nil || n < 0 {
				return p, protoErr(ErrOptionRefuse, "tsize %q is not a non-negative number", o.Value)
			}
			if req.Write {
				if lim.MaxUpload > 0 && n > lim.MaxUpload {
					return p, protoErr(ErrDiskFull, "upload of %d bytes exceeds the cap of %d", n, lim.MaxUpload)
				}
				p.Tsize = n
				p.OACK = append(p.OACK, Option{"tsize", o.Value})
				continue
			}
			// RFC 2349: in an RRQ the client sends 0 and we answer the size.
			// In netascii mode the size on the wire is not the file size, so we
			// do not claim one.
			// An empty file is announced as tsize 0, as RFC 2349 says, though
			// curl refuses that OACK (use --tftp-no-options for empty files).
			if p.Netascii || size < 0 {
				continue
			}
			p.OACK = append(p.OACK, Option{"tsize", strconv.FormatInt(size, 10)})
		case "rollover":
			// Block number rollover extension: 0 or 1 is the number after 65535.
			switch o.Value {
			case "0":
				p.RollTo = 0
			case "1":
				p.RollTo = 1
			default:
				continue
			}
			p.OACK = append(p.OACK, Option{"rollover", o.Value})
		}
	}
	return p, nil
}
