package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"osim/controlplane/api"
)

var imageHeader = []string{"ID", "NAME", "VERSION", "KIND", "ARCH", "FILES", "CREATED"}

func imageRows(is []api.Image) [][]string {
	rows := make([][]string, 0, len(is))
	for _, i := range is {
		rows = append(rows, []string{i.ID, i.Name, i.Version, i.Kind, i.Arch, fmt.Sprint(len(i.Files)), fmtTime(i.Created)})
	}
	return rows
}

// localFile is one file an image register will upload.
type localFile struct {
	path string
	api.ImageFile
}

func imagesRegister(a *app, args []string) error {
	const help = `usage: osimctl images register --name N --version V --kind os|boot [--arch A]
         [--kernel FILE] [--initrd FILE ...] [--nbp ARCH=FILE ...] [--file ROLE=FILE ...]
         [--cmdline TEMPLATE] [--param k=v ...] [--procedure when:name=FILE ...]
         [--format disk|installer --disk FILE [--compression gzip|zstd|none] [--raw-size SIZE]
          [--install FILE.yaml|json] [--install-disk-path P] [--install-disk-serial S]
          [--install-disk-min-size SIZE] [--install-disk-max-size SIZE] [--install-grow]
          [--install-on-failure wait|poweroff] [--install-finish reboot|kexec|poweroff]]

A disk image (--kind os --format disk) is one whole-disk file (--disk), raw or compressed: the
compression is taken from the name (.gz, .zst) unless --compression says; --raw-size is its size
once decompressed (an uncompressed file's is its size). Its install settings come from --install
(a YAML or JSON file of api.InstallSettings) and the --install-* flags over it. Sizes take K, M,
G or T.

Hashes every file (sha256), uploads it as a blob in chunks, resuming what the manager already
holds (run it again after an interruption), then registers the image. Files are served under
their base name. Progress shows on stderr when it is a terminal.
`
	const name = "osimctl images register"
	fs := a.flags("images.register", help)
	var spec api.ImageSpec
	var kernel string
	var initrds, nbps, others, procs multi
	params := kvFlag{}
	fs.StringVar(&spec.Name, "name", "", "image name")
	fs.StringVar(&spec.Version, "version", "", "image version")
	fs.StringVar(&spec.Kind, "kind", "", "os (what gets installed) or boot (NBPs, the osim installer)")
	fs.StringVar(&spec.Format, "format", "", "os images: disk (a whole-disk image) or installer (kernel + initrds; the default)")
	fs.StringVar(&spec.Arch, "arch", "", "firmware the image is for (optional)")
	fs.StringVar(&kernel, "kernel", "", "kernel file")
	fs.Var(&initrds, "initrd", "initrd file (repeatable, in order)")
	fs.Var(&nbps, "nbp", "network boot program ARCH=FILE (repeatable)")
	fs.Var(&others, "file", "other file ROLE=FILE (repeatable; role kernel, initrd, nbp or other)")
	fs.StringVar(&spec.Cmdline, "cmdline", "", "kernel command line template")
	fs.Var(params, "param", "default parameter k=v (repeatable)")
	paramsFile := fs.String("parameters", "", "typed parameters: a JSON file with a list of {name, type, default, required, secret, description}")
	fs.Var(&procs, "procedure", "script when:name=FILE, when is pre or post (repeatable)")
	chunk := fs.Int("chunk", 8<<20, "upload chunk size in bytes")
	df := diskFlags(fs)
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if spec.Name == "" || spec.Version == "" {
		return usagef(name, "--name and --version are required")
	}
	if spec.Kind != api.KindOS && spec.Kind != api.KindBoot {
		return usagef(name, "--kind %q: want os or boot", spec.Kind)
	}
	if spec.Arch != "" && !api.ValidArch(spec.Arch) {
		return usagef(name, "--arch %q: want one of %s", spec.Arch, strings.Join(api.Arches, ", "))
	}
	if *chunk <= 0 {
		return usagef(name, "--chunk %d: want a positive size", *chunk)
	}
	if len(params) > 0 {
		spec.Defaults = params
	}
	if *paramsFile != "" {
		ps, err := readParameters(*paramsFile)
		if err != nil {
			return usagef(name, "--parameters: %v", err)
		}
		spec.Parameters = ps
	}
	var files []localFile
	add := func(role, arch, path string) {
		files = append(files, localFile{path: path, ImageFile: api.ImageFile{Name: filepath.Base(path), Role: role, Arch: arch}})
	}
	if kernel != "" {
		add(api.RoleKernel, "", kernel)
	}
	addFile := func(path string, f api.ImageFile) { files = append(files, localFile{path: path, ImageFile: f}) }
	if err := df.apply(&spec, addFile); err != nil {
		return usagef(name, "%v", err)
	}
	for _, f := range initrds {
		add(api.RoleInitrd, "", f)
	}
	for _, n := range nbps {
		arch, path, ok := strings.Cut(n, "=")
		if !ok || !api.ValidArch(arch) || path == "" {
			return usagef(name, "--nbp %q: want ARCH=FILE with ARCH one of %s", n, strings.Join(api.Arches, ", "))
		}
		add(api.RoleNBP, arch, path)
	}
	for _, o := range others {
		role, path, ok := strings.Cut(o, "=")
		if !ok || path == "" || !slices.Contains([]string{api.RoleKernel, api.RoleInitrd, api.RoleNBP, api.RoleOther}, role) {
			return usagef(name, "--file %q: want ROLE=FILE with ROLE kernel, initrd, nbp or other (a disk file: --disk)", o)
		}
		add(role, "", path)
	}
	if len(files) == 0 {
		return usagef(name, "no files: give --kernel, --initrd, --nbp or --file")
	}
	seen := map[string]string{}
	for _, f := range files {
		if !api.ValidName(f.Name) {
			return usagef(name, "%s: file name %q is not servable (1-63 of A-Z a-z 0-9 . _ -)", f.path, f.Name)
		}
		if p, dup := seen[f.Name]; dup {
			return usagef(name, "%s and %s would both be served as %q", p, f.path, f.Name)
		}
		seen[f.Name] = f.path
	}
	for _, p := range procs {
		whenName, path, ok := strings.Cut(p, "=")
		when, pname, ok2 := strings.Cut(whenName, ":")
		if !ok || !ok2 || !slices.Contains([]string{api.WhenPre, api.WhenPost, api.WhenFirstBoot}, when) || pname == "" || path == "" {
			return usagef(name, "--procedure %q: want when:name=FILE with when pre, post or firstboot", p)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return usagef(name, "--procedure: %v", err)
		}
		spec.Procedures = append(spec.Procedures, api.Procedure{Name: pname, When: when, Script: string(b)})
	}
	for i := range files {
		if err := hashFile(&files[i]); err != nil {
			return usagef(name, "%v", err)
		}
		if f := &files[i]; f.Role == api.RoleDisk && f.Compression == "" && f.RawSize == 0 {
			f.RawSize = f.Size // raw: its size is its raw size
		}
	}
	done := map[string]bool{}
	for _, f := range files {
		spec.Files = append(spec.Files, f.ImageFile)
		if done[f.SHA256] {
			continue
		}
		if err := a.upload(f, *chunk); err != nil {
			return err
		}
		done[f.SHA256] = true
	}
	img, err := a.client.CreateImage(a.ctx, spec)
	if err != nil {
		return err
	}
	return a.showImage(img)
}

