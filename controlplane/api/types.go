// Package api holds the manager's wire types (JSON under /api/v1/), the
// order state machine, label selectors and a Go client. The manager, the
// boot server's agent, osimctl and the benchmarks all speak through it.
package api

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Prefix is the path every API route lives under.
const Prefix = "/api/v1"

// Target is a machine the manager installs.
type Target struct {
	ID       string            `json:"id"`
	Hostname string            `json:"hostname"`
	MACs     []string          `json:"macs"` // canonical: lower case, colons
	Arch     string            `json:"arch"` // one of Arches
	Site     string            `json:"site"` // the boot servers of this site serve it
	Address  string            `json:"address,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Power is how osim powers it (nil: it does not; an operator reboots it).
	Power *PowerSpec        `json:"power,omitempty"`
	Facts map[string]string `json:"facts,omitempty"` // inventory reported by the target
	// CurrentOrder is the target's live (not done/failed/cancelled) order, if any.
	CurrentOrder string `json:"current_order,omitempty"`
	// LastOrder is the target's newest order, live or ended (empty: none
	// since this field was added).
	LastOrder string `json:"last_order,omitempty"`
	// State is "" for a normal target, TargetDiscovered for one a boot
	// server registered by itself (discovery.go): no orders until accepted.
	State string `json:"state,omitempty"`
	// BootLoop is when its boot server last reported a boot.loop (the
	// target netbooting again and again without an order); zero: none
	// since its last order or accept.
	BootLoop time.Time `json:"boot_loop,omitzero"`
	Revision uint64    `json:"revision"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// TargetSpec is what a client sends to create or replace a target.
type TargetSpec struct {
	Hostname string            `json:"hostname"`
	MACs     []string          `json:"macs"`
	Arch     string            `json:"arch"`
	Site     string            `json:"site"`
	Address  string            `json:"address,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Power    *PowerSpec        `json:"power,omitempty"`
}

// TargetPatch changes some fields of a target; nil fields stay as they are.
type TargetPatch struct {
	Hostname *string            `json:"hostname,omitempty"`
	MACs     *[]string          `json:"macs,omitempty"`
	Arch     *string            `json:"arch,omitempty"`
	Site     *string            `json:"site,omitempty"`
	Address  *string            `json:"address,omitempty"`
	Labels   *map[string]string `json:"labels,omitempty"`
	// Power replaces the power spec; one with driver "" removes it.
	Power *PowerSpec `json:"power,omitempty"`
}

// Arches are the firmware kinds a target may declare.
var Arches = []string{"bios", "efi-x64", "efi-ia32", "efi-arm64"}

// BootServer is a boot server appliance registered with the manager.
type BootServer struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Site      string   `json:"site"`
	Addresses []string `json:"addresses,omitempty"`
	Subnets   []string `json:"subnets,omitempty"`
	Version   string   `json:"version,omitempty"`
	// BootArches are the firmware arches (Arches) the boot server has a
	// default boot file for, as it said at registration or in its last
	// heartbeat: orders whose boot image has no NBP boot only those.
	BootArches     []string  `json:"boot_arches,omitempty"`
	LastHeartbeat  time.Time `json:"last_heartbeat"`
	SyncedRevision uint64    `json:"synced_revision"`
	// Health is computed by the manager from LastHeartbeat: healthy, stale
	// (no heartbeat for 3 intervals) or down (none for 10).
	Health string `json:"health"`
	// Stats and StagedImages are what its last heartbeat said
	// (Heartbeat.Stats, Heartbeat.StagedImages), at StatsAt.
	Stats        map[string]float64 `json:"stats,omitempty"`
	StatsAt      time.Time          `json:"stats_at,omitzero"`
	StagedImages []string           `json:"staged_images,omitempty"`
	// Egress is the bytes/s it delivered (HTTP and TFTP) between its
	// last two heartbeats (0: not known yet); EgressCeiling is the most
	// it should deliver, from its configuration (0: not set). Rollouts
	// size their orders in flight by both.
	Egress        float64 `json:"egress_bytes_per_second,omitempty"`
	EgressCeiling float64 `json:"egress_ceiling,omitempty"`
	// HeartbeatInterval is the interval (seconds) its last heartbeat said
	// it keeps: its health is judged by it (stale after 3 missed, down
	// after 10); 0: the manager's. ManagerHeartbeatInterval is the
	// manager's (--heartbeat-interval), which a boot server with no
	// interval of its own configured follows.
	HeartbeatInterval        float64   `json:"heartbeat_interval_seconds,omitempty"`
	ManagerHeartbeatInterval float64   `json:"manager_heartbeat_interval_seconds,omitempty"`
	Revision                 uint64    `json:"revision"`
	Created                  time.Time `json:"created"`
}

// Boot server health values.
const (
	HealthHealthy = "healthy"
	HealthStale   = "stale"
	HealthDown    = "down"
)

// RegisterRequest is what a boot server sends with its join token.
type RegisterRequest struct {
	Name      string   `json:"name"`
	Site      string   `json:"site"`
	Addresses []string `json:"addresses,omitempty"`
	Subnets   []string `json:"subnets,omitempty"`
	Version   string   `json:"version,omitempty"`
	// BootArches: the arches it has a default boot file for.
	BootArches []string `json:"boot_arches,omitempty"`
}

// RegisterResponse carries the boot server's own credential (role
// boot-server); it is shown once.
type RegisterResponse struct {
	BootServer BootServer `json:"boot_server"`
	Token      string     `json:"token"`
}

// Heartbeat is what a boot server posts periodically.
type Heartbeat struct {
	SyncedRevision uint64 `json:"synced_revision"`
	Version        string `json:"version,omitempty"`
	// PendingEvents is how many events wait in the boot server's buffer.
	PendingEvents int `json:"pending_events"`
	// BootArches: the arches it has a default boot file for (nil: unchanged).
	BootArches []string `json:"boot_arches,omitempty"`
	// Stats are the boot server's service counters and gauges, each the
	// sum of one of its metric families (BootServerStatNames; nil:
	// unchanged): what the console shows without scraping it.
	Stats map[string]float64 `json:"stats,omitempty"`
	// StagedImages are the images whose every file the boot server holds
	// (null: unchanged, an older boot server; [] none).
	StagedImages []string `json:"staged_images"`
	// EgressCeiling is the bytes/s the boot server should deliver at
	// most (its http.egress_ceiling; 0: not set).
	EgressCeiling float64 `json:"egress_ceiling,omitempty"`
	// IntervalSeconds is how often the boot server heartbeats (0: an
	// older one that does not say; the manager's interval applies).
	IntervalSeconds float64 `json:"interval_seconds,omitempty"`
}

// Limits of a heartbeat's Stats and StagedImages.
const (
	MaxHeartbeatStats = 64
	MaxStagedImages   = 10000
	maxStatNameLength = 100
)

// BootServerStatNames are the metric families a boot server sums into its
// heartbeat's Stats (counters since its start, gauges now).
var BootServerStatNames = []string{
	"osim_dhcp_packets_total",
	"osim_tftp_transfers_completed_total",
	"osim_tftp_transfers_failed_total",
	"osim_tftp_bytes_sent_total",
	"osim_httpboot_requests_total",
	"osim_httpboot_response_bytes_total",
	"osim_xdp_packets_total",
	"osim_disk_free_bytes",
	"osim_agent_blobs_staged_total",
}

// ValidStatName reports whether n may name a heartbeat stat: a metric
// name of lower-case letters, digits and underscores.
func ValidStatName(n string) bool {
	if n == "" || len(n) > maxStatNameLength {
		return false
	}
	for _, c := range n {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// Image kinds.
const (
	KindOS   = "os"   // what gets installed: Format says a disk image or a vendor installer
	KindBoot = "boot" // network boot programs per firmware (iPXE builds) and the osim installer's kernel and initrds
)

// File roles inside an image.
const (
	RoleKernel = "kernel"
	RoleInitrd = "initrd"
	RoleNBP    = "nbp" // a network boot program; ImageFile.Arch says for which firmware
	RoleOther  = "other"
)

// ImageFile is one file of an image, stored as a content-addressed blob.
type ImageFile struct {
	Name   string `json:"name"`   // file name as served: [A-Za-z0-9._-]+
	SHA256 string `json:"sha256"` // 64 lower-case hex digits
	Size   int64  `json:"size"`
	Role   string `json:"role"`           // kernel, initrd, nbp, disk, answer, other
	Arch   string `json:"arch,omitempty"` // for nbp files
	// Flavor is the answer-file flavor of a file of role answer
	// (FlavorPreseed, FlavorKickstart, FlavorAutoinstall); empty otherwise.
	Flavor string `json:"flavor,omitempty"`
	// Compression and RawSize describe a disk file (RoleDisk): "", gzip
	// or zstd, and its size once decompressed (0: unknown).
	Compression string `json:"compression,omitempty"`
	RawSize     int64  `json:"raw_size,omitempty"`
}

// Procedure is a script or template run around the install.
type Procedure struct {
	Name   string `json:"name"`
	When   string `json:"when"` // WhenPre, WhenPost or WhenFirstBoot
	Script string `json:"script"`
}

// Image is a boot or OS image.
type Image struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
	Arch    string `json:"arch,omitempty"`
	// Format is FormatDisk or FormatInstaller for os images ("" is
	// FormatInstaller), empty for boot images.
	Format string `json:"format,omitempty"`
	// Install is how a disk image is installed (nil: the defaults).
	Install *InstallSettings `json:"install,omitempty"`
	Files   []ImageFile      `json:"files"`
	// Cmdline is the kernel command line template (httpboot.CmdlineData).
	Cmdline    string            `json:"cmdline,omitempty"`
	Defaults   map[string]string `json:"defaults,omitempty"`
	Procedures []Procedure       `json:"procedures,omitempty"`
	Revision   uint64            `json:"revision"`
	Created    time.Time         `json:"created"`

	// Parameters are the image's typed parameters (params.go); Defaults
	// derives from them.
	Parameters []Parameter `json:"parameters,omitempty"`
}

// ImageSpec is what a client sends to register an image; every file's
// blob must have been uploaded completely first.
type ImageSpec struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
	Arch    string `json:"arch,omitempty"`
	// Format is FormatDisk or FormatInstaller for os images ("" is
	// FormatInstaller), empty for boot images.
	Format string `json:"format,omitempty"`
	// Install is how a disk image is installed (nil: the defaults).
	Install    *InstallSettings  `json:"install,omitempty"`
	Files      []ImageFile       `json:"files"`
	Cmdline    string            `json:"cmdline,omitempty"`
	Defaults   map[string]string `json:"defaults,omitempty"`
	Procedures []Procedure       `json:"procedures,omitempty"`

	// Parameters, when given, are the image's typed parameters: Defaults
	// is derived from them (a spec whose Defaults disagree is refused).
	Parameters []Parameter `json:"parameters,omitempty"`
}

// BlobStatus says how much of a blob the manager holds (HEAD or PUT reply).
type BlobStatus struct {
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`     // total size announced by the uploader
	Received int64  `json:"received"` // bytes stored contiguously from 0
	Complete bool   `json:"complete"` // received == size and the hash matched
}

// OrderState is where an installation order is.
type OrderState string

// The order states. pending → staged → booting → installing → done|failed,
// and cancelled or failed from any state that is not final; package
// controlplane/lifecycle holds the transitions and what events do.
const (
	OrderPending    OrderState = "pending"    // created, blobs not yet on the boot server
	OrderStaged     OrderState = "staged"     // the boot server holds everything; next PXE boot installs
	OrderBooting    OrderState = "booting"    // the target fetched its boot script
	OrderInstalling OrderState = "installing" // the installer reported for the first time
	OrderDone       OrderState = "done"
	OrderFailed     OrderState = "failed"
	OrderCancelled  OrderState = "cancelled"
)

// OrderStates lists every state in order of progress.
var OrderStates = []OrderState{OrderPending, OrderStaged, OrderBooting, OrderInstalling, OrderDone, OrderFailed, OrderCancelled}

// Final reports whether no transition leaves s (retry makes a new attempt).
func (s OrderState) Final() bool {
	return s == OrderDone || s == OrderFailed || s == OrderCancelled
}

// Live reports whether an order in s still owns its target.
func (s OrderState) Live() bool { return !s.Final() }

// Valid reports whether s is one of OrderStates.
func (s OrderState) Valid() bool { return slices.Contains(OrderStates, s) }

// Transition is one state change of an order.
type Transition struct {
	From   OrderState `json:"from,omitempty"`
	To     OrderState `json:"to"`
	At     time.Time  `json:"at"`
	Reason string     `json:"reason,omitempty"`
	Event  uint64     `json:"event,omitempty"` // the event that caused it, if any
}

// Order is an installation request for one target.
type Order struct {
	ID        string            `json:"id"`
	Target    string            `json:"target"`               // target id
	Site      string            `json:"site"`                 // the target's site when the order was made
	MACs      []string          `json:"macs"`                 // the target's MACs when the order was made
	Arch      string            `json:"arch"`                 // the target's arch
	Image     string            `json:"image"`                // OS image id
	BootImage string            `json:"boot_image,omitempty"` // boot image id; empty: the boot server's own NBPs
	Params    map[string]string `json:"params,omitempty"`     // overrides of the image's defaults
	State     OrderState        `json:"state"`
	Attempt   int               `json:"attempt"` // 1 for the first, +1 per retry
	Progress  int               `json:"progress"`
	Message   string            `json:"message,omitempty"` // last installer message or failure reason
	History   []Transition      `json:"history"`
	// Token authenticates the installer's status calls. Only boot servers
	// see it (through sync); the user-facing API leaves it empty.
	Token    string    `json:"token,omitempty"`
	Revision uint64    `json:"revision"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`

	// Batch is the request id of the OrderRequest that made the order
	// (OrderList.RequestID): GET /orders?batch= lists one mass reimage.
	Batch string `json:"batch,omitempty"`

	// SecretParams name the Params that are secret (by its images'
	// parameters when the order was made): the API masks their values.
	SecretParams []string `json:"secret_params,omitempty"`
}

// OrderRequest creates orders: for one target, a list, or every target a
// label selector matches (a mass reimage). Exactly one of Target, Targets,
// Selector is set. All or nothing: if any target cannot get an order,
// none is created and the error names it.
type OrderRequest struct {
	Target    string            `json:"target,omitempty"`
	Targets   []string          `json:"targets,omitempty"`
	Selector  string            `json:"selector,omitempty"`
	Image     string            `json:"image"`
	BootImage string            `json:"boot_image,omitempty"`
	Params    map[string]string `json:"params,omitempty"`
	// All confirms a selector that matches every target, or more than the
	// manager's share of a site (--max-order-share); without it such a
	// request is refused, whatever the selector's spelling.
	All bool `json:"all,omitempty"`
	// DryRun answers the targets the request would order (an OrderPlan)
	// and writes nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// RequestID makes a retry of this request idempotent: the same id
	// with the same request answers the orders already made. Without
	// it the manager derives one from the request's content.
	RequestID string `json:"request_id,omitempty"`
}

// OrderList is the answer to an OrderRequest and to list calls.
type OrderList struct {
	Orders []Order `json:"orders"`
	Next   string  `json:"next,omitempty"` // paging cursor: pass as ?after=
	// RequestID names the batch an OrderRequest wrote (or replayed).
	RequestID string `json:"request_id,omitempty"`
	// Replayed: the request was a retry of one already written; these
	// are its orders and nothing new was created.
	Replayed bool `json:"replayed,omitempty"`
	// Warnings say why some of the orders created will not boot as they
	// are (a site without a boot server, an arch without a boot file);
	// each is also an order.warning event.
	Warnings []string `json:"warnings,omitempty"`
}

// OrderPlan answers a dry run: the targets the request would order, how
// much of each site they are, and why it would be refused without All.
type OrderPlan struct {
	Targets []PlannedTarget `json:"targets"`
	Sites   []SiteShare     `json:"sites"`
	// NeedsAll is set when the request, as sent, would be refused
	// without "all": true; it says why.
	NeedsAll string `json:"needs_all,omitempty"`
}

// PlannedTarget is one target of an OrderPlan.
type PlannedTarget struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	Site     string `json:"site"`
}

