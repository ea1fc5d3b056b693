// Package recipe reads and validates osim-ips build recipes: one YAML
// file per image, checked key by key. Every mistake is named by its key
// path (image.parameters[1].type) and all are reported at once; unknown
// keys are refused. See README.md for every key.
package recipe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"osim/controlplane/api"
)

// Kinds of recipes.
const (
	KindDebian    = "debian"
	KindRootfs    = "rootfs"
	KindDisk      = "disk"
	KindInstaller = "installer"
	KindBoot      = "boot"
)

// Kinds lists them in the order the docs do.
var Kinds = []string{KindDebian, KindRootfs, KindDisk, KindInstaller, KindBoot}

// Parameter types.
const (
	TypeString = "string"
	TypeInt    = "int"
	TypeBool   = "bool"
)

// Disk formats of the disk kind.
const (
	FormatRaw   = "raw"
	FormatQcow2 = "qcow2"
)

// Recipe is one image's recipe. Paths are kept as written; Resolve makes
// them absolute against the recipe's folder.
type Recipe struct {
	Kind      string     `json:"kind"`
	Name      string     `json:"name"`
	Version   string     `json:"version"`
	Arch      string     `json:"arch"`
	Debian    *Debian    `json:"debian,omitempty"`
	Rootfs    *Rootfs    `json:"rootfs,omitempty"`
	Disk      *Disk      `json:"disk,omitempty"`
	Installer *Installer `json:"installer,omitempty"`
	Boot      *Boot      `json:"boot,omitempty"`
	Image     Image      `json:"image"`
	// Dir is the recipe file's folder: relative paths start there.
	Dir string `json:"-"`
}

// Debian is the debian kind's section (ips/debian.Options).
type Debian struct {
	Suite    string   `json:"suite,omitempty"`
	Mirror   string   `json:"mirror,omitempty"`
	Packages []string `json:"packages,omitempty"`
	Kernel   string   `json:"kernel,omitempty"`
	Locale   string   `json:"locale,omitempty"`
	Timezone string   `json:"timezone,omitempty"`
}

// Rootfs is the rootfs kind's section: a directory or a tarball (.tar,
// .tar.gz, .tgz, .tar.zst). Kernel and Initrd are paths inside the root;
// empty, the newest /boot/vmlinuz-* and its /boot/initrd.img-*. Cmdline
// is what the disk's boot loader starts the kernel with (the installed
// system's command line, not the image's template); default
// DefaultRootfsCmdline.
type Rootfs struct {
	Dir     string `json:"dir,omitempty"`
	Tarball string `json:"tarball,omitempty"`
	Kernel  string `json:"kernel,omitempty"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
}

// DefaultRootfsCmdline boots a root labelled osimroot (ips/diskimage's
// default label) with the console on the first serial port too.
const DefaultRootfsCmdline = "root=LABEL=osimroot ro console=tty0 console=ttyS0,115200"

// Disk is the disk kind's section: an existing whole-disk image.
type Disk struct {
	Path   string `json:"path"`
	Format string `json:"format"` // raw (default) or qcow2
}

// Installer is the installer kind's section: a vendor installer's kernel
// and initrds, booted with an answer file the boot server renders.
type Installer struct {
	Kernel  string   `json:"kernel"`
	Initrds []string `json:"initrds"`
	Answer  Answer   `json:"answer"`
}

// Answer names the answer-file template and its flavor (ips/answer).
type Answer struct {
	Flavor   string `json:"flavor"`
	Template string `json:"template"`
}

// Boot is the boot kind's section (ips/bootimage.Options).
type Boot struct {
	Installer   string   `json:"installer"`
	NBPs        bool     `json:"nbps,omitempty"`
	Modules     []string `json:"modules,omitempty"`
	Compression string   `json:"compression,omitempty"`
	Kernel      string   `json:"kernel,omitempty"`
	Busybox     string   `json:"busybox,omitempty"`
}

// Image is the customization every kind shares.
type Image struct {
	Cmdline    string               `json:"cmdline,omitempty"`
	Parameters []Parameter          `json:"parameters,omitempty"`
	Procedures []Procedure          `json:"procedures,omitempty"`
	Install    *api.InstallSettings `json:"install,omitempty"`
	Disk       *DiskLayout          `json:"disk,omitempty"`
}

// Parameter is a typed image parameter an order may override. Its fields
// are api.Parameter's, in the same order, so one converts to the other.
type Parameter struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Default     string `json:"default,omitempty"`
	Required    bool   `json:"required,omitempty"`
	Secret      bool   `json:"secret,omitempty"`
	Description string `json:"description,omitempty"`
}

// Procedure is a script run around the install; File is read into Script
// at build time (relative to the recipe).
type Procedure struct {
	Name   string `json:"name"`
	When   string `json:"when"`
	Script string `json:"script,omitempty"`
	File   string `json:"file,omitempty"`
}

// DiskLayout sizes the assembled disk (debian and rootfs kinds), bytes.
// Size is the whole disk: the root gets what the ESP leaves.
type DiskLayout struct {
	Size     int64 `json:"size,omitempty"`
	ESPSize  int64 `json:"esp_size,omitempty"`
	RootSize int64 `json:"root_size,omitempty"`
}

// Error lists every mistake of a recipe, each starting with its key.
type Error struct {
	File     string
	Mistakes []string
}

func (e *Error) Error() string {
	return fmt.Sprintf("recipe %s has %d mistake(s):\n  %s", e.File, len(e.Mistakes), strings.Join(e.Mistakes, "\n  "))
}

// Load reads and validates the recipe at path.
func Load(path string) (*Recipe, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	r, err := Parse(b, abs)
	var e *Error
	if errors.As(err, &e) {
		e.File = path
	}
	return r, err
}

// Parse validates the recipe in b; dir is where its relative paths start
// (files named by the recipe must exist).
func Parse(b []byte, dir string) (*Recipe, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, &Error{File: "(recipe)", Mistakes: []string{"yaml: " + err.Error()}}
	}
	c := &checker{dir: dir}
	r := &Recipe{Dir: dir}
	var root *yaml.Node
	if len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	c.recipe(root, r)
	if len(c.errs) > 0 {
		return nil, &Error{File: "(recipe)", Mistakes: c.errs}
	}
	return r, nil
}

// Resolve makes p absolute against the recipe's folder.
func (r *Recipe) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.Dir, p)
}

// Defaults are the parameters' default values as an image's defaults
// map, without the secret ones (a secret is never stored in an image).
func (r *Recipe) Defaults() map[string]string {
	d := map[string]string{}
	for _, p := range r.Image.Parameters {
		if p.Default != "" && !p.Secret {
			d[p.Name] = p.Default
		}
	}
	if len(d) == 0 {
		return nil
	}
	return d
}

// Public is the recipe without secrets: what a manifest, a log or a
// registered image may hold.
func (r *Recipe) Public() Recipe {
	c := *r
	c.Image.Parameters = nil
	for _, p := range r.Image.Parameters {
		if p.Secret {
			p.Default = ""
		}
		c.Image.Parameters = append(c.Image.Parameters, p)
	}
	return c
}