func hashFile(f *localFile) error {
	r, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("hashing %s: %w", f.path, err)
	}
	f.Size = n
	f.SHA256 = hex.EncodeToString(h.Sum(nil))
	return nil
}

// upload sends one file's blob, resuming; progress goes to a terminal.
func (a *app) upload(f localFile, chunk int) error {
	r, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer r.Close()
	var rs io.ReadSeeker = r
	var pr *progressReader
	if a.progress {
		pr = &progressReader{r: r, w: a.stderr, name: f.Name, size: f.Size, now: a.now}
		rs = pr
	}
	st, err := a.client.UploadBlob(a.ctx, f.SHA256, f.Size, rs, chunk)
	if pr != nil {
		pr.finish(err == nil)
	}
	if err != nil {
		return fmt.Errorf("uploading %s: %w", f.path, err)
	}
	if !st.Complete {
		return fmt.Errorf("uploading %s: the manager holds %d of %d bytes and does not call the blob complete", f.path, st.Received, st.Size)
	}
	return nil
}

// progressReader reports how far an upload got, at most every 200 ms.
type progressReader struct {
	r    io.ReadSeeker
	w    io.Writer
	name string
	size int64
	now  func() time.Time

	pos, start int64
	t0, last   time.Time
}

func (p *progressReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.r.Seek(off, whence)
	if err == nil {
		p.pos, p.start = n, n
	}
	return n, err
}

