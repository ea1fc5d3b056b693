package tftp

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// rrq builds a request packet from NUL-separated fields.
func rrq(op uint16, fields ...string) []byte {
	b := []byte{byte(op >> 8), byte(op)}
	for _, f := range fields {
		b = append(b, f...)
		b = append(b, 0)
	}
	return b
}

func TestParseRequestAcceptsWellFormedRequests(t *testing.T) {
	cases := []struct {
		name string
		pkt  []byte
		want Request
	}{
		{"plain octet", rrq(opRRQ, "pxelinux.0", "octet"), Request{Filename: "pxelinux.0", Mode: "octet"}},
		{"mode is case-insensitive", rrq(opRRQ, "a", "OcTeT"), Request{Filename: "a", Mode: "octet"}},
		{"netascii", rrq(opRRQ, "a", "netascii"), Request{Filename: "a", Mode: "netascii"}},
		{"write request", rrq(opWRQ, "up", "octet"), Request{Write: true, Filename: "up", Mode: "octet"}},
		{"edk2 options, names lower-cased", rrq(opRRQ, "snponly.efi", "octet", "TSIZE", "0", "blksize", "1468", "windowsize", "4"),
			Request{Filename: "snponly.efi", Mode: "octet", Options: []Option{{"tsize", "0"}, {"blksize", "1468"}, {"windowsize", "4"}}}},
		{"trailing padding NUL tolerated", append(rrq(opRRQ, "a", "octet", "blksize", "1432"), 0),
			Request{Filename: "a", Mode: "octet", Options: []Option{{"blksize", "1432"}}}},
		{"windows path kept raw", rrq(opRRQ, `\boot\x64\wdsnbp.com`, "octet"), Request{Filename: `\boot\x64\wdsnbp.com`, Mode: "octet"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseRequest(c.pkt)
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParseRequestRefusesMalformedRequests(t *testing.T) {
	cases := []struct {
		name string
		pkt  []byte
		code ErrorCode
	}{
		{"empty", nil, ErrIllegalOp},
		{"one byte", []byte{0}, ErrIllegalOp},
		{"data opcode", rrq(opDATA, "a", "octet"), ErrIllegalOp},
		{"unterminated mode", []byte("\x00\x01file\x00octet"), ErrIllegalOp},
		{"no mode", rrq(opRRQ, "file"), ErrIllegalOp},
		{"empty filename", rrq(opRRQ, "", "octet"), ErrIllegalOp},
		{"mail mode", rrq(opRRQ, "a", "mail"), ErrIllegalOp},
		{"unknown mode", rrq(opRRQ, "a", "binary"), ErrIllegalOp},
		{"option without value", rrq(opRRQ, "a", "octet", "blksize", "1468", "tsize"), ErrOptionRefuse},
		{"duplicate option", rrq(opRRQ, "a", "octet", "blksize", "1468", "BLKSIZE", "512"), ErrOptionRefuse},
		{"empty option name", rrq(opRRQ, "a", "octet", "", "1"), ErrOptionRefuse},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRequest(c.pkt)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a *ProtocolError", err)
			}
			if pe.Code != c.code {
				t.Fatalf("code %d (%s), want %d", pe.Code, pe.Msg, c.code)
			}
		})
	}
}

func TestEncodersProduceWireFormat(t *testing.T) {
	if got, want := appendError(nil, ErrAccess, "no"), []byte{0, 5, 0, 2, 'n', 'o', 0}; !bytes.Equal(got, want) {
		t.Errorf("error packet % x, want % x", got, want)
	}
	if got, want := appendOACK(nil, []Option{{"tsize", "5"}, {"blksize", "1468"}}), []byte("\x00\x06tsize\x005\x00blksize\x001468\x00"); !bytes.Equal(got, want) {
		t.Errorf("oack %q, want %q", got, want)
	}
	if got, want := appendAck(nil, 0xfffe), []byte{0, 4, 0xff, 0xfe}; !bytes.Equal(got, want) {
		t.Errorf("ack % x, want % x", got, want)
	}
	h := make([]byte, 4)
	putDataHeader(h, 258)
	if want := []byte{0, 3, 1, 2}; !bytes.Equal(h, want) {
		t.Errorf("data header % x, want % x", h, want)
	}
	long := appendError(nil, ErrUndefined, string(bytes.Repeat([]byte("x"), 1000)))
	if len(long) > 512 {
		t.Errorf("error packet of %d bytes exceeds 512", len(long))
	}
}

func TestParseReplyDecodesTransferPackets(t *testing.T) {
	r, err := parseReply([]byte{0, 4, 0x12, 0x34})
	if err != nil || r.op != opACK || r.block != 0x1234 {
		t.Fatalf("ack: %+v %v", r, err)
	}
	r, err = parseReply([]byte{0, 3, 0, 7, 'a', 'b'})
	if err != nil || r.op != opDATA || r.block != 7 || string(r.data) != "ab" {
		t.Fatalf("data: %+v %v", r, err)
	}
	pkt := append([]byte{0, 5, 0, 8}, "tsize probe\x00"...)
	r, err = parseReply(pkt)
	if err != nil || r.op != opERROR || r.code != ErrOptionRefuse || errorMessage(pkt) != "tsize probe" {
		t.Fatalf("error: %+v %v %q", r, err, errorMessage(pkt))
	}
	for _, bad := range [][]byte{nil, {0, 4, 1}, {0, 1, 0, 0}, {0, 9, 0, 0}} {
		if _, err := parseReply(bad); err == nil {
			t.Errorf("parseReply(% x) accepted a malformed packet", bad)
		}
	}
}
