// Package tftpclient is the bench's own raw-UDP TFTP read client: RFC 2347
// options, blksize (RFC 2348), tsize (RFC 2349), windowsize (RFC 7440),
// block rollover, byte-exact checking, and an RRQ-retry mode that mimics
// impatient PXE firmware. Its receive path reads with recvmmsg and reuses
// its buffers so it is not what limits a fast server.
package tftpclient

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"time"

	"osim/internal/tftpwire"
)

// Config describes one read.
type Config struct {
	Server netip.AddrPort
	File   string
	// Blksize and Window are the values asked for; 0 leaves the option out.
	Blksize int
	Window  int
	// Tsize asks for the transfer size (RFC 2349, "tsize 0" in the RRQ).
	Tsize bool
	// Timeout is the retransmit timeout; Retries the number of consecutive
	// timeouts after which the read fails.
	Timeout time.Duration
	Retries int
	// RRQEvery, when set, re-sends the RRQ from the same socket at this
	// interval until the first answer arrives, however long that takes (up to
	// the context's deadline), the way impatient PXE firmware does.
	RRQEvery time.Duration
	// Expected is the file's content; every block is compared with it.
	// Nil skips the check (bytes are only counted).
	Expected []byte
	// RejectStrays answers packets from a transfer ID other than the one
	// chosen with ERROR 5 (RFC 1350 §4). Off by default: many PXE ROMs
	// ignore such packets silently, which is what the retry burst probes.
	RejectStrays bool
}

// Result is what one read did.
type Result struct {
	Bytes    int64
	Duration time.Duration // from the first RRQ to the last block
	// Negotiated is what the server's OACK (or its absence) set.
	Negotiated tftpwire.Negotiated
	OACK       bool
	// Counters of the exchange.
	RRQs       int // RRQs sent, 1 unless retried
	Timeouts   int // timeouts that re-sent an ACK or the RRQ
	Dups       int // DATA packets of blocks already received
	Gaps       int // DATA packets beyond the next expected block
	Strays     int // packets from another transfer ID (a duplicate transfer)
	StrayTIDs  int // distinct source addresses of those packets
	ServerAddr netip.AddrPort
	Err        error
}

// Errors a caller may test for.
var (
	ErrTimeout  = errors.New("tftpclient: timed out")
	ErrMismatch = errors.New("tftpclient: content differs from the expected file")
	ErrServer   = errors.New("tftpclient: server sent an error")
	ErrProtocol = errors.New("tftpclient: protocol violation")
)

// rrqOptions lists the options asked for, in a fixed order.
func (c *Config) rrqOptions() []tftpwire.Option {
	var opts []tftpwire.Option
	if c.Blksize > 0 {
		opts = append(opts, tftpwire.Option{Name: tftpwire.OptBlksize, Value: strconv.Itoa(c.Blksize)})
	}
	if c.Tsize {
		opts = append(opts, tftpwire.Option{Name: tftpwire.OptTsize, Value: "0"})
	}
	if c.Window > 0 {
		opts = append(opts, tftpwire.Option{Name: tftpwire.OptWindowsize, Value: strconv.Itoa(c.Window)})
	}
	return opts
}

// ListenFunc opens the client's UDP socket; the harness swaps it for one that
// opens sockets inside a network namespace.
type ListenFunc func() (*net.UDPConn, error)

// Loopback opens a socket on 127.0.0.1 with a kernel-chosen port.
func Loopback() (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
}
