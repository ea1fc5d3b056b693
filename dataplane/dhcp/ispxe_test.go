package dhcp

import (
	"bytes"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// rawPacket is a BOOTREQUEST header + cookie followed by opts verbatim.
func rawPacket(opts ...byte) []byte {
	p := make([]byte, optionsStart, optionsStart+len(opts))
	p[0], p[1], p[2] = 1, 1, 6
	copy(p[bootpHeaderLen:], magicCookie)
	return append(p, opts...)
}

func opt(code byte, val string) []byte { return append([]byte{code, byte(len(val))}, val...) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestIsPXEFindsClassWithoutDecoding(t *testing.T) {
	msgDiscover := []byte{53, 1, 1}
	end := []byte{255}
	manyOptions := func(n int) []byte {
		var b []byte
		for range n {
			b = append(b, 12, 1, 'h') // host name, 3 bytes each
		}
		return b
	}
	cases := []struct {
		name string
		raw  []byte
		want bool
	}{
		{"PXEClient with arch", rawPacket(cat(msgDiscover, opt(60, pxeX64), end)...), true},
		{"bare PXEClient", rawPacket(cat(opt(60, "PXEClient"), end)...), true},
		{"HTTPClient", rawPacket(cat(msgDiscover, opt(60, "HTTPClient:Arch:00016"), end)...), true},
		{"pads before the class", rawPacket(cat([]byte{0, 0, 0}, opt(60, "PXEClient"), end)...), true},
		{"no end option still found", rawPacket(opt(60, "PXEClient")...), true},
		{"Windows client", rawPacket(cat(msgDiscover, opt(60, "MSFT 5.0"), end)...), false},
		{"no option 60", rawPacket(cat(msgDiscover, end)...), false},
		{"class prefix is case sensitive", rawPacket(cat(opt(60, "pxeclient"), end)...), false},
		{"class shorter than PXEClient", rawPacket(cat(opt(60, "PXE"), end)...), false},
		{"option 60 after end", rawPacket(cat(end, opt(60, "PXEClient"))...), false},
		{"option length runs past the packet", rawPacket(60, 40, 'P', 'X', 'E'), false},
		{"code without length byte", rawPacket(60), false},
		{"BOOTREPLY", func() []byte { p := rawPacket(cat(opt(60, "PXEClient"), end)...); p[0] = 2; return p }(), false},
		{"wrong magic cookie", func() []byte { p := rawPacket(cat(opt(60, "PXEClient"), end)...); p[bootpHeaderLen] = 0; return p }(), false},
		{"header only", rawPacket(), false},
		{"shorter than a header", make([]byte, 100), false},
		{"empty", nil, false},
		{"option 60 beyond the 312-byte options field", rawPacket(cat(opt(12, string(make([]byte, 255))), opt(12, string(make([]byte, 60))), opt(60, "PXEClient"))...), false},
		{"option 60 as the 64th option", rawPacket(cat(manyOptions(63), opt(60, "PXEClient"))...), true},
		{"option 60 after 64 options", rawPacket(cat(manyOptions(64), opt(60, "PXEClient"))...), false},
		{"option 60 only in an overloaded file field", func() []byte {
			p := rawPacket(cat([]byte{52, 1, 1}, end)...)
			copy(p[108:], cat(opt(60, "PXEClient"), end))
			return p
		}(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := IsPXE(c.raw); got != c.want {
				t.Fatalf("IsPXE = %v, want %v", got, c.want)
			}
		})
	}
}

func TestIsPXEAgreesWithTheDecoderOnRealRequests(t *testing.T) {
	for _, class := range []string{pxeX64, "HTTPClient:Arch:00016:UNDI:003001", "MSFT 5.0", "udhcp 1.36"} {
		req := pxeRequest(t, dhcpv4.MessageTypeDiscover, class, ArchEFIx64)
		want := class[0] == 'P' || class[0] == 'H'
		if got := IsPXE(req.ToBytes()); got != want {
			t.Errorf("class %q: IsPXE = %v, want %v", class, got, want)
		}
	}
}

func BenchmarkIsPXE(b *testing.B) {
	raw := pxeRequest(b, dhcpv4.MessageTypeDiscover, pxeX64, ArchEFIx64).ToBytes()
	b.ReportAllocs()
	for b.Loop() {
		if !IsPXE(raw) {
			b.Fatal("not PXE")
		}
	}
}
