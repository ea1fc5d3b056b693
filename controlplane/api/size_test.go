package api

import "testing"

func TestParseSizeTakesBinarySuffixes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "4K": 4 << 10, "10G": 10 << 30, "2t": 2 << 40, "8GiB": 8 << 30, "100M": 100 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1", "1.5G", "10X", "99999999999T", " 1G"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"800M/s": 800 << 20, "1GiB/s": 1 << 30, "10Gbit/s": 1.25e9, "2.5Gbit/s": 312.5e6,
		"100Mbit/s": 12.5e6, "4096/s": 4096} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "800M", "/s", "0/s", "-1M/s", "xGbit/s", "0Gbit/s", "1.5M/s", "10Gb/s"} {
		if got, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %v, want an error", in, got)
		}
	}
}
