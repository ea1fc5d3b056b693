package storm

import (
	"fmt"
	"io"
	"net"

	xdpbench "osim/bench/xdp"
	"osim/dataplane/xdp"
	"osim/internal/tftpwire"
)

// clientMAC is the i-th real client.
func clientMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0x00, 0x97, byte(i >> 8), byte(i)}
}

// micro measures ns per packet per class through BPF_PROG_TEST_RUN
// (Program.Benchmark), with and without the policy and token bucket.
func micro(w io.Writer, repeat int) error {
	known := clientMAC(0)
	dhcpFrame := func(dport uint16, opts ...[]byte) []byte {
		f := xdpbench.Discover(known)
		f = f[:14+20+8+240]
		for _, o := range opts {
			f = append(f, o...)
		}
		f = append(f, 255)
		return fixLengths(f, dport)
	}
	opt := func(code byte, v string) []byte { return append([]byte{code, byte(len(v))}, v...) }
	var twenty [][]byte
	twenty = append(twenty, opt(53, "\x01"))
	for i := range 19 {
		twenty = append(twenty, opt(byte(100+i), "abcdef"))
	}
	long := dhcpFrame(67, append(twenty, opt(60, "PXEClient:Arch:00007:UNDI:003000"))...)
	frames := []struct {
		name string
		f    []byte
	}{
		{"PXE DISCOVER, option 60 after 20 options", long},
		{"PXE DISCOVER as EDK2 sends it", xdpbench.Discover(known)},
		{"iPXE DISCOVER", dhcpFrame(67, opt(53, "\x01"), opt(60, "PXEClient:Arch:00000:UNDI:002001"), opt(77, "iPXE"))},
		{"UEFI HTTP boot DISCOVER", dhcpFrame(67, opt(53, "\x01"), opt(60, "HTTPClient:Arch:00016:UNDI:003000"))},
		{"other DHCP (no option 60)", dhcpFrame(67, opt(53, "\x01"), opt(12, "host"))},
		{"proxyDHCP REQUEST", dhcpFrame(4011, opt(53, "\x03"), opt(60, "PXEClient:Arch:00007:UNDI:003000"))},
		{"TFTP read request", fixLengths(tftpwire.AppendRRQ(xdpbench.Discover(known)[:42], "snponly.efi", nil), 69)},
		{"TFTP ACK to a transfer port", fixLengths(tftpwire.AppendACK(xdpbench.Discover(known)[:42], 1), 50050)},
		{"other (IPv6)", func() []byte { f := xdpbench.Discover(known); f[12], f[13] = 0x86, 0xdd; return f }()},
	}
	type variant struct {
		name   string
		cfg    func(*xdp.Config)
		policy bool
	}
	variants := []variant{
		{"classify + count (no policy, no limits)", func(c *xdp.Config) { c.Unknown, c.Rate = xdp.UnknownPass, 0 }, false},
		{"+ policy + token bucket (default config, client allowed)", func(c *xdp.Config) {}, true},
	}
	fmt.Fprintf(w, "### ns per packet (BPF_PROG_TEST_RUN, %d runs each)\n\n", repeat)
	fmt.Fprintf(w, "| packet | class | %s | %s |\n|---|---|---:|---:|\n", variants[0].name, variants[1].name)
	var progs []*xdp.Program
	for _, v := range variants {
		cfg := xdp.DefaultConfig()
		cfg.Ports.TFTPLow, cfg.Ports.TFTPHigh = 50000, 50100
		v.cfg(&cfg)
		p, err := xdp.Load(cfg)
		if err != nil {
			return err
		}
		defer p.Close()
		if v.policy {
			if err := p.SetPolicy([]net.HardwareAddr{known}, nil); err != nil {
				return err
			}
		}
		progs = append(progs, p)
	}
	for _, fr := range frames {
		c, _, _ := xdp.ClassifyFrame(fr.f, xdp.Ports{DHCP: 67, Proxy: 4011, TFTP: 69, TFTPLow: 50000, TFTPHigh: 50100})
		fmt.Fprintf(w, "| %s | %s |", fr.name, c)
		for _, p := range progs {
			d, err := p.Benchmark(fr.f, repeat)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, " %d |", d.Nanoseconds())
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	return nil
}

// fixLengths sets the IPv4 total length, header checksum, UDP length and
// destination port of an untagged frame built on Discover's headers.
func fixLengths(f []byte, dport uint16) []byte {
	ip := f[14:34]
	n := len(f) - 14
	ip[2], ip[3] = byte(n>>8), byte(n)
	ip[10], ip[11] = 0, 0
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	ip[10], ip[11] = byte(^sum>>8), byte(^sum)
	u := f[34:42]
	u[2], u[3] = byte(dport>>8), byte(dport)
	u[4], u[5] = byte((n-20)>>8), byte(n-20)
	return f
}
