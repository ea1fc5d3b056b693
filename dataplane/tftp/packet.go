package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Opcodes, RFC 1350 section 5 and RFC 2347 (OACK).
const (
	opRRQ   uint16 = 1
	opWRQ   uint16 = 2
	opDATA  uint16 = 3
	opACK   uint16 = 4
	opERROR uint16 = 5
	opOACK  uint16 = 6
)

// ErrorCode is a TFTP error code, RFC 1350 appendix and RFC 2347 (8).
type ErrorCode uint16

// Error codes.
const (
	ErrUndefined    ErrorCode = 0
	ErrNotFound     ErrorCode = 1
	ErrAccess       ErrorCode = 2
	ErrDiskFull     ErrorCode = 3
	ErrIllegalOp    ErrorCode = 4
	ErrUnknownTID   ErrorCode = 5
	ErrFileExists   ErrorCode = 6
	ErrNoSuchUser   ErrorCode = 7
	ErrOptionRefuse ErrorCode = 8
)

// maxNameLen is the longest file name we accept; longer ones are refused.
const maxNameLen = 255

// Request is a parsed RRQ or WRQ.
type Request struct {
	Write    bool   // WRQ
	Filename string // as sent, not yet cleaned
	Mode     string // "octet" or "netascii" (lower case)
	// Options in the order the client sent them; names lower-cased.
	Options []Option
}

// Option is one RFC 2347 name/value pair.
type Option struct {
	Name, Value string
}

// ProtocolError is a request we refuse with a TFTP error packet.
type ProtocolError struct {
	Code ErrorCode
	Msg  string
}

func (e *ProtocolError) Error() string { return fmt.Sprintf("tftp error %d: %s", e.Code, e.Msg) }

func protoErr(code ErrorCode, format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// errShort marks a packet too short to carry its opcode's fields.
var errShort = errors.New("packet truncated")

// ParseRequest decodes an RRQ or WRQ (RFC 1350 section 5, RFC 2347 section 2).
// Errors are *ProtocolError carrying the code to answer with.
func ParseRequest(p []byte) (Request, error) {
	var r Request
	if len(p) < 2 {
		return r, protoErr(ErrIllegalOp, "packet of %d bytes has no opcode", len(p))
	}
	switch binary.BigEndian.Uint16(p) {
	case opRRQ:
	case opWRQ:
		r.Write = true
	default:
		return r, protoErr(ErrIllegalOp, "opcode %d is not a request", binary.BigEndian.Uint16(p))
	}
	fields, err := splitNUL(p[2:])
	if err != nil {
		return r, protoErr(ErrIllegalOp, "%v", err)
	}
	if len(fields) < 2 {
		return r, protoErr(ErrIllegalOp, "request lacks filename or mode")
	}
	r.Filename = fields[0]
	if r.Filename == "" {
		return r, protoErr(ErrIllegalOp, "empty filename")
	}
	r.Mode = strings.ToLower(fields[1])
	switch r.Mode {
	case "octet", "netascii":
	case "mail":
		return r, protoErr(ErrIllegalOp, "mail mode is not supported")
	default:
		return r, protoErr(ErrIllegalOp, "unknown transfer mode %q", fields[1])
	}
	opts := fields[2:]
	// Some clients pad with an extra NUL; a single trailing empty field is harmless.
	if len(opts)%2 == 1 && opts[len(opts)-1] == "" {
		opts = opts[:len(opts)-1]
	}
	if len(opts)%2 != 0 {
		return r, protoErr(ErrOptionRefuse, "option %q has no value", opts[len(opts)-1])
	}
	for i := 0; i < len(opts); i += 2 {
		name := strings.ToLower(opts[i])
		if name == "" {
			return r, protoErr(ErrOptionRefuse, "empty option name")
		}
		for _, o := range r.Options {
			if o.Name == name {
				return r, protoErr(ErrOptionRefuse, "option %q given twice", name)
			}
		}
		r.Options = append(r.Options, Option{Name: name, Value: opts[i+1]})
	}
	return r, nil
}

// splitNUL splits NUL-terminated strings; the last one must be terminated.
func splitNUL(b []byte) ([]string, error) {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return nil, errors.New("string not NUL-terminated")
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out, nil
}

// appendError encodes an ERROR packet.
func appendError(dst []byte, code ErrorCode, msg string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, opERROR)
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	if len(msg) > 400 {
		msg = msg[:400]
	}
	dst = append(dst, msg...)
	return append(dst, 0)
}

// appendOACK encodes an OACK with the accepted options, RFC 2347 section 2.
func appendOACK(dst []byte, opts []Option) []byte {
	dst = binary.BigEndian.AppendUint16(dst, opOACK)
	for _, o := range opts {
		dst = append(dst, o.Name...)
		dst = append(dst, 0)
		dst = append(dst, o.Value...)
		dst = append(dst, 0)
	}
	return dst
}

// putDataHeader writes the 4-byte DATA header.
func putDataHeader(dst []byte, block uint16) {
	binary.BigEndian.PutUint16(dst, opDATA)
	binary.BigEndian.PutUint16(dst[2:], block)
}

// appendAck encodes an ACK.
func appendAck(dst []byte, block uint16) []byte {
	dst = binary.BigEndian.AppendUint16(dst, opACK)
	return binary.BigEndian.AppendUint16(dst, block)
}

// reply is a decoded packet a client sends during a transfer: ACK, DATA or ERROR.
type reply struct {
	op    uint16
	block uint16    // ACK, DATA
	data  []byte    // DATA payload (aliases the read buffer)
	code  ErrorCode // ERROR
	msg   string    // ERROR message, only decoded when asked
}

// parseReply decodes a packet received on a transfer's port. It never
// allocates for ACK and DATA, the steady-state packets.
func parseReply(p []byte) (reply, error) {
	var r reply
	if len(p) < 4 {
		return r, errShort
	}
	r.op = binary.BigEndian.Uint16(p)
	switch r.op {
	case opACK:
		r.block = binary.BigEndian.Uint16(p[2:])
	case opDATA:
		r.block = binary.BigEndian.Uint16(p[2:])
		r.data = p[4:]
	case opERROR:
		r.code = ErrorCode(binary.BigEndian.Uint16(p[2:]))
	default:
		return r, fmt.Errorf("unexpected opcode %d", r.op)
	}
	return r, nil
}

// errorMessage extracts the text of an ERROR packet, bounded and sanitised for logs.
func errorMessage(p []byte) string {
	if len(p) <= 4 {
		return ""
	}
	m := p[4:]
	if i := bytes.IndexByte(m, 0); i >= 0 {
		m = m[:i]
	}
	if len(m) > 200 {
		m = m[:200]
	}
	return strings.ToValidUTF8(string(m), "?")
}