// SiteShare is how many of a site's targets a request would order.
type SiteShare struct {
	Site    string `json:"site"`
	Ordered int    `json:"ordered"`
	Total   int    `json:"total"`
}

// TargetList is a page of targets.
type TargetList struct {
	Targets []Target `json:"targets"`
	Next    string   `json:"next,omitempty"`
	// Total and Before answer ?count=1: every match, and the matches
	// before this page.
	Total  *int `json:"total,omitempty"`
	Before *int `json:"before,omitempty"`
}

// TargetFilter is a person's target listing (GET /targets): every field
// optional.
type TargetFilter struct {
	Selector, Site string
	// State "discovered" lists discovered machines.
	State string
	// Text: hostname, id or MAC contains it; Arch: one of Arches.
	Text, Arch string
	// OrderState: the newest order's state, or "none".
	OrderState string
	BootLoop   bool
	// Count asks for Total and Before.
	Count bool
}

// Query is f as GET /targets parameters.
func (f TargetFilter) Query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"selector": f.Selector, "site": f.Site, "state": f.State, "q": f.Text,
		"arch": f.Arch, "order_state": f.OrderState} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.BootLoop {
		q.Set("boot_loop", "1")
	}
	if f.Count {
		q.Set("count", "1")
	}
	return q
}

