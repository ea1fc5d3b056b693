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
