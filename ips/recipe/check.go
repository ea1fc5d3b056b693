package recipe

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"osim/controlplane/api"
	"osim/internal/cmdline"
	"osim/ips/answer"
	"osim/ips/initramfs"
)

// checker walks the YAML tree, filling the recipe and collecting every
// mistake with its key path.
type checker struct {
	dir  string
	errs []string
}

// fields maps the keys a mapping may hold to what reads each value.
type fields map[string]func(n *yaml.Node, key string)

var (
	// debPkgRE: Debian package names (Policy 5.6.1).
	debPkgRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
)

func (c *checker) bad(key, format string, args ...any) {
	c.errs = append(c.errs, key+": "+fmt.Sprintf(format, args...))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapping reads n's keys through f; a missing or null n reads nothing.
// Unknown and repeated keys are mistakes.
func (c *checker) mapping(n *yaml.Node, path string, f fields) bool {
	if isNull(n) {
		return false
	}
	if n.Kind != yaml.MappingNode {
		where := path
		if where == "" {
			where = "(top)"
		}
		c.bad(where, "want a mapping of keys, got %s", nodeKind(n))
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		key := join(path, k)
		read, ok := f[k]
		switch {
		case seen[k]:
			c.bad(key, "given twice")
		case !ok:
			c.bad(key, "unknown key (want one of %s)", strings.Join(sortedKeys(f), ", "))
		default:
			read(v, key)
		}
		seen[k] = true
	}
	return true
}

func sortedKeys(f fields) []string {
	k := make([]string, 0, len(f))
	for s := range f {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", n.Value)
}

// str reads a scalar as text (version: 12 is "12").
func (c *checker) str(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if isNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode {
			c.bad(key, "want a value, got %s", nodeKind(n))
			return
		}
		*dst = n.Value
	}
}

func (c *checker) boolean(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if n.Kind != yaml.ScalarNode || n.Decode(dst) != nil || n.Tag != "!!bool" {
			c.bad(key, "%s is not true or false", nodeKind(n))
		}
	}
}

func (c *checker) strs(dst *[]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			c.bad(key, "want a list, got %s", nodeKind(n))
			return
		}
		for i, e := range n.Content {
			if e.Kind != yaml.ScalarNode || isNull(e) {
				c.bad(fmt.Sprintf("%s[%d]", key, i), "want a value, got %s", nodeKind(e))
				continue
			}
			*dst = append(*dst, e.Value)
		}
	}
}

// size reads bytes: a number, or one with K, M, G or T (api.ParseSize).
func (c *checker) size(dst *int64) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if n.Kind != yaml.ScalarNode {
			c.bad(key, "want a size, got %s", nodeKind(n))
			return
		}
		v, err := api.ParseSize(n.Value)
		if err != nil || v <= 0 {
			c.bad(key, "%q is not a size (bytes, or a number with K, M, G or T)", n.Value)
			return
		}
		*dst = v
	}
}

// list reads a sequence of mappings, each through item(i, node, key).
func (c *checker) list(n *yaml.Node, key string, item func(i int, n *yaml.Node, key string)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		c.bad(key, "want a list, got %s", nodeKind(n))
		return
	}
	for i, e := range n.Content {
		item(i, e, fmt.Sprintf("%s[%d]", key, i))
	}
}

// file checks that p (relative to the recipe) is a regular file.
func (c *checker) file(key, p string) {
	if p == "" {
		return
	}
	st, err := os.Stat(c.resolve(p))
	switch {
	case err != nil:
		c.bad(key, "%q: %v", p, unwrapPath(err))
	case !st.Mode().IsRegular():
		c.bad(key, "%q is not a regular file", p)
	}
}

func (c *checker) folder(key, p string) {
	st, err := os.Stat(c.resolve(p))
	switch {
	case err != nil:
		c.bad(key, "%q: %v", p, unwrapPath(err))
	case !st.IsDir():
		c.bad(key, "%q is not a folder", p)
	}
}

