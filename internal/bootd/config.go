package bootd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"osim/dataplane/dhcp"
)

// Config is the YAML file of `osim-bootd serve` (see README.md); tests and
// benchmarks fill it in Go.
type Config struct {
	// Address is the boot server's IPv4 address on the provisioning
	// network: DHCP server id and next-server, default host of the URLs.
	Address       string `yaml:"address,omitempty"`
	MetricsListen string `yaml:"metrics_listen,omitempty"`
	// LogLevel is debug, info (default), warn or error; --log-level wins.
	// SIGHUP re-reads it.
	LogLevel string `yaml:"log_level,omitempty"`
	// DataDir holds the process's Badger database (full mode's leases; with a
	// manager, the synced MDB, the event buffer and the staged blobs).
	DataDir string           `yaml:"data_dir,omitempty"`
	DHCP    DHCPSection      `yaml:"dhcp,omitempty"`
	TFTP    TFTPSection      `yaml:"tftp,omitempty"`
	HTTP    HTTPSection      `yaml:"http,omitempty"`
	Boot    BootSection      `yaml:"boot,omitempty"`
	Images  map[string]Image `yaml:"images,omitempty"`
	Targets []Target         `yaml:"targets,omitempty"`
	// Manager, when set, makes the targets, images and orders come from
	// the manager through the agent; Images and Targets must stay empty.
	Manager *ManagerSection `yaml:"manager,omitempty"`
	// XDP, when set, classifies and rate-limits PXE DHCP before the DHCP
	// service: an XDP program on Interface, or the same rules in Go
	// when Interface is empty or the program cannot attach.
	XDP *XDPSection `yaml:"xdp,omitempty"`
}

// XDPSection configures dataplane/xdp (see its README).
type XDPSection struct {
	Interface   string   `yaml:"interface,omitempty"`    // provisioning NIC; empty: the userspace guard only
	Unknown     string   `yaml:"unknown,omitempty"`      // pass, drop, discovery; default: discovery (proxy), pass (full)
	Rate        *uint32  `yaml:"rate,omitempty"`         // packets/s per client (chaddr); 0: no per-client limit; default 2
	Burst       *uint32  `yaml:"burst,omitempty"`        // default 10
	AdmitRate   *uint32  `yaml:"admit_rate,omitempty"`   // new clients per second not on the allow list; 0: unlimited; default 100
	AdmitBurst  *uint32  `yaml:"admit_burst,omitempty"`  // default 200
	Clients     int      `yaml:"clients,omitempty"`      // size of the bucket table; default 65536
	DropClasses []string `yaml:"drop_classes,omitempty"` // e.g. [dhcp] when nothing here answers other DHCP
}

// ManagerSection connects the boot server to a manager.
type ManagerSection struct {
	URL           string `yaml:"url,omitempty"`
	JoinToken     string `yaml:"join_token,omitempty"`      // used once, to register
	JoinTokenFile string `yaml:"join_token_file,omitempty"` // or read it from this file
	Name          string `yaml:"name,omitempty"`            // this boot server's name
	Site          string `yaml:"site,omitempty"`            // the site whose targets it serves
	InsecureTLS   bool   `yaml:"insecure_tls,omitempty"`    // skip TLS verification (labs)
	// CAFile holds the CA certificates (PEM) the manager's certificate is
	// checked against: a manager behind a private CA.
	CAFile string `yaml:"ca_file,omitempty"`
	// HeartbeatInterval is how often it heartbeats (1s..1h); unset, it
	// follows the manager's --heartbeat-interval (10 s until told).
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval,omitempty"`
}

// DHCPSection configures dataplane/dhcp.
type DHCPSection struct {
	Mode       string `yaml:"mode,omitempty"`        // proxy (default)
	Listen     string `yaml:"listen,omitempty"`      // default 0.0.0.0:67
	BootListen string `yaml:"boot_listen,omitempty"` // default 0.0.0.0:4011
	// Pools are full mode's address ranges, one per subnet served.
	Pools []dhcp.PoolConfig `yaml:"pools,omitempty"`
}

