package api

// The install contract between the boot server and the osim installer
// (cmd/osim-installer), and what an image says about its install.
//
// The installer boots with these on its kernel command line (the boot
// server renders them; an image's own template may add more):
//
//	osim.mode=install|discover
//	osim.url=http://BOOTSERVER:PORT   the boot server's HTTP base
//	osim.order=ORDER osim.token=TOKEN (install mode)
//	osim.mac=MAC                      the MAC it booted from
//
// Install mode: POST {url}/status/{order} with Phase installing and
// Facts (inventory), GET {url}/install/{order} (Authorization: Bearer
// TOKEN) for an InstallPlan, stream each PlanFile from its URL, report
// progress, then done or failed.
//
// Discover mode: POST {url}/discover/{mac} with a DiscoverReport.

// OS image formats (Image.Format, for Kind os).
const (
	// FormatDisk is a whole-disk image the osim installer writes: a file
	// of role RoleDisk, raw, optionally gzip or zstd compressed. The
	// target boots the order's boot image (or its site's default).
	FormatDisk = "disk"
	// FormatInstaller is a vendor installer's kernel and initrds booted
	// directly with the image's command line (an answer file's URL in it).
	// It is what an os image without a Format is.
	FormatInstaller = "installer"
)

// Formats lists the OS image formats.
var Formats = []string{FormatDisk, FormatInstaller}

// RoleDisk is the file role of a disk image's whole-disk file.
const RoleDisk = "disk"

// Compression of a disk file (ImageFile.Compression).
const (
	CompressionNone = ""
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// Procedure.When values.
const (
	WhenPre       = "pre"       // before the disk is written, in the installer
	WhenPost      = "post"      // after, with the installed root mounted at $OSIM_ROOT
	WhenFirstBoot = "firstboot" // once on the installed system (the IPS wires it)
)

// Failure actions (InstallSettings.OnFailure): what the installer does
// after it reported failed. It never retries by itself.
const (
	OnFailureWait     = "wait"     // stay up, the console shows why (default)
	OnFailurePowerOff = "poweroff" // power the machine off
)

// Finish actions (InstallSettings.Finish): what the installer does after
// it reported done.
const (
	FinishReboot   = "reboot" // default: the next PXE boot gets the local disk
	FinishKexec    = "kexec"  // not yet: behaves as reboot
	FinishPowerOff = "poweroff"
)

// DiskRule picks the disk a disk image goes to. Empty fields do not
// narrow; with none set the rule is "the smallest non-removable disk the
// image fits on". A rule that matches several disks (by serial or path
// that is ambiguous, or a size range with ties) is refused, never guessed.
// Order parameters disk.serial, disk.path, disk.min_size and
// disk.max_size (bytes, or with a K/M/G/T suffix) override the image's.
type DiskRule struct {
	Serial  string `json:"serial,omitempty"`
	Path    string `json:"path,omitempty"` // /dev/vda, /dev/disk/by-path/...
	MinSize int64  `json:"min_size,omitempty"`
	MaxSize int64  `json:"max_size,omitempty"`
}

// InstallSettings is what a disk image says about its install.
type InstallSettings struct {
	Disk DiskRule `json:"disk,omitzero"`
	// GrowLastPartition extends the last GPT partition to the end of the
	// disk (the table only; the installed system grows its filesystem).
	GrowLastPartition bool   `json:"grow_last_partition,omitempty"`
	OnFailure         string `json:"on_failure,omitempty"` // OnFailureWait (default) or OnFailurePowerOff
	Finish            string `json:"finish,omitempty"`     // FinishReboot (default), FinishKexec, FinishPowerOff
}

// PlanFile is one file the installer streams.
type PlanFile struct {
	Name        string `json:"name"`
	URL         string `json:"url"` // absolute: the boot server's staged copy
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`                  // bytes as served (compressed)
	RawSize     int64  `json:"raw_size,omitempty"`    // bytes once decompressed, when known
	Compression string `json:"compression,omitempty"` // "", gzip, zstd
	Role        string `json:"role"`
}

// FirstBoot is the first-boot data the installer writes into the
// installed system as a cloud-init NoCloud seed
// (/var/lib/cloud/seed/nocloud/{meta-data,user-data} on its root).
type FirstBoot struct {
	MetaData string `json:"meta_data"`
	UserData string `json:"user_data"`
}

// InstallPlan answers GET /install/{order} on a boot server.
type InstallPlan struct {
	Order    string `json:"order"`
	Attempt  int    `json:"attempt"`
	Target   string `json:"target"`
	Hostname string `json:"hostname"`
	Image    string `json:"image"` // id
	// ImageName and ImageVersion are for the installer's console and log.
	ImageName    string          `json:"image_name"`
	ImageVersion string          `json:"image_version"`
	Files        []PlanFile      `json:"files"`
	Disk         DiskRule        `json:"disk"` // the image's rule with the order's overrides applied
	Install      InstallSettings `json:"install"`
	// Params are the image's defaults merged with the order's parameters.
	Params     map[string]string `json:"params,omitempty"`
	Procedures []Procedure       `json:"procedures,omitempty"`
	FirstBoot  FirstBoot         `json:"first_boot"`
	StatusURL  string            `json:"status_url"`

	// SecretParams name the Params that are secret: the installer never
	// prints them (output tails are scrubbed) and leaves them out of the
	// first-boot procedures' environment.
	SecretParams []string `json:"secret_params,omitempty"`
}

// Install steps, reported in a status's Step so a failure names where.
const (
	StepInventory = "inventory"
	StepPlan      = "plan"
	StepPre       = "pre"
	StepDisk      = "disk" // choosing the disk
	StepWrite     = "write"
	StepVerify    = "verify"
	StepCustomize = "customize"
	StepPost      = "post"
	StepFinish    = "finish"
)

// DiscoverReport is what an unknown machine's installer posts to
// /discover/{mac} in discover mode.
type DiscoverReport struct {
	Arch  string            `json:"arch,omitempty"` // as the boot server saw it in DHCP option 93, when the installer knows
	Facts map[string]string `json:"facts"`
}
