package tftp

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

func TestNetasciiTranslatesLineEnds(t *testing.T) {
	cases := []struct{ local, wire string }{
		{"", ""},
		{"abc", "abc"},
		{"a\nb\n", "a\r\nb\r\n"},
		{"a\rb", "a\r\x00b"},
		{"\r\n", "\r\x00\r\n"},
		{"\n\n\r\r", "\r\n\r\n\r\x00\r\x00"},
	}
	for _, c := range cases {
		// One byte at a time too, so a CR split across reads is exercised.
		for _, r := range []io.Reader{bytes.NewReader([]byte(c.local)), iotest.OneByteReader(bytes.NewReader([]byte(c.local)))} {
			got, err := io.ReadAll(newNetasciiReader(r))
			if err != nil || string(got) != c.wire {
				t.Errorf("encode %q = %q %v, want %q", c.local, got, err, c.wire)
			}
		}
		// Decode in every split of the wire bytes into two blocks.
		for cut := 0; cut <= len(c.wire); cut++ {
			var d netasciiDecoder
			out := d.decode(nil, []byte(c.wire[:cut]))
			out = d.decode(out, []byte(c.wire[cut:]))
			out = d.flush(out)
			if string(out) != c.local {
				t.Errorf("decode %q cut at %d = %q, want %q", c.wire, cut, out, c.local)
			}
		}
	}
}

func TestNetasciiEncodeFillsSmallBuffers(t *testing.T) {
	r := newNetasciiReader(bytes.NewReader([]byte("\n\n")))
	buf := make([]byte, 1)
	var out []byte
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(out) != "\r\n\r\n" {
		t.Fatalf("got %q", out)
	}
}