// ImageList is a page of images (GET /api/v1/images).
type ImageList struct {
	Images []Image `json:"images"`
	Next   string  `json:"next,omitempty"`
}

// BootServerList answers GET /api/v1/bootservers.
type BootServerList struct {
	BootServers []BootServer `json:"boot_servers"`
}

// TokenList answers GET /api/v1/tokens.
type TokenList struct {
	Tokens []TokenInfo `json:"tokens"`
}

// Event types.
const (
	EventDHCPSeen      = "dhcp.seen"    // a target's firmware asked for DHCP
	EventFileServed    = "file.served"  // a boot file went out (TFTP NBP or iPXE script)
	EventOrderStaged   = "order.staged" // the boot server holds the order's blobs
	EventStageFailed   = "order.stage_failed"
	EventInstallStatus = "install.status"  // installer progress; Phase says which
	EventInventory     = "inventory"       // facts reported by the target
	EventOrderState    = "order.state"     // written by the manager on every transition
	EventBootServer    = "bootserver.join" // a boot server registered
	EventOrderWarning  = "order.warning"   // orders created that will not boot as they are (Message says why)
)

// Event is one thing that happened, as recorded by the manager. Boot
// servers send events with Origin (their id, filled by the manager) and
// OriginSeq (their own sequence, strictly increasing); the manager assigns
// Seq and drops any event whose OriginSeq it has seen.
type Event struct {
	Seq       uint64            `json:"seq"`
	Origin    string            `json:"origin,omitempty"`
	OriginSeq uint64            `json:"origin_seq,omitempty"`
	Time      time.Time         `json:"time"`
	Type      string            `json:"type"`
	Target    string            `json:"target,omitempty"`
	MAC       string            `json:"mac,omitempty"`
	Order     string            `json:"order,omitempty"`
	Phase     string            `json:"phase,omitempty"`    // install.status: installing, done, failed
	Progress  int               `json:"progress,omitempty"` // percent
	Message   string            `json:"message,omitempty"`
	Data      map[string]string `json:"data,omitempty"`
}

