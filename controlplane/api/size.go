package api

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize reads a byte count: digits, optionally followed by K, M, G
// or T (powers of 1024; KiB, MiB, … and a trailing B too). The order
// parameters disk.min_size and disk.max_size and osimctl's size flags
// use it.
func ParseSize(s string) (int64, error) {
	num, unit := s, ""
	if i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		num, unit = s[:i], strings.ToUpper(s[i:])
	}
	shift := map[string]uint{"": 0, "B": 0, "K": 10, "KIB": 10, "M": 20, "MIB": 20, "G": 30, "GIB": 30, "T": 40, "TIB": 40}
	sh, ok := shift[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || num == "" {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with K, M, G or T)", s)
	}
	if n > (1<<63-1)>>sh {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << sh, nil
}

// ParseRate reads a rate in bytes per second: a size as ParseSize reads
// it followed by "/s" ("800M/s", "1GiB/s"), or bits per second as network
// links are sold ("10Gbit/s", "2.5Gbit/s", "100Mbit/s"; powers of 1000).
func ParseRate(s string) (float64, error) {
	v, ok := strings.CutSuffix(s, "/s")
	if !ok {
		return 0, fmt.Errorf("%q is not a rate (a size per second, \"800M/s\", or bits, \"10Gbit/s\")", s)
	}
	for unit, mul := range map[string]float64{"Kbit": 1e3 / 8, "Mbit": 1e6 / 8, "Gbit": 1e9 / 8, "Tbit": 1e12 / 8} {
		if n, ok := strings.CutSuffix(v, unit); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil || f <= 0 || f > 1e6 {
				return 0, fmt.Errorf("%q is not a rate", s)
			}
			return f * mul, nil
		}
	}
	n, err := ParseSize(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a rate (a size per second, \"800M/s\", or bits, \"10Gbit/s\")", s)
	}
	return float64(n), nil
}
