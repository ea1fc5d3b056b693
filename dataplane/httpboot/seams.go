package httpboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Sentinel errors the seams return so the handler answers with the right code.
var (
	// ErrUnknownTarget: no boot decision for this MAC (404).
	ErrUnknownTarget = errors.New("unknown target")
	// ErrNotFound: no such file in the store (404).
	ErrNotFound = errors.New("file not found")
	// ErrForbidden: the name exists but may not be served, or leaves the root (403).
	ErrForbidden = errors.New("forbidden")
	// ErrUnknownOrder: no order with this id on this boot server (404).
	ErrUnknownOrder = errors.New("unknown order")
)

// Boot is what a Scripts source decides for one target: boot an installer
// (Kernel, Initrds, Cmdline) or leave it to its local disk (Local).
type Boot struct {
	// Local renders the boot-local script; every other field is ignored.
	Local bool
	// Kernel is a file name in the store (served under /files/) or an
	// absolute http(s) URL.
	Kernel string
	// Initrds are file names or absolute URLs, loaded in this order.
	Initrds []string
	// Cmdline is a text/template for the kernel command line; see
	// CmdlineData for its fields. Every value it prints is validated.
	Cmdline string
	// Params are the image's parameters merged with the order's overrides.
	Params map[string]string
	// Order is the installation order id; the installer reports to
	// /status/<Order>.
	Order string
	// Token authenticates the installer's status reports for Order.
	Token string
	// Install boots the osim installer: the script appends
	// osim.mode=install osim.url=<absolute base> osim.order osim.token
	// osim.mac to the rendered Cmdline (internal/cmdline.InstallArgs).
	Install bool
	// Answer: the order's image is a vendor installer with an answer
	// file, served at GET /answer/<Order>?token=<Token> (answer.go) and
	// named by {{.AnswerURL}} in Cmdline; the script's URLs are absolute.
	Answer bool
}

// Scripts decides what a target boots. It is this package's seam to the
// boot server's store; StaticScripts serves a fixed map.
type Scripts interface {
	Script(ctx context.Context, mac net.HardwareAddr) (Boot, error)
}

// File is what a Files store hands out: seekable for Range requests, sized,
// dated for Last-Modified, and with a strong ETag (a content hash).
type File interface {
	io.ReadSeeker
	io.Closer
	Size() int64
	ModTime() time.Time
	// ETag is the strong entity tag, quotes included.
	ETag() string
}

// Files opens served files by their clean slash name (no leading slash, no
// "..": the handler refuses those before asking). FolderFiles serves a directory.
type Files interface {
	Open(ctx context.Context, name string) (File, error)
}

// StaticScripts answers from a fixed map keyed by MAC (any form
// net.ParseMAC accepts); for standalone runs and tests.
type StaticScripts map[string]Boot

// Script returns the entry for mac or ErrUnknownTarget.
func (s StaticScripts) Script(_ context.Context, mac net.HardwareAddr) (Boot, error) {
	want := mac.String()
	if b, ok := s[want]; ok {
		return b, nil
	}
	for k, b := range s {
		m, err := net.ParseMAC(k)
		if err == nil && m.String() == want {
			return b, nil
		}
	}
	return Boot{}, fmt.Errorf("%w: %s", ErrUnknownTarget, want)
}

// parseMAC accepts 52:54:00:12:34:56, 52-54-00-12-34-56 (iPXE ${mac:hexhyp})
// and 525400123456 (iPXE ${mac:hexraw}); only 6-byte Ethernet addresses.
func parseMAC(s string) (net.HardwareAddr, error) {
	if len(s) == 12 && !strings.ContainsAny(s, ":-.") {
		var b strings.Builder
		for i := 0; i < 12; i += 2 {
			if i > 0 {
				b.WriteByte(':')
			}
			b.WriteString(s[i : i+2])
		}
		s = b.String()
	}
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("httpboot: %q is not a MAC address: %w", s, err)
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("httpboot: %q is not a 6-byte Ethernet MAC address", s)
	}
	return mac, nil
}