func (c *checker) resolve(p string) string {
	r := Recipe{Dir: c.dir}
	return r.Resolve(p)
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (c *checker) oneOf(key, v string, want ...string) {
	if v != "" && !slices.Contains(want, v) {
		c.bad(key, "%q: want %s", v, strings.Join(want, " or "))
	}
}

// recipe reads the top level, then checks what depends on the kind.
func (c *checker) recipe(n *yaml.Node, r *Recipe) {
	sections := map[string]bool{}
	section := func(name string, read func(*yaml.Node, string)) func(*yaml.Node, string) {
		return func(n *yaml.Node, key string) {
			sections[name] = !isNull(n) // an empty section is a missing one
			read(n, key)
		}
	}
	if !c.mapping(n, "", fields{
		"kind":    c.str(&r.Kind),
		"name":    c.str(&r.Name),
		"version": c.str(&r.Version),
		"arch":    c.str(&r.Arch),
		"debian": section(KindDebian, func(n *yaml.Node, k string) {
			r.Debian = &Debian{}
			c.debian(n, k, r.Debian)
		}),
		"rootfs": section(KindRootfs, func(n *yaml.Node, k string) {
			r.Rootfs = &Rootfs{}
			c.rootfs(n, k, r.Rootfs)
		}),
		"disk": section(KindDisk, func(n *yaml.Node, k string) {
			r.Disk = &Disk{}
			c.disk(n, k, r.Disk)
		}),
		"installer": section(KindInstaller, func(n *yaml.Node, k string) {
			r.Installer = &Installer{}
			c.installer(n, k, r.Installer)
		}),
		"boot": section(KindBoot, func(n *yaml.Node, k string) {
			r.Boot = &Boot{}
			c.boot(n, k, r.Boot)
		}),
		"image": func(n *yaml.Node, k string) { c.image(n, k, &r.Image) },
	}) {
		if n == nil || isNull(n) {
			c.bad("(top)", "the recipe is empty")
		}
		return
	}
	c.identity(r)
	for _, s := range Kinds {
		if sections[s] && s != r.Kind && slices.Contains(Kinds, r.Kind) {
			c.bad(s, "a %s section in a recipe of kind %s", s, r.Kind)
		}
	}
	if r.Kind == KindDebian && r.Debian == nil {
		r.Debian = &Debian{} // every key has a default
	}
	if r.Kind != KindDebian && r.Kind != "" && slices.Contains(Kinds, r.Kind) && !sections[r.Kind] {
		c.bad(r.Kind, "required for kind %s", r.Kind)
	}
	c.kindRules(r)
}

func (c *checker) identity(r *Recipe) {
	switch {
	case r.Kind == "":
		c.bad("kind", "required: one of %s", strings.Join(Kinds, ", "))
	case !slices.Contains(Kinds, r.Kind):
		c.bad("kind", "%q: want one of %s", r.Kind, strings.Join(Kinds, ", "))
	}
	for _, f := range []struct{ key, v string }{{"name", r.Name}, {"version", r.Version}} {
		switch {
		case f.v == "":
			c.bad(f.key, "required")
		case !api.ValidName(f.v):
			c.bad(f.key, "%q: 1-63 letters, digits, '.', '_' and '-', starting with a letter or digit", f.v)
		}
	}
	if r.Arch == "" {
		r.Arch = "amd64"
	}
	c.oneOf("arch", r.Arch, "amd64")
}

// kindRules: the image keys that only some kinds take.
func (c *checker) kindRules(r *Recipe) {
	disky := r.Kind == KindDebian || r.Kind == KindRootfs
	if r.Image.Disk != nil && !disky && r.Kind != "" {
		c.bad("image.disk", "only debian and rootfs recipes assemble a disk")
	}
	if r.Image.Install != nil && (r.Kind == KindInstaller || r.Kind == KindBoot) {
		c.bad("image.install", "only disk images (debian, rootfs, disk) have install settings")
	}
	if len(r.Image.Procedures) > 0 && r.Kind == KindBoot {
		c.bad("image.procedures", "a boot image runs no procedures")
	}
	for i, p := range r.Image.Procedures {
		if p.When == api.WhenFirstBoot && !disky && r.Kind != KindDisk {
			c.bad(fmt.Sprintf("image.procedures[%d].when", i), "firstboot is for disk images (debian, rootfs, disk) only")
		}
	}
	if len(r.Image.Parameters) > 0 && r.Kind == KindBoot {
		c.bad("image.parameters", "a boot image takes no parameters")
	}
}

func (c *checker) debian(n *yaml.Node, key string, d *Debian) {
	c.mapping(n, key, fields{
		"suite": c.str(&d.Suite), "mirror": c.str(&d.Mirror), "packages": c.strs(&d.Packages),
		"kernel": c.str(&d.Kernel), "locale": c.str(&d.Locale), "timezone": c.str(&d.Timezone),
	})
	if d.Suite != "" && !debPkgRE.MatchString(d.Suite) {
		c.bad(key+".suite", "%q is not a suite name (bookworm, trixie, stable)", d.Suite)
	}
	if d.Mirror != "" {
		u, err := url.Parse(d.Mirror)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
			c.bad(key+".mirror", "%q is not an http(s):// or file:// URL", d.Mirror)
		}
	}
	for i, p := range d.Packages {
		if !debPkgRE.MatchString(p) {
			c.bad(fmt.Sprintf("%s.packages[%d]", key, i), "%q is not a Debian package name", p)
		}
	}
	if d.Kernel != "" && !debPkgRE.MatchString(d.Kernel) {
		c.bad(key+".kernel", "%q is not a Debian package name", d.Kernel)
	}
	if d.Locale != "" && strings.ContainsAny(d.Locale, " \t/\n") {
		c.bad(key+".locale", "%q is not a locale (C.UTF-8, en_US.UTF-8)", d.Locale)
	}
	if tz := d.Timezone; tz != "" && (strings.ContainsAny(tz, " \t\n") || strings.Contains(tz, "..") || strings.HasPrefix(tz, "/")) {
		c.bad(key+".timezone", "%q is not a time zone (Etc/UTC, Europe/Berlin)", tz)
	}
}

