package mdb

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"osim/controlplane/api"
)

// ErrUnprocessable marks an invalid value the API answers with 422
// (a well-formed request whose content is wrong): it is ErrInvalid too.
var ErrUnprocessable = errors.New("unprocessable")

// specError is an ErrInvalid that is also ErrUnprocessable.
type specError struct{ msg string }

func (e *specError) Error() string        { return "invalid: " + e.msg }
func (e *specError) Is(target error) bool { return target == ErrInvalid || target == ErrUnprocessable }

func invalidf(format string, a ...any) error { return &specError{fmt.Sprintf(format, a...)} }

// MaxProcedureScript bounds one procedure's script: it travels in every
// install plan and in the sync log.
const MaxProcedureScript = 64 << 10

// checkImageSpec is the validation of an image spec that needs no blob:
// its names, its files by role, its format and install settings, and its
// procedures. Every error names the field. It fills defaults it may
// (a file's role "" is other).
func checkImageSpec(spec *api.ImageSpec) error {
	if !api.ValidName(spec.Name) {
		return invalidf("name: %q is not a valid image name", spec.Name)
	}
	if !api.ValidName(spec.Version) {
		return invalidf("version: %q is not valid (1-63 of A-Z a-z 0-9 . _ -)", spec.Version)
	}
	if spec.Kind != api.KindOS && spec.Kind != api.KindBoot {
		return invalidf("kind: %q is not os or boot", spec.Kind)
	}
	if spec.Arch != "" && !api.ValidArch(spec.Arch) {
		return invalidf("arch: %q is not a known arch", spec.Arch)
	}
	format, err := imageFormat(spec)
	if err != nil {
		return err
	}
	roles, err := checkFiles(spec.Files, format)
	if err != nil {
		return err
	}
	if err := checkRoles(spec.Kind, format, roles); err != nil {
		return err
	}
	if n := roles[api.RoleAnswer]; n > 1 {
		return invalidf("files: %d answer files, an installer image has at most one (its template)", n)
	}
	if spec.Install != nil {
		if format != api.FormatDisk {
			return invalidf("install: only a disk image (format disk) has install settings")
		}
		if err := checkInstall(*spec.Install); err != nil {
			return err
		}
	}
	if err := checkProcedures(spec.Procedures, format); err != nil {
		return err
	}
	if err := CheckParameters(spec); err != nil {
		return err
	}
	for key := range spec.Defaults {
		if !api.ValidName(key) {
			return invalidf("defaults: key %q is not valid", key)
		}
	}
	return nil
}

// imageFormat is the spec's format ("" for boot images, installer for an
// os image without one).
func imageFormat(spec *api.ImageSpec) (string, error) {
	if spec.Kind == api.KindBoot {
		if spec.Format != "" {
			return "", invalidf("format: %q: a boot image has no format (formats are for os images)", spec.Format)
		}
		return "", nil
	}
	switch spec.Format {
	case "", api.FormatInstaller:
		return api.FormatInstaller, nil
	case api.FormatDisk:
		return api.FormatDisk, nil
	}
	return "", invalidf("format: %q: want %s", spec.Format, strings.Join(api.Formats, " or "))
}

// checkFiles checks every file and counts them by role.
func checkFiles(files []api.ImageFile, format string) (map[string]int, error) {
	names := map[string]int{}
	roles := map[string]int{}
	for i := range files {
		f := &files[i]
		if !api.ValidName(f.Name) {
			return nil, invalidf("files[%d]: name %q is not a valid file name", i, f.Name)
		}
		if j, dup := names[f.Name]; dup {
			return nil, invalidf("files[%d]: name %q is files[%d] again", i, f.Name, j)
		}
		names[f.Name] = i
		if !api.ValidSHA256(f.SHA256) {
			return nil, invalidf("files[%d] %s: sha256 %q is not 64 lower-case hex digits", i, f.Name, f.SHA256)
		}
		if f.Size < 0 {
			return nil, invalidf("files[%d] %s: size %d", i, f.Name, f.Size)
		}
		if f.Role == "" {
			f.Role = api.RoleOther
		}
		switch f.Role {
		case api.RoleNBP:
			if !api.ValidArch(f.Arch) {
				return nil, invalidf("files[%d] %s: nbp needs an arch, not %q", i, f.Name, f.Arch)
			}
		case api.RoleKernel, api.RoleInitrd, api.RoleOther, api.RoleDisk, api.RoleAnswer:
		default:
			return nil, invalidf("files[%d] %s: role %q is not kernel, initrd, nbp, disk, answer or other", i, f.Name, f.Role)
		}
		if err := checkAnswerFile(i, *f, format); err != nil {
			return nil, err
		}
		if f.Arch != "" && !api.ValidArch(f.Arch) {
			return nil, invalidf("files[%d] %s: arch %q is not a known arch", i, f.Name, f.Arch)
		}
		if err := checkDiskFile(i, *f); err != nil {
			return nil, err
		}
		roles[f.Role]++
	}
	return roles, nil
}