// EventBatch is what a boot server uploads.
type EventBatch struct {
	Events []Event `json:"events"`
}

// EventAck answers an upload: every event with OriginSeq <= LastSeq is
// stored (now or before), so the boot server may forget them.
type EventAck struct {
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates"`
	LastSeq    uint64 `json:"last_seq"`
}

// RevisionInfo answers GET /revision: the MDB's revision.
type RevisionInfo struct {
	Revision uint64 `json:"revision"`
}

// EventList is a page of events, oldest first.
type EventList struct {
	Events []Event `json:"events"`
	// Last is the highest Seq returned, or the query's after when none:
	// pass it as ?after= to continue.
	Last uint64 `json:"last"`
}

// Change kinds in a sync stream.
const (
	ChangeTarget = "target"
	ChangeOrder  = "order"
	ChangeImage  = "image"
)

// Change is one object's state at a revision as a boot server sees it.
// A boot server's view of its site is: the site's targets, the site's
// live orders (not done, failed or cancelled) and every image. Deleted
// says the object left the view (deleted, or moved to another site); an
// order change whose state is final also means the order left the view.
type Change struct {
	Rev     uint64  `json:"rev"`
	Kind    string  `json:"kind"`
	ID      string  `json:"id"`
	Deleted bool    `json:"deleted,omitempty"`
	Target  *Target `json:"target,omitempty"`
	Order   *Order  `json:"order,omitempty"`
	Image   *Image  `json:"image,omitempty"`
}

