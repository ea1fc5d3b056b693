package tftp

import "io"

// Netascii (RFC 764, required by RFC 1350): on the wire a line ends in CR LF
// and a bare CR is sent as CR NUL.

// netasciiReader encodes a local byte stream into netascii.
type netasciiReader struct {
	r       io.Reader
	pending int // a byte still owed after a CR: '\n' or 0, -1 if none
	buf     [4096]byte
	in      []byte
	err     error
}

func newNetasciiReader(r io.Reader) *netasciiReader { return &netasciiReader{r: r, pending: -1} }

func (n *netasciiReader) Read(p []byte) (int, error) {
	i := 0
	for i < len(p) {
		if n.pending >= 0 {
			p[i] = byte(n.pending)
			n.pending = -1
			i++
			continue
		}
		if len(n.in) == 0 {
			if n.err != nil {
				break
			}
			var m int
			m, n.err = n.r.Read(n.buf[:])
			n.in = n.buf[:m]
			continue
		}
		c := n.in[0]
		n.in = n.in[1:]
		switch c {
		case '\n':
			p[i] = '\r'
			n.pending = '\n'
		case '\r':
			p[i] = '\r'
			n.pending = 0
		default:
			p[i] = c
		}
		i++
	}
	if i == 0 && n.err != nil {
		return 0, n.err
	}
	return i, nil
}

// netasciiDecoder turns netascii back into local bytes for uploads. A CR at
// the end of one block is held until the next block says what it was.
type netasciiDecoder struct {
	cr bool
}

// decode appends the local form of wire bytes to dst.
func (d *netasciiDecoder) decode(dst, wire []byte) []byte {
	for _, c := range wire {
		if d.cr {
			d.cr = false
			switch c {
			case '\n':
				dst = append(dst, '\n')
				continue
			case 0:
				dst = append(dst, '\r')
				continue
			default:
				// A bare CR is invalid netascii; keep it rather than lose data.
				dst = append(dst, '\r')
			}
		}
		if c == '\r' {
			d.cr = true
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// flush returns a held CR at the end of the stream.
func (d *netasciiDecoder) flush(dst []byte) []byte {
	if d.cr {
		d.cr = false
		dst = append(dst, '\r')
	}
	return dst
}
