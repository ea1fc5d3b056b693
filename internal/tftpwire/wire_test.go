package tftpwire

import (
	"errors"
	"slices"
	"testing"
)

func TestParseOptionsLowercasesNamesAndKeepsOrder(t *testing.T) {
	body := []byte("BlkSize\x001468\x00tsize\x0042\x00")
	got, err := ParseOptions(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []Option{{"blksize", "1468"}, {"tsize", "42"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestParseOptionsRejectsMalformedBodies(t *testing.T) {
	for name, body := range map[string]string{
		"name without NUL":  "blksize",
		"value without NUL": "blksize\x001468",
		"missing value":     "blksize\x00",
		"empty name":        "\x001468\x00",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseOptions([]byte(body)); !errors.Is(err, ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestNegotiateReadsWhatTheOACKGrants(t *testing.T) {
	tests := []struct {
		name      string
		opts      []Option
		blk, win  int
		want      Negotiated
		wantError bool
	}{
		{"no options keep the defaults", nil, 1468, 16, Negotiated{Blksize: 512, Window: 1, Tsize: -1}, false},
		{"all granted", []Option{{"blksize", "1468"}, {"windowsize", "16"}, {"tsize", "1000"}}, 1468, 16,
			Negotiated{Blksize: 1468, Window: 16, Tsize: 1000, Echoed: []string{"blksize", "windowsize", "tsize"}}, false},
		{"server lowers blksize", []Option{{"blksize", "1024"}}, 1468, 0,
			Negotiated{Blksize: 1024, Window: 1, Tsize: -1, Echoed: []string{"blksize"}}, false},
		{"windowsize ignored means lockstep", []Option{{"blksize", "1468"}}, 1468, 16,
			Negotiated{Blksize: 1468, Window: 1, Tsize: -1, Echoed: []string{"blksize"}}, false},
		{"blksize above the request", []Option{{"blksize", "9000"}}, 1468, 0, Negotiated{}, true},
		{"windowsize above the request", []Option{{"windowsize", "32"}}, 0, 16, Negotiated{}, true},
		{"blksize not a number", []Option{{"blksize", "big"}}, 1468, 0, Negotiated{}, true},
		{"negative tsize", []Option{{"tsize", "-1"}}, 0, 0, Negotiated{}, true},
		{"unknown option is echoed, not used", []Option{{"timeout", "3"}}, 0, 0,
			Negotiated{Blksize: 512, Window: 1, Tsize: -1, Echoed: []string{"timeout"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Negotiate(tt.opts, tt.blk, tt.win)
			if tt.wantError {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Blksize != tt.want.Blksize || got.Window != tt.want.Window || got.Tsize != tt.want.Tsize || !slices.Equal(got.Echoed, tt.want.Echoed) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRRQRoundTrips(t *testing.T) {
	opts := []Option{{"blksize", "1468"}, {"tsize", "0"}, {"windowsize", "16"}}
	p := AppendRRQ(nil, "pxelinux.0", opts)
	file, mode, got, err := ParseRRQ(p)
	if err != nil {
		t.Fatal(err)
	}
	if file != "pxelinux.0" || mode != "octet" || !slices.Equal(got, opts) {
		t.Errorf("got %q %q %v", file, mode, got)
	}
}

func TestParseErrorReadsCodeAndMessage(t *testing.T) {
	code, msg, err := ParseError(AppendError(nil, ErrNotFound, "File not found"))
	if err != nil || code != ErrNotFound || msg != "File not found" {
		t.Errorf("got %d %q %v", code, msg, err)
	}
	if _, _, err := ParseError([]byte{0, 5}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short error packet: err = %v, want ErrMalformed", err)
	}
}

func FuzzParseOptions(f *testing.F) {
	f.Add([]byte("blksize\x001468\x00tsize\x000\x00"))
	f.Add([]byte("windowsize\x0064\x00"))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, body []byte) {
		opts, err := ParseOptions(body)
		if err != nil {
			return
		}
		// Whatever parses must negotiate without panicking.
		Negotiate(opts, 65464, 65535)
	})
}

func FuzzParseRRQ(f *testing.F) {
	f.Add(AppendRRQ(nil, "f", []Option{{"blksize", "512"}}))
	f.Add([]byte{0, 1, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		ParseRRQ(p)
		ParseError(p)
	})
}
