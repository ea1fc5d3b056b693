package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"osim/controlplane/api"
)

// diskImageFlags are images register's flags for a disk image.
type diskImageFlags struct {
	disk, compression, rawSize, install string
	path, serial, minSize, maxSize      string
	grow                                bool
	onFailure, finish                   string
	set                                 map[string]bool // flags given
	fs                                  *flag.FlagSet
}

func diskFlags(fs *flag.FlagSet) *diskImageFlags {
	d := &diskImageFlags{fs: fs}
	fs.StringVar(&d.disk, "disk", "", "disk images: the whole-disk file (raw, .gz or .zst)")
	fs.StringVar(&d.compression, "compression", "", "the disk file's compression: gzip, zstd or none (default: from its name)")
	fs.StringVar(&d.rawSize, "raw-size", "", "the disk file's size once decompressed (K/M/G/T; default: unknown, or its size when raw)")
	fs.StringVar(&d.install, "install", "", "install settings file (YAML or JSON: disk {serial, path, min_size, max_size}, grow_last_partition, on_failure, finish)")
	fs.StringVar(&d.path, "install-disk-path", "", "install to this disk (/dev/...)")
	fs.StringVar(&d.serial, "install-disk-serial", "", "install to the disk with this serial")
	fs.StringVar(&d.minSize, "install-disk-min-size", "", "smallest disk to install to (K/M/G/T)")
	fs.StringVar(&d.maxSize, "install-disk-max-size", "", "largest disk to install to (K/M/G/T)")
	fs.BoolVar(&d.grow, "install-grow", false, "grow the last partition to the end of the disk")
	fs.StringVar(&d.onFailure, "install-on-failure", "", "after a failure: wait (default) or poweroff")
	fs.StringVar(&d.finish, "install-finish", "", "after the install: reboot (default), kexec or poweroff")
	return d
}

// apply adds the disk file and the install settings to spec.
func (d *diskImageFlags) apply(spec *api.ImageSpec, add func(path string, f api.ImageFile)) error {
	d.set = map[string]bool{}
	d.fs.Visit(func(f *flag.Flag) { d.set[f.Name] = true })
	installing := d.install != ""
	for n := range d.set {
		installing = installing || strings.HasPrefix(n, "install-")
	}
	if spec.Format != api.FormatDisk {
		if d.disk != "" || d.set["compression"] || d.set["raw-size"] || installing {
			return fmt.Errorf("--disk, --compression, --raw-size and --install* are for --format disk")
		}
		return nil
	}
	if d.disk == "" {
		return fmt.Errorf("--format disk needs --disk FILE")
	}
	f := api.ImageFile{Name: filepath.Base(d.disk), Role: api.RoleDisk, Compression: compressionOf(d.disk)}
	if d.set["compression"] {
		switch d.compression {
		case "none":
			f.Compression = ""
		case api.CompressionGzip, api.CompressionZstd:
			f.Compression = d.compression
		default:
			return fmt.Errorf("--compression %q: want gzip, zstd or none", d.compression)
		}
	}
	if d.rawSize != "" {
		n, err := api.ParseSize(d.rawSize)
		if err != nil {
			return fmt.Errorf("--raw-size: %v", err)
		}
		f.RawSize = n
	}
	add(d.disk, f)
	in, err := d.settings()
	if err != nil {
		return err
	}
	spec.Install = in
	return nil
}

// settings reads --install and applies the --install-* flags over it.
func (d *diskImageFlags) settings() (*api.InstallSettings, error) {
	var in api.InstallSettings
	if d.install != "" {
		b, err := os.ReadFile(d.install)
		if err != nil {
			return nil, fmt.Errorf("--install: %v", err)
		}
		if err := decodeSettings(b, &in); err != nil {
			return nil, fmt.Errorf("--install %s: %v", d.install, err)
		}
	}
	if d.set["install-disk-path"] {
		in.Disk.Path = d.path
	}
	if d.set["install-disk-serial"] {
		in.Disk.Serial = d.serial
	}
	for _, s := range []struct {
		flag, v string
		to      *int64
	}{{"install-disk-min-size", d.minSize, &in.Disk.MinSize}, {"install-disk-max-size", d.maxSize, &in.Disk.MaxSize}} {
		if !d.set[s.flag] {
			continue
		}
		n, err := api.ParseSize(s.v)
		if err != nil {
			return nil, fmt.Errorf("--%s: %v", s.flag, err)
		}
		*s.to = n
	}
	if d.set["install-grow"] {
		in.GrowLastPartition = d.grow
	}
	if d.set["install-on-failure"] {
		in.OnFailure = d.onFailure
	}
	if d.set["install-finish"] {
		in.Finish = d.finish
	}
	if in == (api.InstallSettings{}) {
		return nil, nil
	}
	return &in, nil
}

// decodeSettings reads YAML or JSON (JSON is YAML) into in with the API's
// field names, refusing unknown ones.
func decodeSettings(b []byte, in *api.InstallSettings) error {
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return err
	}
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(in)
}

// compressionOf guesses a disk file's compression from its name.
func compressionOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".gz":
		return api.CompressionGzip
	case ".zst", ".zstd":
		return api.CompressionZstd
	}
	return ""
}

func imageFormat(i api.Image) string {
	if i.Kind == api.KindOS && i.Format == "" {
		return api.FormatInstaller
	}
	return i.Format
}

func installSummary(in *api.InstallSettings) string {
	if in == nil {
		return ""
	}
	var parts []string
	d := in.Disk
	for _, p := range [][2]string{{"disk.path", d.Path}, {"disk.serial", d.Serial}} {
		if p[1] != "" {
			parts = append(parts, p[0]+"="+p[1])
		}
	}
	if d.MinSize > 0 {
		parts = append(parts, fmt.Sprintf("disk.min_size=%d", d.MinSize))
	}
	if d.MaxSize > 0 {
		parts = append(parts, fmt.Sprintf("disk.max_size=%d", d.MaxSize))
	}
	if in.GrowLastPartition {
		parts = append(parts, "grow_last_partition")
	}
	if in.OnFailure != "" {
		parts = append(parts, "on_failure="+in.OnFailure)
	}
	if in.Finish != "" {
		parts = append(parts, "finish="+in.Finish)
	}
	return strings.Join(parts, " ")
}

func rawSize(f api.ImageFile) string {
	if f.RawSize == 0 {
		return ""
	}
	return fmt.Sprint(f.RawSize)
}
