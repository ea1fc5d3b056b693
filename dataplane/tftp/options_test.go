package tftp

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestNegotiateAcknowledgesOnlyAcceptedOptions(t *testing.T) {
	lim := Limits{MaxBlksize: 1468, MaxWindow: 64, MaxUpload: 1 << 20}
	cases := []struct {
		name   string
		req    Request
		size   int64
		want   Params
		refuse ErrorCode // 0: accepted; 8 also written as ErrOptionRefuse
	}{
		{"no options: RFC 1350 defaults, no OACK", Request{Mode: "octet"}, 10,
			Params{Blksize: 512, Window: 1, Tsize: -1}, 0},
		{"edk2 probe: tsize answered with the size", Request{Mode: "octet", Options: []Option{{"tsize", "0"}, {"blksize", "1468"}, {"windowsize", "4"}}}, 123456,
			Params{Blksize: 1468, Window: 4, Tsize: -1, OACK: []Option{{"tsize", "123456"}, {"blksize", "1468"}, {"windowsize", "4"}}}, 0},
		{"blksize above the cap is lowered", Request{Mode: "octet", Options: []Option{{"blksize", "65464"}}}, 1,
			Params{Blksize: 1468, Window: 1, Tsize: -1, OACK: []Option{{"blksize", "1468"}}}, 0},
		{"blksize above the protocol max is lowered", Request{Mode: "octet", Options: []Option{{"blksize", "99999"}}}, 1,
			Params{Blksize: 1468, Window: 1, Tsize: -1, OACK: []Option{{"blksize", "1468"}}}, 0},
		{"windowsize above the cap is lowered", Request{Mode: "octet", Options: []Option{{"windowsize", "65535"}}}, 1,
			Params{Blksize: 512, Window: 64, Tsize: -1, OACK: []Option{{"windowsize", "64"}}}, 0},
		{"unknown options ignored", Request{Mode: "octet", Options: []Option{{"multicast", ""}, {"foo", "bar"}}}, 1,
			Params{Blksize: 512, Window: 1, Tsize: -1}, 0},
		{"timeout in range echoed", Request{Mode: "octet", Options: []Option{{"timeout", "3"}}}, 1,
			Params{Blksize: 512, Window: 1, Tsize: -1, Timeout: 3 * time.Second, OACK: []Option{{"timeout", "3"}}}, 0},
		{"timeout out of range not acknowledged", Request{Mode: "octet", Options: []Option{{"timeout", "0"}}}, 1,
			Params{Blksize: 512, Window: 1, Tsize: -1}, 0},
		{"netascii: no tsize claimed", Request{Mode: "netascii", Options: []Option{{"tsize", "0"}}}, 10,
			Params{Blksize: 512, Window: 1, Tsize: -1, Netascii: true}, 0},
		{"rollover 1 accepted", Request{Mode: "octet", Options: []Option{{"rollover", "1"}}}, 1,
			Params{Blksize: 512, Window: 1, Tsize: -1, RollTo: 1, OACK: []Option{{"rollover", "1"}}}, 0},
		{"write: tsize echoed", Request{Write: true, Mode: "octet", Options: []Option{{"tsize", "1000"}, {"windowsize", "8"}}}, -1,
			Params{Blksize: 512, Window: 1, Tsize: 1000, OACK: []Option{{"tsize", "1000"}}}, 0},
		{"write: tsize over the cap", Request{Write: true, Mode: "octet", Options: []Option{{"tsize", "2000000"}}}, -1, Params{}, ErrDiskFull},
		{"blksize below 8", Request{Mode: "octet", Options: []Option{{"blksize", "7"}}}, 1, Params{}, ErrOptionRefuse},
		{"blksize not a number", Request{Mode: "octet", Options: []Option{{"blksize", "big"}}}, 1, Params{}, ErrOptionRefuse},
		{"windowsize zero", Request{Mode: "octet", Options: []Option{{"windowsize", "0"}}}, 1, Params{}, ErrOptionRefuse},
		{"windowsize beyond 65535", Request{Mode: "octet", Options: []Option{{"windowsize", "65536"}}}, 1, Params{}, ErrOptionRefuse},
		{"tsize negative", Request{Mode: "octet", Options: []Option{{"tsize", "-1"}}}, 1, Params{}, ErrOptionRefuse},
		{"timeout not a number", Request{Mode: "octet", Options: []Option{{"timeout", "soon"}}}, 1, Params{}, ErrOptionRefuse},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Negotiate(c.req, lim, c.size)
			if c.refuse != 0 {
				var pe *ProtocolError
				if !errors.As(err, &pe) || pe.Code != c.refuse {
					t.Fatalf("got %v, want refusal with code %d", err, c.refuse)
				}
				return
			}
			if err != nil {
				t.Fatalf("Negotiate: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}