func (c *checker) rootfs(n *yaml.Node, key string, r *Rootfs) {
	if !c.mapping(n, key, fields{"dir": c.str(&r.Dir), "tarball": c.str(&r.Tarball), "kernel": c.str(&r.Kernel), "initrd": c.str(&r.Initrd), "cmdline": c.str(&r.Cmdline)}) {
		return
	}
	switch {
	case r.Dir == "" && r.Tarball == "":
		c.bad(key, "give dir or tarball")
	case r.Dir != "" && r.Tarball != "":
		c.bad(key, "give dir or tarball, not both")
	case r.Dir != "":
		c.folder(key+".dir", r.Dir)
	default:
		if TarCompression(r.Tarball) == "?" {
			c.bad(key+".tarball", "%q: want a .tar, .tar.gz, .tgz or .tar.zst", r.Tarball)
		}
		c.file(key+".tarball", r.Tarball)
	}
	if r.Cmdline == "" {
		r.Cmdline = DefaultRootfsCmdline
	}
	if strings.ContainsAny(r.Cmdline, "\n\r") || len(r.Cmdline) > 2048 {
		c.bad(key+".cmdline", "one line of at most 2048 bytes")
	}
	for _, f := range []struct{ k, v string }{{"kernel", r.Kernel}, {"initrd", r.Initrd}} {
		if f.v != "" && (!strings.HasPrefix(f.v, "/") || slices.Contains(strings.Split(f.v, "/"), "..")) {
			c.bad(key+"."+f.k, "%q: want an absolute path inside the root (/boot/...)", f.v)
		}
	}
}

// TarCompression is a tarball's compression by its name: "", gzip, zstd,
// or "?" for a name that is no tarball.
func TarCompression(name string) string {
	switch {
	case strings.HasSuffix(name, ".tar"):
		return ""
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		return "gzip"
	case strings.HasSuffix(name, ".tar.zst"):
		return "zstd"
	}
	return "?"
}

func (c *checker) disk(n *yaml.Node, key string, d *Disk) {
	if !c.mapping(n, key, fields{"path": c.str(&d.Path), "format": c.str(&d.Format)}) {
		return
	}
	if d.Path == "" {
		c.bad(key+".path", "required: the disk image file")
	}
	c.file(key+".path", d.Path)
	if d.Format == "" {
		d.Format = FormatRaw
	}
	c.oneOf(key+".format", d.Format, FormatRaw, FormatQcow2)
}

func (c *checker) installer(n *yaml.Node, key string, in *Installer) {
	if !c.mapping(n, key, fields{
		"kernel": c.str(&in.Kernel), "initrds": c.strs(&in.Initrds),
		"answer": func(n *yaml.Node, k string) {
			c.mapping(n, k, fields{"flavor": c.str(&in.Answer.Flavor), "template": c.str(&in.Answer.Template)})
		},
	}) {
		return
	}
	if in.Kernel == "" {
		c.bad(key+".kernel", "required: the installer's kernel")
	}
	c.file(key+".kernel", in.Kernel)
	if len(in.Initrds) == 0 {
		c.bad(key+".initrds", "required: at least one initrd")
	}
	for i, f := range in.Initrds {
		c.file(fmt.Sprintf("%s.initrds[%d]", key, i), f)
	}
	a := in.Answer
	switch {
	case a.Flavor == "":
		c.bad(key+".answer.flavor", "required: %s, %s or %s", answer.Preseed, answer.Kickstart, answer.Autoinstall)
	default:
		c.oneOf(key+".answer.flavor", a.Flavor, answer.Preseed, answer.Kickstart, answer.Autoinstall)
	}
	if a.Template == "" {
		c.bad(key+".answer.template", "required: the answer-file template")
	}
	c.file(key+".answer.template", a.Template)
}