func (p *progressReader) Read(b []byte) (int, error) {
	if p.t0.IsZero() {
		p.t0 = p.now()
	}
	n, err := p.r.Read(b)
	p.pos += int64(n)
	if t := p.now(); t.Sub(p.last) >= 200*time.Millisecond {
		p.last = t
		p.print()
	}
	return n, err
}

func (p *progressReader) print() {
	pct := 100.0
	if p.size > 0 {
		pct = float64(p.pos) * 100 / float64(p.size)
	}
	rate := ""
	if d := p.now().Sub(p.t0).Seconds(); d > 0.5 {
		rate = fmt.Sprintf(" %s/s", mib(int64(float64(p.pos-p.start)/d)))
	}
	fmt.Fprintf(p.w, "\r%-24s %s / %s %5.1f%%%s\x1b[K", p.name, mib(p.pos), mib(p.size), pct, rate)
}

func (p *progressReader) finish(ok bool) {
	if ok {
		p.pos = p.size
	}
	p.print()
	if ok && p.start > 0 {
		fmt.Fprintf(p.w, " (resumed at %s)", mib(p.start))
	}
	fmt.Fprintln(p.w)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func (a *app) showImage(i api.Image) error {
	i = api.RedactImage(i) // the manager masks them too; never print one
	if a.json() {
		return a.printJSON(i)
	}
	a.fields([][2]string{
		{"id", i.ID}, {"name", i.Name}, {"version", i.Version}, {"kind", i.Kind}, {"arch", i.Arch},
		{"format", imageFormat(i)}, {"install", installSummary(i.Install)},
		{"cmdline", i.Cmdline}, {"defaults", formatKV(i.Defaults)},
		{"parameters", formatParams(i.Parameters)}, {"revision", fmt.Sprint(i.Revision)},
		{"created", fmtTime(i.Created)},
	})
	fmt.Fprintln(a.stdout)
	rows := make([][]string, 0, len(i.Files))
	for _, f := range i.Files {
		rows = append(rows, []string{f.Name, f.Role, f.Arch, fmt.Sprint(f.Size), f.Compression, rawSize(f), f.SHA256})
	}
	a.table([]string{"FILE", "ROLE", "ARCH", "SIZE", "COMPRESSION", "RAW", "SHA256"}, rows)
	for _, p := range i.Procedures {
		fmt.Fprintf(a.stdout, "\nprocedure %s (%s):\n%s\n", p.Name, p.When, strings.TrimRight(p.Script, "\n"))
	}
	return nil
}

func imagesList(a *app, args []string) error {
	fs := a.flags("images.list", "usage: osimctl images list\n")
	if _, err := a.parse(fs, args, 0, 0); err != nil {
		return err
	}
	is, err := a.client.ListImages(a.ctx)
	if err != nil {
		return err
	}
	if a.json() {
		if is == nil {
			is = []api.Image{}
		}
		return a.printJSON(api.ImageList{Images: is})
	}
	a.table(imageHeader, imageRows(is))
	return nil
}

func imagesShow(a *app, args []string) error {
	fs := a.flags("images.show", "usage: osimctl images show ID\n")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	i, err := a.client.GetImage(a.ctx, pos[0])
	if err != nil {
		return err
	}
	return a.showImage(i)
}

func imagesRm(a *app, args []string) error {
	fs := a.flags("images.rm", "usage: osimctl images rm ID\n")
	pos, err := a.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := a.client.DeleteImage(a.ctx, pos[0]); err != nil {
		return err
	}
	if !a.json() {
		fmt.Fprintf(a.stdout, "deleted image %s\n", pos[0])
	}
	return nil
}
