package ceiling

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// GSO limits on Linux: at most 64 segments (UDP_MAX_SEGMENTS) and one
// datagram's worth of bytes per send.
const (
	gsoMaxSegments = 64
	gsoMaxBytes    = 65507
)

// gsoBatch sends a window as few sendmsg calls with UDP_SEGMENT (UDP GSO,
// Linux 4.18+): the kernel cuts one buffer into datagrams of segment size.
// The blocks are copied into one buffer, since a segment must be header
// and payload back to back.
type gsoBatch struct {
	buf []byte
	oob []byte
}

func newGSOBatch(blksize int) *gsoBatch {
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(4+blksize))
	return &gsoBatch{buf: make([]byte, 0, gsoMaxBytes), oob: oob}
}

// send writes msgs (each header + payload) in GSO sends of whole segments;
// only the last message of the window may be short, as GSO requires.
func (g *gsoBatch) send(t *xfer, msgs []ipv4.Message) error {
	seg := 4 + t.blksize
	per := max(1, min(gsoMaxSegments, gsoMaxBytes/seg))
	for len(msgs) > 0 {
		n := min(per, len(msgs))
		g.buf = g.buf[:0]
		for _, m := range msgs[:n] {
			g.buf = append(g.buf, m.Buffers[0]...)
			g.buf = append(g.buf, m.Buffers[1]...)
		}
		oob := g.oob
		if n == 1 {
			oob = nil // one datagram needs no segmentation
		}
		if _, _, err := t.conn.WriteMsgUDPAddrPort(g.buf, oob, t.client); err != nil {
			return fmt.Errorf("ceiling: GSO send of %d segments to %s: %w", n, t.client, err)
		}
		msgs = msgs[n:]
	}
	return nil
}