func (c *checker) boot(n *yaml.Node, key string, b *Boot) {
	if !c.mapping(n, key, fields{
		"installer": c.str(&b.Installer), "nbps": c.boolean(&b.NBPs), "modules": c.strs(&b.Modules),
		"compression": c.str(&b.Compression), "kernel": c.str(&b.Kernel), "busybox": c.str(&b.Busybox),
	}) {
		return
	}
	if b.Installer == "" {
		c.bad(key+".installer", "required: the static osim-installer binary")
	}
	c.file(key+".installer", b.Installer)
	c.file(key+".kernel", b.Kernel)
	c.file(key+".busybox", b.Busybox)
	c.oneOf(key+".compression", b.Compression, initramfs.Compressions...)
}

func (c *checker) image(n *yaml.Node, key string, im *Image) {
	c.mapping(n, key, fields{
		"cmdline":    c.str(&im.Cmdline),
		"parameters": func(n *yaml.Node, k string) { c.parameters(n, k, im) },
		"procedures": func(n *yaml.Node, k string) { c.procedures(n, k, im) },
		"install": func(n *yaml.Node, k string) {
			im.Install = &api.InstallSettings{}
			c.install(n, k, im.Install)
		},
		"disk": func(n *yaml.Node, k string) {
			im.Disk = &DiskLayout{}
			c.layout(n, k, im.Disk)
		},
	})
	if im.Cmdline != "" {
		defaults := map[string]string{}
		for _, p := range im.Parameters {
			if !p.Secret && p.Default != "" {
				defaults[p.Name] = p.Default
			}
		}
		if err := cmdline.Check(im.Cmdline, defaults); err != nil {
			c.bad(key+".cmdline", "%v", err)
		}
	}
}

func (c *checker) parameters(n *yaml.Node, key string, im *Image) {
	seen := map[string]bool{}
	c.list(n, key, func(i int, n *yaml.Node, k string) {
		var p Parameter
		if !c.mapping(n, k, fields{
			"name": c.str(&p.Name), "type": c.str(&p.Type), "default": c.str(&p.Default),
			"required": c.boolean(&p.Required), "secret": c.boolean(&p.Secret), "description": c.str(&p.Description),
		}) {
			if isNull(n) {
				c.bad(k, "want a mapping with name and type")
			}
			return
		}
		switch {
		case p.Name == "":
			c.bad(k+".name", "required")
		case !api.ValidName(p.Name):
			c.bad(k+".name", "%q: 1-63 letters, digits, '.', '_' and '-', starting with a letter or digit", p.Name)
		case seen[p.Name]:
			c.bad(k+".name", "%q is given twice", p.Name)
		}
		seen[p.Name] = true
		if p.Type == "" {
			p.Type = TypeString
		}
		c.oneOf(k+".type", p.Type, TypeString, TypeInt, TypeBool)
		if err := CheckValue(p.Type, p.Default); p.Default != "" && err != nil {
			c.bad(k+".default", "%v", secretSafe(p, err))
		}
		if p.Required && p.Default != "" {
			c.bad(k+".required", "a required parameter with a default is never missing: drop one")
		}
		im.Parameters = append(im.Parameters, p)
	})
}

// secretSafe keeps a secret's value out of an error message.
func secretSafe(p Parameter, err error) error {
	if p.Secret {
		return fmt.Errorf("not a valid %s (value withheld: the parameter is secret)", p.Type)
	}
	return err
}

// CheckValue says whether v is a value of type typ.
func CheckValue(typ, v string) error {
	switch typ {
	case TypeInt:
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("%q is not an int", v)
		}
	case TypeBool:
		if v != "true" && v != "false" {
			return fmt.Errorf("%q is not true or false", v)
		}
	}
	return nil
}

