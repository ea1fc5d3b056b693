// Package build runs an osim-ips recipe (package recipe): it makes the
// image's files in a content-addressed folder OUT/<name>-<version>-<12
// hex of the manifest digest>/ with a manifest.json of what made them,
// and registers the folder at the manager (Register).
//
// Kinds: debian (ips/debian, then ips/diskimage), rootfs (a folder or a
// tarball unpacked in Go, then ips/diskimage), disk (an existing raw or
// qcow2 image, converted by qemu-img, checked), installer (a vendor
// installer's files and an answer-file template, copied), boot
// (ips/bootimage). Disk images are zstd-compressed deterministically.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"osim/controlplane/api"
	"osim/ips/answer"
	"osim/ips/debian"
	"osim/ips/recipe"
)

// The answer-file template of an installer image: its file role and name
// (the answer helper's boot server serves the file of this role).
const (
	RoleAnswer = "answer"
	AnswerFile = "answer.tmpl"
)

// Options say where and how to build.
type Options struct {
	// Out holds the output folders (created); default ".".
	Out string
	// Log gets a line per phase (component=ips); default discards.
	Log *slog.Logger
	// Progress shows long steps; nil shows nothing.
	Progress *Progress
	// CheckAnswer validates an installer's answer-file template;
	// default answer.Check.
	CheckAnswer func(flavor, template string) error
	// Debian builds a debian kind's root; default debian.Build.
	Debian func(context.Context, debian.Options) (debian.Result, error)
}

// Result is the output folder and its manifest.
type Result struct {
	Dir      string
	Manifest Manifest
}

// builder is one run of a recipe.
type builder struct {
	r     *recipe.Recipe
	o     Options
	m     *Manifest
	stage string // becomes the output folder
	work  string // scratch, removed at the end
}

// Build runs r and returns the output folder. Building the same recipe
// over the same inputs again gives the same folder (its name holds the
// manifest's digest); an existing folder of that name is kept.
func Build(ctx context.Context, r *recipe.Recipe, o Options) (res Result, err error) {
	o.defaults()
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return res, fmt.Errorf("build: %w", err)
	}
	b := &builder{r: r, o: o}
	if b.stage, err = os.MkdirTemp(o.Out, ".stage-"+r.Name+"-"); err != nil {
		return res, fmt.Errorf("build: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(b.stage)
		}
	}()
	if b.work, err = os.MkdirTemp(o.Out, ".work-"+r.Name+"-"); err != nil {
		return res, fmt.Errorf("build: %w", err)
	}
	defer os.RemoveAll(b.work)
	if b.m, err = b.start(); err != nil {
		return res, err
	}
	o.Log.Info("building", "kind", r.Kind, "name", r.Name, "version", r.Version, "out", o.Out)
	if err := b.kind(ctx); err != nil {
		return res, err
	}
	return b.finish()
}

