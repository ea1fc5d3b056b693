// Package tftpwire encodes and decodes the TFTP packets a read client needs:
// RRQ with options, DATA, ACK, ERROR and OACK (RFC 1350, RFC 2347).
package tftpwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Opcodes, RFC 1350 §5 and RFC 2347 (OACK).
const (
	OpRRQ   uint16 = 1
	OpWRQ   uint16 = 2
	OpDATA  uint16 = 3
	OpACK   uint16 = 4
	OpERROR uint16 = 5
	OpOACK  uint16 = 6
)

// Error codes, RFC 1350 appendix and RFC 2347 (code 8).
const (
	ErrUndefined     uint16 = 0
	ErrNotFound      uint16 = 1
	ErrUnknownTID    uint16 = 5
	ErrOptionRefused uint16 = 8
)

// Option names the bench negotiates.
const (
	OptBlksize    = "blksize"    // RFC 2348
	OptTsize      = "tsize"      // RFC 2349
	OptWindowsize = "windowsize" // RFC 7440
)

// DefaultBlksize is the block size when no blksize was acknowledged (RFC 1350).
const DefaultBlksize = 512

// ErrMalformed is returned for packets that do not parse.
var ErrMalformed = errors.New("tftpwire: malformed packet")

// Option is one RFC 2347 name/value pair, kept in request order.
type Option struct {
	Name, Value string
}

// AppendRRQ appends a read request for file in octet mode with opts.
func AppendRRQ(b []byte, file string, opts []Option) []byte {
	b = binary.BigEndian.AppendUint16(b, OpRRQ)
	b = append(append(b, file...), 0)
	b = append(append(b, "octet"...), 0)
	for _, o := range opts {
		b = append(append(b, o.Name...), 0)
		b = append(append(b, o.Value...), 0)
	}
	return b
}

// AppendACK appends an ACK for the wire block number.
func AppendACK(b []byte, block uint16) []byte {
	b = binary.BigEndian.AppendUint16(b, OpACK)
	return binary.BigEndian.AppendUint16(b, block)
}

// AppendError appends an ERROR packet.
func AppendError(b []byte, code uint16, msg string) []byte {
	b = binary.BigEndian.AppendUint16(b, OpERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	return append(append(b, msg...), 0)
}

// AppendOACK appends an OACK echoing opts.
func AppendOACK(b []byte, opts []Option) []byte {
	b = binary.BigEndian.AppendUint16(b, OpOACK)
	for _, o := range opts {
		b = append(append(b, o.Name...), 0)
		b = append(append(b, o.Value...), 0)
	}
	return b
}

// Opcode returns the opcode of p, or 0 when p is too short.
func Opcode(p []byte) uint16 {
	if len(p) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(p)
}

// Block returns the block number of a DATA or ACK packet (bytes 2..3).
func Block(p []byte) uint16 {
	if len(p) < 4 {
		return 0
	}
	return binary.BigEndian.Uint16(p[2:])
}

// ParseError decodes an ERROR packet.
func ParseError(p []byte) (code uint16, msg string, err error) {
	if len(p) < 4 || Opcode(p) != OpERROR {
		return 0, "", fmt.Errorf("error packet of %d bytes: %w", len(p), ErrMalformed)
	}
	msg = string(p[4:])
	if i := strings.IndexByte(msg, 0); i >= 0 {
		msg = msg[:i]
	}
	return binary.BigEndian.Uint16(p[2:]), msg, nil
}

// ParseOptions decodes the NUL-terminated name/value pairs that follow the
// opcode of an OACK (RFC 2347: names are case-insensitive, so they are
// lowercased here).
func ParseOptions(body []byte) ([]Option, error) {
	var opts []Option
	for len(body) > 0 {
		name, rest, ok := cutNUL(body)
		if !ok {
			return nil, fmt.Errorf("option name without NUL: %w", ErrMalformed)
		}
		value, rest, ok := cutNUL(rest)
		if !ok {
			return nil, fmt.Errorf("option %q without value: %w", name, ErrMalformed)
		}
		if name == "" {
			return nil, fmt.Errorf("empty option name: %w", ErrMalformed)
		}
		opts = append(opts, Option{Name: strings.ToLower(name), Value: value})
		body = rest
	}
	return opts, nil
}

// ParseRRQ decodes a read request into file, mode and options (used by the
// ceiling sender, which answers our own client only).
func ParseRRQ(p []byte) (file, mode string, opts []Option, err error) {
	if Opcode(p) != OpRRQ {
		return "", "", nil, fmt.Errorf("opcode %d is not RRQ: %w", Opcode(p), ErrMalformed)
	}
	file, rest, ok := cutNUL(p[2:])
	if !ok {
		return "", "", nil, fmt.Errorf("RRQ filename without NUL: %w", ErrMalformed)
	}
	mode, rest, ok = cutNUL(rest)
	if !ok {
		return "", "", nil, fmt.Errorf("RRQ for %q: mode without NUL: %w", file, ErrMalformed)
	}
	opts, err = ParseOptions(rest)
	if err != nil {
		return "", "", nil, fmt.Errorf("RRQ for %q: %w", file, err)
	}
	return file, strings.ToLower(mode), opts, nil
}

func cutNUL(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

// Negotiated is what an OACK (or its absence) leaves in force for a transfer.
type Negotiated struct {
	Blksize int   // 512 unless the OACK carries blksize
	Window  int   // 1 (lockstep) unless the OACK carries windowsize
	Tsize   int64 // -1 when the OACK carries no tsize
	// Echoed lists the option names the server acknowledged.
	Echoed []string
}

// Defaults is what holds when the server answers the RRQ with DATA directly,
// ignoring every option (RFC 2347: the client must then use the defaults).
func Defaults() Negotiated {
	return Negotiated{Blksize: DefaultBlksize, Window: 1, Tsize: -1}
}

// Negotiate reads an OACK's options. A server may only lower blksize and
// windowsize (RFC 2348 §2, RFC 7440 §3); a larger value than requested, or a
// value out of range, is an error the client must answer with ERROR 8.
func Negotiate(opts []Option, askBlksize, askWindow int) (Negotiated, error) {
	n := Defaults()
	for _, o := range opts {
		n.Echoed = append(n.Echoed, o.Name)
		switch o.Name {
		case OptBlksize:
			v, err := strconv.Atoi(o.Value)
			if err != nil || v < 8 || v > 65464 || (askBlksize > 0 && v > askBlksize) {
				return n, fmt.Errorf("OACK blksize %q (asked %d): %w", o.Value, askBlksize, ErrMalformed)
			}
			n.Blksize = v
		case OptWindowsize:
			v, err := strconv.Atoi(o.Value)
			if err != nil || v < 1 || v > 65535 || (askWindow > 0 && v > askWindow) {
				return n, fmt.Errorf("OACK windowsize %q (asked %d): %w", o.Value, askWindow, ErrMalformed)
			}
			n.Window = v
		case OptTsize:
			v, err := strconv.ParseInt(o.Value, 10, 64)
			if err != nil || v < 0 {
				return n, fmt.Errorf("OACK tsize %q: %w", o.Value, ErrMalformed)
			}
			n.Tsize = v
		}
	}
	return n, nil
}

// Has reports whether the server echoed option name.
func (n Negotiated) Has(name string) bool {
	for _, e := range n.Echoed {
		if e == name {
			return true
		}
	}
	return false
}