func (c *checker) procedures(n *yaml.Node, key string, im *Image) {
	seen := map[string]bool{}
	c.list(n, key, func(i int, n *yaml.Node, k string) {
		var p Procedure
		if !c.mapping(n, k, fields{"name": c.str(&p.Name), "when": c.str(&p.When), "script": c.str(&p.Script), "file": c.str(&p.File)}) {
			if isNull(n) {
				c.bad(k, "want a mapping with name, when and script or file")
			}
			return
		}
		switch {
		case p.Name == "":
			c.bad(k+".name", "required")
		case !api.ValidName(p.Name):
			c.bad(k+".name", "%q: 1-63 letters, digits, '.', '_' and '-', starting with a letter or digit", p.Name)
		case seen[p.Name]:
			c.bad(k+".name", "%q is given twice", p.Name)
		}
		seen[p.Name] = true
		if len(p.Script) > MaxScript {
			c.bad(k+".script", "%d bytes, at most %d", len(p.Script), MaxScript)
		}
		if p.When == "" {
			c.bad(k+".when", "required: %s, %s or %s", api.WhenPre, api.WhenPost, api.WhenFirstBoot)
		}
		c.oneOf(k+".when", p.When, api.WhenPre, api.WhenPost, api.WhenFirstBoot)
		switch {
		case p.Script == "" && p.File == "":
			c.bad(k, "give script or file")
		case p.Script != "" && p.File != "":
			c.bad(k, "give script or file, not both")
		}
		c.file(k+".file", p.File)
		im.Procedures = append(im.Procedures, p)
	})
}

func (c *checker) install(n *yaml.Node, key string, s *api.InstallSettings) {
	c.mapping(n, key, fields{
		"disk": func(n *yaml.Node, k string) {
			d := &s.Disk
			c.mapping(n, k, fields{"serial": c.str(&d.Serial), "path": c.str(&d.Path), "min_size": c.size(&d.MinSize), "max_size": c.size(&d.MaxSize)})
			if d.Path != "" && !strings.HasPrefix(d.Path, "/dev/") {
				c.bad(k+".path", "%q is not a /dev path", d.Path)
			}
			if d.MinSize > 0 && d.MaxSize > 0 && d.MinSize > d.MaxSize {
				c.bad(k, "min_size %d is above max_size %d", d.MinSize, d.MaxSize)
			}
		},
		"grow_last_partition": c.boolean(&s.GrowLastPartition),
		"on_failure":          c.str(&s.OnFailure),
		"finish":              c.str(&s.Finish),
	})
	c.oneOf(key+".on_failure", s.OnFailure, api.OnFailureWait, api.OnFailurePowerOff)
	c.oneOf(key+".finish", s.Finish, api.FinishReboot, api.FinishKexec, api.FinishPowerOff)
}

// MaxScript bounds a procedure's script, as the manager does.
const MaxScript = 64 << 10

// minRoot is the smallest root partition diskimage makes.
const minRoot = 32 << 20

func (c *checker) layout(n *yaml.Node, key string, d *DiskLayout) {
	c.mapping(n, key, fields{"size": c.size(&d.Size), "esp_size": c.size(&d.ESPSize), "root_size": c.size(&d.RootSize)})
	if d.Size > 0 && d.RootSize > 0 {
		c.bad(key, "give size (the root takes the rest) or root_size, not both")
	}
	if d.ESPSize > 0 && d.ESPSize < 32<<20 {
		c.bad(key+".esp_size", "%d bytes: at least 32M", d.ESPSize)
	}
	if d.Size > 0 && d.Size-d.ESPOrDefault()-2<<20 < minRoot {
		c.bad(key+".size", "%d bytes leave less than 32M for the root after the ESP (%d) and the partition tables", d.Size, d.ESPOrDefault())
	}
}

// DefaultESP is the ESP's size when the disk's size is given without one.
const DefaultESP = 64 << 20

// ESPOrDefault is the ESP size a sized disk gets.
func (d DiskLayout) ESPOrDefault() int64 {
	if d.ESPSize > 0 {
		return d.ESPSize
	}
	return DefaultESP
}

// Sizes are diskimage's ESPSize and RootSize for this layout: with Size,
// the root takes what the ESP and the tables (1 MiB each end) leave.
func (d DiskLayout) Sizes() (esp, root int64) {
	if d.Size > 0 {
		esp = d.ESPOrDefault()
		return esp, d.Size - esp - 2<<20
	}
	return d.ESPSize, d.RootSize
}