func (o *Options) defaults() {
	if o.Out == "" {
		o.Out = "."
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.CheckAnswer == nil {
		o.CheckAnswer = answer.Check
	}
	if o.Debian == nil {
		o.Debian = debian.Build
	}
}

// start fills what the recipe says directly: identity, customization.
func (b *builder) start() (*Manifest, error) {
	r := b.r
	pub := r.Public()
	m := &Manifest{
		Tool: "osim-ips", ToolVersion: ToolVersion(), Name: r.Name, Version: r.Version,
		Kind: api.KindOS, Cmdline: r.Image.Cmdline, Defaults: r.Defaults(), Parameters: pub.Image.Parameters,
		Install: r.Image.Install, Recipe: pub, Tools: toolVersions(kindTools[r.Kind]),
	}
	for _, p := range r.Image.Parameters {
		if p.Secret && p.Default != "" {
			// Named, never shown: the value stays out of every output.
			b.o.Log.Warn("a secret parameter's default is not kept: orders must give it", "parameter", p.Name)
		}
	}
	for i, p := range r.Image.Procedures {
		script := p.Script
		if p.File != "" {
			s, err := os.ReadFile(r.Resolve(p.File))
			if err != nil {
				return nil, fmt.Errorf("build: image.procedures[%d].file: %w", i, err)
			}
			if len(s) == 0 || len(s) > recipe.MaxScript {
				return nil, fmt.Errorf("build: image.procedures[%d].file %s: %d bytes, want 1 to %d", i, p.File, len(s), recipe.MaxScript)
			}
			script = string(s)
		}
		m.Procedures = append(m.Procedures, api.Procedure{Name: p.Name, When: p.When, Script: script})
	}
	return m, nil
}

func (b *builder) kind(ctx context.Context) error {
	switch b.r.Kind {
	case recipe.KindDebian:
		return b.debian(ctx)
	case recipe.KindRootfs:
		return b.rootfs(ctx)
	case recipe.KindDisk:
		return b.disk(ctx)
	case recipe.KindInstaller:
		return b.installer()
	case recipe.KindBoot:
		return b.boot(ctx)
	}
	return fmt.Errorf("build: kind %q: want one of %s", b.r.Kind, strings.Join(recipe.Kinds, ", "))
}

// finish seals the manifest and moves the folder to its content address.
func (b *builder) finish() (Result, error) {
	m := b.m
	slices.SortFunc(m.Files, func(x, y api.ImageFile) int { return strings.Compare(x.Name, y.Name) })
	d, err := m.digest()
	if err != nil {
		return Result{}, err
	}
	m.Digest = d
	if err := writeManifest(b.stage, *m); err != nil {
		return Result{}, err
	}
	if err := os.Chmod(b.stage, 0o755); err != nil {
		return Result{}, fmt.Errorf("build: %w", err)
	}
	dir := filepath.Join(b.o.Out, fmt.Sprintf("%s-%s-%s", m.Name, m.Version, d[:12]))
	if _, err := os.Stat(filepath.Join(dir, ManifestName)); err == nil {
		os.RemoveAll(b.stage)
		b.o.Log.Info("built before: same digest, folder kept", "dir", dir, "digest", d)
		return Result{Dir: dir, Manifest: *m}, nil
	}
	if err := os.Rename(b.stage, dir); err != nil {
		return Result{}, fmt.Errorf("build: %w", err)
	}
	b.o.Log.Info("built", "dir", dir, "digest", d, "files", len(m.Files))
	return Result{Dir: dir, Manifest: *m}, nil
}

// input records a file or folder the build read.
func (b *builder) input(key, path string) error {
	full := b.r.Resolve(path)
	fi, err := os.Stat(full)
	if err != nil {
		return fmt.Errorf("build: %s: %w", key, err)
	}
	var sha string
	var size int64
	if fi.IsDir() {
		sha, size, err = hashTree(full)
	} else {
		sha, size, err = hashFile(full)
	}
	if err != nil {
		return err
	}
	b.m.Inputs = append(b.m.Inputs, Input{Name: key, Path: path, SHA256: sha, Size: size})
	return nil
}

// addFile copies src into the folder as name with role.
func (b *builder) addFile(src, name, role string) error {
	if !api.ValidName(name) {
		return fmt.Errorf("build: %s: file name %q is not valid (1-63 of A-Z a-z 0-9 . _ -)", src, name)
	}
	if slices.ContainsFunc(b.m.Files, func(f api.ImageFile) bool { return f.Name == name }) {
		return fmt.Errorf("build: %s: a second file named %q", src, name)
	}
	dst := filepath.Join(b.stage, name)
	if err := copyFile(src, dst); err != nil {
		return err
	}
	sha, size, err := hashFile(dst)
	if err != nil {
		return err
	}
	b.m.Files = append(b.m.Files, api.ImageFile{Name: name, Role: role, SHA256: sha, Size: size})
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("build: copying %s: %w", src, err)
	}
	return out.Close()
}

// installer copies a vendor installer's kernel, initrds and answer-file
// template; the boot server renders the template per order.
func (b *builder) installer() error {
	in := b.r.Installer
	tmpl, err := os.ReadFile(b.r.Resolve(in.Answer.Template))
	if err != nil {
		return fmt.Errorf("build: installer.answer.template: %w", err)
	}
	if err := b.o.CheckAnswer(in.Answer.Flavor, string(tmpl)); err != nil {
		return fmt.Errorf("build: installer.answer.template %s (%s): %w", in.Answer.Template, in.Answer.Flavor, err)
	}
	b.m.Format = api.FormatInstaller
	files := []struct{ key, path, name, role string }{{"installer.kernel", in.Kernel, filepath.Base(in.Kernel), api.RoleKernel}}
	for i, p := range in.Initrds {
		files = append(files, struct{ key, path, name, role string }{fmt.Sprintf("installer.initrds[%d]", i), p, filepath.Base(p), api.RoleInitrd})
	}
	files = append(files, struct{ key, path, name, role string }{"installer.answer.template", in.Answer.Template, AnswerFile, RoleAnswer})
	for _, f := range files {
		if err := b.input(f.key, f.path); err != nil {
			return err
		}
		if err := b.addFile(b.r.Resolve(f.path), f.name, f.role); err != nil {
			return fmt.Errorf("%s: %w", f.key, err)
		}
	}
	return nil
}

// errNoBoot: a root without a kernel or initrd to boot.
var errNoBoot = errors.New("build: no kernel or initrd in the root")