// SyncResponse answers GET /api/v1/sync.
//
// Incremental (?since=N): Changes are every change for the caller's site
// with N < Rev <= Revision, whole revisions only; apply them and
// Revision atomically, then ask again with since=Revision. With ?wait=,
// the call blocks until there is something past N or the wait ends.
//
// Snapshot: when N is older than the manager's change log (or 0), the
// answer has Snapshot set and is the first page of the caller's whole view
// as of revision Revision. Fetch the next pages with ?snapshot=Cursor
// until Cursor is empty; then replace the local store with the pages, set
// it to Revision, and continue incrementally from there (objects in the
// pages may be newer than Revision; replaying changes is idempotent).
type SyncResponse struct {
	Revision uint64   `json:"revision"`
	Snapshot bool     `json:"snapshot,omitempty"`
	Cursor   string   `json:"cursor,omitempty"`
	Changes  []Change `json:"changes"`
}

// Roles a token may carry.
const (
	RoleAdmin      = "admin"       // everything, tokens included
	RoleOperator   = "operator"    // targets, images, orders, events
	RoleViewer     = "viewer"      // read only
	RoleBootServer = "boot-server" // sync, heartbeat, event upload, blob download
	RoleJoin       = "join"        // register a boot server, nothing else
)

// Roles lists every role.
var Roles = []string{RoleAdmin, RoleOperator, RoleViewer, RoleBootServer, RoleJoin}

