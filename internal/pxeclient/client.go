package pxeclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Phases, as named in errors and in Result.Phases.
const (
	PhaseDiscover  = "dhcp-discover"
	PhaseRequest   = "dhcp-request"
	PhaseProxy     = "pxe-4011"
	PhaseTsize     = "tftp-tsize-probe"
	PhaseTFTP      = "tftp"
	PhaseScript    = "http-script"
	PhaseKernel    = "http-kernel"
	PhaseInitrd    = "http-initrd"
	PhaseInstall   = "install" // the simulated installer, timed as a whole
	PhaseStatus    = "status"  // a status call the status endpoint refused
	phaseMaxStages = 4
)

// ErrNoOffer: no DHCP offer arrived within the retry schedule.
var ErrNoOffer = errors.New("no DHCP offer")

// PhaseError is a failure in one phase of one stage.
type PhaseError struct {
	Stage string // firmware name
	Phase string
	Err   error
}

func (e *PhaseError) Error() string {
	return fmt.Sprintf("pxeclient: %s: %s: %v", e.Stage, e.Phase, e.Err)
}

func (e *PhaseError) Unwrap() error { return e.Err }

// Config is one simulated target.
type Config struct {
	Interface string           // the client's interface; DHCP is bound to it
	MAC       net.HardwareAddr // chaddr; default the interface's address
	Firmware  Firmware
	// Schedule: how long to wait for a first offer after each DISCOVER
	// (nil: DefaultSchedule). Also used for REQUESTs and the 4011 exchange.
	Schedule []time.Duration
	// OfferWindow: how long to keep collecting offers after the first one;
	// default 500 ms.
	OfferWindow time.Duration
	// TFTPTimeout is the retransmit timeout of TFTP (default 1 s, 5 tries).
	TFTPTimeout time.Duration
	// OnLease is called with the DHCPACK of an address offer (full mode),
	// e.g. to put the address on the interface before TFTP; nil: nothing.
	OnLease func(ack *dhcpv4.DHCPv4) error
	// Do runs socket-opening calls where the client lives (Netns.Do);
	// nil: here.
	Do func(func() error) error
	// Install, when set, runs the simulated installer after the kernel
	// and initrds are fetched; nil: Boot stops there.
	Install *InstallConfig
	// Shared, when set, carries DHCP over one socket shared by many
	// simulated targets (SharedDHCP) instead of binding port 68 per
	// client; replies are told apart by chaddr (MAC must be set).
	Shared *SharedDHCP
	// ClientIP, when valid, is the address the site's DHCP server gave
	// this target (proxy mode): sent as ciaddr on port 4011 and used as
	// the source of TFTP and HTTP, instead of the interface's address.
	ClientIP netip.Addr
	// BindLease makes TFTP and HTTP use the address a DHCPACK leased as
	// their source (full mode with many targets on one interface: the
	// addresses must be local there, e.g. by a "local" route, see
	// SharedDHCP).
	BindLease bool
}

// Offer is one DHCPOFFER seen.
type Offer struct {
	ServerID netip.Addr // option 54
	Next     netip.Addr // siaddr
	YourIP   netip.Addr // yiaddr, unspecified for a proxy offer
	Proxy    bool       // no address, option 60 PXEClient
	BootFile string
}

// Stage is what one boot program's DHCP learned.
type Stage struct {
	Firmware string
	XID      [4]byte
	Offers   []Offer
	Lease    netip.Addr     // address from a DHCPACK on port 67 (full mode)
	ProxyACK netip.AddrPort // where the 4011 ACK came from (proxy mode)
	BootFile string         // the answer: a TFTP path or an HTTP URL
	Server   netip.Addr     // TFTP server (siaddr of the answer)
}

// Fetched is one file transferred.
type Fetched struct {
	Kind     string // nbp, script, kernel, initrd
	URL      string // tftp://server/name or the HTTP URL
	Size     int64
	SHA256   [32]byte
	Duration time.Duration
}

// Timing is one phase's duration.
type Timing struct {
	Stage, Phase string
	Duration     time.Duration
}

// Result is everything one boot did.
type Result struct {
	Stages []Stage
	Files  []Fetched
	Script string // the iPXE script's text
	Phases []Timing
	// Installed is the final phase the installer reported (done or
	// failed); empty when no install ran or its reports did not get through.
	Installed string
	// StatusCalls counts the status POSTs sent, retries included.
	StatusCalls int
	// Image is what an install-mode boot did with the disk image; nil
	// for the status-only flow.
	Image *ImageResult
}

// Boot runs the chain until the kernel and initrds are fetched, or until a
// phase fails. The partial Result is returned either way.
func Boot(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Do == nil {
		cfg.Do = func(f func() error) error { return f() }
	}
	if cfg.Schedule == nil {
		cfg.Schedule = DefaultSchedule
	}
	if cfg.OfferWindow <= 0 {
		cfg.OfferWindow = 500 * time.Millisecond
	}
	if cfg.TFTPTimeout <= 0 {
		cfg.TFTPTimeout = time.Second
	}
	if cfg.MAC == nil {
		err := cfg.Do(func() error {
			ifc, err := net.InterfaceByName(cfg.Interface)
			if err != nil {
				return err
			}
			cfg.MAC = ifc.HardwareAddr
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("pxeclient: interface %q: %w", cfg.Interface, err)
		}
	}
	c := &client{cfg: cfg, res: &Result{}}
	fw := &cfg.Firmware
	for range phaseMaxStages {
		st, err := c.dhcp(ctx, fw)
		if err != nil {
			return c.res, err
		}
		if isHTTP(st.BootFile) {
			return c.res, c.httpStage(ctx, fw, st.BootFile)
		}
		if err := c.tftp(ctx, fw, st.Server, st.BootFile); err != nil {
			return c.res, err
		}
		if fw.Next == nil {
			return c.res, nil
		}
		fw = fw.Next
	}
	return c.res, &PhaseError{Stage: fw.Name, Phase: PhaseDiscover, Err: errors.New("boot loop: too many stages")}
}

// BootScript plays a target whose firmware has already chainloaded iPXE
// and got scriptURL as its boot file: from the GET of the script on, as
// Boot does after an HTTP boot file (kernel, initrds, and the installer
// when cfg.Install is set). For tests that need no DHCP (no namespaces):
// the console's browser test plays its targets with it.
func BootScript(ctx context.Context, cfg Config, scriptURL string) (*Result, error) {
	if cfg.Do == nil {
		cfg.Do = func(f func() error) error { return f() }
	}
	c := &client{cfg: cfg, res: &Result{}}
	return c.res, c.httpStage(ctx, &cfg.Firmware, scriptURL)
}

func isHTTP(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

type client struct {
	cfg  Config
	res  *Result
	http *http.Client
	bind netip.Addr // source address of TFTP and HTTP (BindLease)
}

// source is the address TFTP and HTTP sockets bind to; invalid: any.
func (c *client) source() netip.Addr {
	if c.bind.IsValid() {
		return c.bind
	}
	return c.cfg.ClientIP
}

// timed runs f as one phase and records its duration.
func (c *client) timed(fw *Firmware, phase string, f func() error) error {
	t0 := time.Now()
	err := f()
	c.res.Phases = append(c.res.Phases, Timing{Stage: fw.Name, Phase: phase, Duration: time.Since(t0)})
	if err != nil {
		var pe *PhaseError
		if errors.As(err, &pe) {
			return err
		}
		return &PhaseError{Stage: fw.Name, Phase: phase, Err: err}
	}
	return nil
}