// TFTPSection configures dataplane/tftp.
type TFTPSection struct {
	Listen       string `yaml:"listen,omitempty"` // default <address>:69
	Root         string `yaml:"root,omitempty"`
	MaxBlksize   int    `yaml:"max_blksize,omitempty"`
	MaxWindow    int    `yaml:"max_window,omitempty"`
	MaxTransfers int    `yaml:"max_transfers,omitempty"`
	PortRange    string `yaml:"port_range,omitempty"`
	// Requests not acknowledged yet (possibly forged): their own cap, and
	// how long one waits for its first ACK (tftp.Config's defaults: 256, 2s).
	MaxUnacked      int           `yaml:"max_unacked,omitempty"`
	FirstAckTimeout time.Duration `yaml:"first_ack_timeout,omitempty"`
}

// HTTPSection configures dataplane/httpboot.
type HTTPSection struct {
	Listen  string `yaml:"listen,omitempty"`   // default <address>:8080
	BaseURL string `yaml:"base_url,omitempty"` // default http://<listen>
	Files   string `yaml:"files,omitempty"`
	// DiscoverInterval is how long after a machine's accepted discovery
	// report another one of it gets 429 (default 10m); DiscoverRate the
	// reports per second from all machines together (default 100).
	DiscoverInterval time.Duration `yaml:"discover_interval,omitempty"`
	DiscoverRate     float64       `yaml:"discover_rate,omitempty"`
	// EgressCeiling is the most this boot server should deliver (HTTP
	// and TFTP together), e.g. "1GiB/s" or "10Gbit/s": the manager's
	// rollouts start no more installs than it sustains (see
	// docs/rollouts.md for how to measure it). Unset: no such limit.
	EgressCeiling string `yaml:"egress_ceiling,omitempty"`
}

// BootSection is the site's boot policy: which NBP per arch, what unknown
// machines get.
type BootSection struct {
	Arches    []string          `yaml:"arches,omitempty"`
	BootFiles map[string]string `yaml:"boot_files,omitempty"`
	Unknown   string            `yaml:"unknown,omitempty"`
	// DiscoveryImage is the id of the boot image (the osim installer's
	// kernel and initrds) unknown machines boot under unknown: discovery
	// (manager mode); DiscoverThen is what the installer does after its
	// report: poweroff (default) or wait.
	DiscoveryImage string `yaml:"discovery_image,omitempty"`
	DiscoverThen   string `yaml:"discover_then,omitempty"`
	// A known target without a live order that netboots more than
	// LoopBoots times (default 5) within LoopWindow (default 30m) raises
	// one boot.loop event per episode (manager mode).
	LoopBoots  int           `yaml:"loop_boots,omitempty"`
	LoopWindow time.Duration `yaml:"loop_window,omitempty"`
}

// Image is a standalone image: kernel, initrds, command line template.
type Image struct {
	Kernel  string            `yaml:"kernel,omitempty"`
	Initrds []string          `yaml:"initrds,omitempty"`
	Cmdline string            `yaml:"cmdline,omitempty"`
	Params  map[string]string `yaml:"params,omitempty"`
}

// Target is one machine: boot an image (with an order and its status
// token), boot its local disk, or be ignored.
type Target struct {
	MAC    string            `yaml:"mac,omitempty"`
	Action string            `yaml:"action,omitempty"` // boot (default with image), local, ignore
	Image  string            `yaml:"image,omitempty"`
	Params map[string]string `yaml:"params,omitempty"`
	Order  string            `yaml:"order,omitempty"`
	Token  string            `yaml:"token,omitempty"`
}

// LoadConfig reads the file, refusing unknown keys; Check checks it.
// No path: an empty config.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	return &c, nil
}

// WriteFile writes c as the YAML LoadConfig reads (unset keys left out):
// how tests and benchmarks hand a Config built in Go to an osim-bootd
// process.
func (c *Config) WriteFile(path string) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return os.WriteFile(path, b, 0o644)
}