// TokenRequest asks for a new token (admin only).
//
// A join token is bound: Site is required (it registers boot servers of
// that site only), Name, when set, is the one boot server name it admits,
// Uses is how many registrations it admits (default 1) and TTL how long
// it lives, a Go duration ("24h", the default). Other roles take none of
// Site, Uses and TTL; their Name is a label.
type TokenRequest struct {
	Role string `json:"role"`
	Name string `json:"name,omitempty"`
	Site string `json:"site,omitempty"`
	Uses int    `json:"uses,omitempty"`
	TTL  string `json:"ttl,omitempty"`
}

// TokenInfo describes a token; Secret is set only in the answer that
// created it (the manager stores a hash).
type TokenInfo struct {
	ID         string    `json:"id"`
	Role       string    `json:"role"`
	Name       string    `json:"name,omitempty"`
	BootServer string    `json:"boot_server,omitempty"`
	Created    time.Time `json:"created"`
	Secret     string    `json:"token,omitempty"`
	// Join tokens only: the site they register boot servers of, the
	// registrations they admit and have admitted, and when they expire.
	Site    string    `json:"site,omitempty"`
	Uses    int       `json:"uses,omitempty"`
	Used    int       `json:"used,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
}

// Error is the body of every 4xx/5xx answer.
type Error struct {
	Code    int    `json:"code"`    // the HTTP status
	Message string `json:"message"` // what is wrong, naming the field or value
	// Reason and Refused say more where a caller acts on them: a boot
	// server's event batch refused for naming another site's machines
	// has Reason ErrReasonForeignSite and Refused the OriginSeq of every
	// such event.
	Reason  string   `json:"reason,omitempty"`
	Refused []uint64 `json:"refused,omitempty"`
}

// ErrReasonForeignSite is Error.Reason of an event batch refused because
// events in it name another site's orders or targets.
const ErrReasonForeignSite = "foreign_site"

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Message) }

// CanonicalMAC parses s as a 6-byte Ethernet address in any form
// net.ParseMAC accepts and returns it lower case with colons.
func CanonicalMAC(s string) (string, error) {
	m, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("%q is not a MAC address", s)
	}
	if len(m) != 6 {
		return "", fmt.Errorf("%q is not a 6-byte Ethernet MAC address", s)
	}
	return m.String(), nil
}

var (
	reName     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	reHostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	reSHA256   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidName checks names of sites, boot servers, images, files and label
// keys: 1-63 of [A-Za-z0-9._-], starting with a letter or digit.
func ValidName(s string) bool { return reName.MatchString(s) }

// ValidHostname checks an RFC 1123 host name (at most 253 characters).
func ValidHostname(s string) bool { return len(s) <= 253 && reHostname.MatchString(s) }

// ValidSHA256 checks 64 lower-case hex digits.
func ValidSHA256(s string) bool { return reSHA256.MatchString(s) }

// ValidArch reports whether s is one of Arches.
func ValidArch(s string) bool { return slices.Contains(Arches, s) }

// Validate checks a target spec and canonicalises its MACs in place. The
// error names the field: `macs[1]: "zz" is not a MAC address`.
func (s *TargetSpec) Validate() error {
	if s.Hostname == "" {
		return fmt.Errorf("hostname: is required")
	}
	if !ValidHostname(s.Hostname) {
		return fmt.Errorf("hostname: %q is not a valid host name", s.Hostname)
	}
	if len(s.MACs) == 0 {
		return fmt.Errorf("macs: at least one MAC address is required")
	}
	seen := map[string]int{}
	for i, m := range s.MACs {
		c, err := CanonicalMAC(m)
		if err != nil {
			return fmt.Errorf("macs[%d]: %v", i, err)
		}
		if j, dup := seen[c]; dup {
			return fmt.Errorf("macs[%d]: %s is macs[%d] again", i, c, j)
		}
		seen[c] = i
		s.MACs[i] = c
	}
	if s.Arch == "" {
		s.Arch = "bios"
	}
	if !ValidArch(s.Arch) {
		return fmt.Errorf("arch: %q is not one of %s", s.Arch, strings.Join(Arches, ", "))
	}
	if s.Site == "" {
		return fmt.Errorf("site: is required: the site whose boot servers serve the target")
	}
	if !ValidName(s.Site) {
		return fmt.Errorf("site: %q is not a valid site name", s.Site)
	}
	if s.Address != "" {
		a, err := netip.ParseAddr(s.Address)
		if err != nil || !a.Is4() {
			return fmt.Errorf("address: %q is not an IPv4 address", s.Address)
		}
	}
	if s.Power != nil {
		if err := s.Power.Validate(); err != nil {
			return err
		}
	}
	for k, v := range s.Labels {
		if !ValidName(k) {
			return fmt.Errorf("labels: key %q is not valid (1-63 of A-Z a-z 0-9 . _ -)", k)
		}
		if len(v) > 63 || (v != "" && !ValidName(v)) {
			return fmt.Errorf("labels.%s: value %q is not valid (0-63 of A-Z a-z 0-9 . _ -)", k, v)
		}
	}
	return nil
}
