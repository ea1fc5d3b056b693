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