// checkDiskFile: compression and raw size belong to a disk file only.
func checkDiskFile(i int, f api.ImageFile) error {
	if f.Role != api.RoleDisk {
		if f.Compression != "" || f.RawSize != 0 {
			return invalidf("files[%d].compression: only a disk file (role disk) has compression and raw_size", i)
		}
		return nil
	}
	switch f.Compression {
	case api.CompressionNone, api.CompressionGzip, api.CompressionZstd:
	default:
		return invalidf("files[%d].compression: %q: want gzip or zstd (or none)", i, f.Compression)
	}
	if f.RawSize < 0 {
		return invalidf("files[%d].raw_size: %d: want 0 (unknown) or more", i, f.RawSize)
	}
	if f.Compression == api.CompressionNone && f.RawSize != 0 && f.RawSize != f.Size {
		return invalidf("files[%d].raw_size: %d: an uncompressed disk file's raw size is its size %d", i, f.RawSize, f.Size)
	}
	return nil
}

// checkRoles checks the files an image of this kind and format needs.
func checkRoles(kind, format string, roles map[string]int) error {
	switch {
	case kind == api.KindBoot:
		if roles[api.RoleDisk] > 0 {
			return invalidf("files: a boot image has no disk file (a disk image is an os image of format disk)")
		}
		if roles[api.RoleKernel] > 1 {
			return invalidf("files: %d kernel files, a boot image has at most one (the osim installer's)", roles[api.RoleKernel])
		}
		if roles[api.RoleInitrd] > 0 && roles[api.RoleKernel] == 0 {
			return invalidf("files: initrd files without a kernel file: the osim installer needs both")
		}
		if roles[api.RoleNBP] == 0 && roles[api.RoleKernel] == 0 {
			return invalidf("files: a boot image needs at least one nbp file with an arch, or the osim installer's kernel")
		}
	case format == api.FormatDisk:
		if n := roles[api.RoleDisk]; n != 1 {
			return invalidf("files: a disk image needs exactly one file of role disk, not %d", n)
		}
		for _, r := range []string{api.RoleKernel, api.RoleInitrd, api.RoleNBP} {
			if roles[r] > 0 {
				return invalidf("files: a disk image has no %s file (the boot image boots the installer)", r)
			}
		}
	default:
		if roles[api.RoleKernel] == 0 {
			return invalidf("files: an os image needs a kernel file")
		}
		if roles[api.RoleDisk] > 0 {
			return invalidf("files: an installer image has no disk file (format disk is for that)")
		}
	}
	return nil
}

// checkInstall checks a disk image's install settings.
func checkInstall(in api.InstallSettings) error {
	switch in.OnFailure {
	case "", api.OnFailureWait, api.OnFailurePowerOff:
	default:
		return invalidf("install.on_failure: %q: want %s or %s", in.OnFailure, api.OnFailureWait, api.OnFailurePowerOff)
	}
	switch in.Finish {
	case "", api.FinishReboot, api.FinishKexec, api.FinishPowerOff:
	default:
		return invalidf("install.finish: %q: want %s, %s or %s", in.Finish, api.FinishReboot, api.FinishKexec, api.FinishPowerOff)
	}
	return CheckDiskRule("install.disk", in.Disk)
}

// CheckDiskRule checks a disk rule; field names the rule in errors
// ("install.disk"). The boot server checks an order's overrides with it.
func CheckDiskRule(field string, d api.DiskRule) error {
	if d.MinSize < 0 {
		return invalidf("%s.min_size: %d: want 0 or more bytes", field, d.MinSize)
	}
	if d.MaxSize < 0 {
		return invalidf("%s.max_size: %d: want 0 or more bytes", field, d.MaxSize)
	}
	if d.MaxSize > 0 && d.MinSize > d.MaxSize {
		return invalidf("%s.min_size: %d is more than max_size %d", field, d.MinSize, d.MaxSize)
	}
	if d.Path != "" && (!strings.HasPrefix(d.Path, "/dev/") || path.Clean(d.Path) != d.Path || len(d.Path) > 255 || strings.ContainsAny(d.Path, " \t\n\x00")) {
		return invalidf("%s.path: %q: want an absolute path under /dev/", field, d.Path)
	}
	if len(d.Serial) > 255 || strings.ContainsAny(d.Serial, "\n\r\x00") {
		return invalidf("%s.serial: %q: at most 255 bytes, one line", field, d.Serial)
	}
	return nil
}

// checkProcedures: pre, post or firstboot (firstboot only for disk
// images: the installer writes it), a valid name, a script of
// 1..MaxProcedureScript bytes.
func checkProcedures(ps []api.Procedure, format string) error {
	names := map[string]int{}
	for i, p := range ps {
		if !api.ValidName(p.Name) {
			return invalidf("procedures[%d].name: %q is not valid", i, p.Name)
		}
		if j, dup := names[p.Name]; dup {
			return invalidf("procedures[%d].name: %q is procedures[%d] again", i, p.Name, j)
		}
		names[p.Name] = i
		switch p.When {
		case api.WhenPre, api.WhenPost:
		case api.WhenFirstBoot:
			if format != api.FormatDisk {
				return invalidf("procedures[%d].when: firstboot is for disk images only", i)
			}
		default:
			return invalidf("procedures[%d].when: %q: want %s, %s or %s", i, p.When, api.WhenPre, api.WhenPost, api.WhenFirstBoot)
		}
		if p.Script == "" {
			return invalidf("procedures[%d].script: empty", i)
		}
		if len(p.Script) > MaxProcedureScript {
			return invalidf("procedures[%d].script: %d bytes, at most %d", i, len(p.Script), MaxProcedureScript)
		}
	}
	return nil
}
