// Package blobs measures HTTP delivery of image blobs: the real osim-bootd
// (its /files/ handler) against Debian's nginx serving the same file, side
// by side in one run, with 1, 100 and 1,000 concurrent readers each
// streaming the whole file in Range chunks. See README.md.
package blobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"osim/bench/internal/lab"
)

// Options is one run.
type Options struct {
	Bootd string // osim-bootd binary
	// Manager is the osim-manager binary (default: next to Bootd); the
	// staged path needs it.
	Manager string
	// Path is how osim-bootd serves the blob: PathStaged (default) or
	// PathFolder.
	Path    string
	Nginx   string // nginx binary (default /usr/sbin/nginx)
	Size    int64  // bytes of the blob (default 64 MiB)
	Chunk   int64  // bytes per Range request (default 8 MiB)
	Readers []int  // concurrency levels (default 1, 100, 1000)
	Rounds  int    // rounds per server per level, interleaved A B A B (default 2)
	// MinBytes: a level whose Rounds would deliver less per server gets
	// more rounds (default 2 GiB), so one reader is not one 30 ms sample.
	MinBytes int64
	// Profile, when set, is where osim-bootd writes a CPU profile of the run.
	Profile string
	Dir     string // work folder (default a temp dir, removed)
	Log     io.Writer
}

// Paths osim-bootd serves the blob by.
const (
	// PathStaged: registered at a manager, staged by the agent for an
	// order, served as /files/images/<id>/<name>: what installers fetch.
	PathStaged = "staged"
	// PathFolder: a file in http.files (standalone boot servers).
	PathFolder = "folder"
)

func (o *Options) defaults() {
	if o.Path == "" {
		o.Path = PathStaged
	}
	if o.Manager == "" {
		o.Manager = filepath.Join(filepath.Dir(o.Bootd), "osim-manager")
	}
	if o.Nginx == "" {
		o.Nginx = "/usr/sbin/nginx"
	}
	if o.Size <= 0 {
		o.Size = 64 << 20
	}
	if o.Chunk <= 0 {
		o.Chunk = 8 << 20
	}
	if len(o.Readers) == 0 {
		o.Readers = []int{1, 100, 1000}
	}
	if o.Rounds <= 0 {
		o.Rounds = 2
	}
	if o.MinBytes <= 0 {
		o.MinBytes = 2 << 30
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Run starts both servers over one folder holding a random blob, then for
// each level runs Rounds rounds of each server in turn.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	if o.Bootd == "" {
		return nil, fmt.Errorf("blobs: no osim-bootd binary given")
	}
	for _, b := range []string{o.Bootd, o.Nginx} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("blobs: %w", err)
		}
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "osim-blobbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		// nginx's workers run as www-data and must reach the files.
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
		dir = d
	}
	files := filepath.Join(dir, "files")
	blob, err := writeBlob(files, o.Size)
	if err != nil {
		return nil, err
	}
	var servers []*server
	var mgr *lab.Proc
	defer func() {
		for _, s := range servers {
			s.proc.Stop()
		}
		if mgr != nil {
			mgr.Stop()
		}
	}()
	for _, start := range []func() (*server, error){
		func() (s *server, err error) {
			switch o.Path {
			case PathFolder:
				return startBootd(ctx, o.Bootd, mkdir(dir, "bootd"), files, blob, o.Profile)
			case PathStaged:
				s, mgr, err = startStaged(ctx, o.Manager, o.Bootd, mkdir(dir, "staged"), filepath.Join(files, blob), o.Profile)
				return s, err
			}
			return nil, fmt.Errorf("blobs: path %q is not %s or %s", o.Path, PathStaged, PathFolder)
		},
		func() (*server, error) { return startNginx(ctx, o.Nginx, mkdir(dir, "nginx"), files, blob) },
	} {
		s, err := start()
		if s != nil {
			servers = append(servers, s)
		}
		if err != nil {
			return nil, err
		}
	}
	rep := &Report{Path: o.Path, Size: o.Size, Chunk: o.Chunk, Started: time.Now().UTC().Format(time.RFC3339)}
	for _, n := range o.Readers {
		lv := Level{Readers: n}
		acc := make([]*Server, len(servers))
		for i, s := range servers {
			acc[i] = &Server{Name: s.name}
		}
		rounds := max(o.Rounds, int((o.MinBytes+int64(n)*o.Size-1)/(int64(n)*o.Size)))
		lv.Rounds = rounds
		for r := range rounds {
			for i, s := range servers {
				rd, err := measure(ctx, s, n, o.Size, o.Chunk)
				if err != nil {
					return rep, err
				}
				acc[i].add(rd)
				fmt.Fprintf(o.Log, "readers %4d round %d %-10s %7.0f MB/s  cpu %5.2f s  wall %6.2f s\n",
					n, r+1, s.name, mbps(rd.bytes, rd.wall), rd.cpu.Seconds(), rd.wall.Seconds())
			}
		}
		for _, a := range acc {
			a.finish()
			lv.Servers = append(lv.Servers, *a)
		}
		rep.Levels = append(rep.Levels, lv)
	}
	return rep, nil
}

// measure is one round of n readers against s, with the server's CPU.
func measure(ctx context.Context, s *server, n int, size, chunk int64) (*round, error) {
	c0, err := s.proc.CPU()
	if err != nil {
		return nil, err
	}
	rd := readAll(ctx, s.url, n, size, chunk)
	c1, err := s.proc.CPU()
	if err != nil {
		return nil, err
	}
	rd.cpu = c1 - c0
	if rd.errs > 0 {
		return rd, fmt.Errorf("blobs: %s, %d readers: %d failed, first: %w", s.name, n, rd.errs, rd.firstErr)
	}
	if s.proc.Exited() {
		return rd, fmt.Errorf("blobs: %s exited: %s", s.name, s.proc.ExitReason())
	}
	return rd, nil
}

func mkdir(parent, name string) string {
	d := filepath.Join(parent, name)
	os.MkdirAll(d, 0o755)
	return d
}

// writeBlob writes size seeded random bytes (incompressible, like a
// compressed disk image) as files/<sha256>, the way blobs are staged.
func writeBlob(dir string, size int64) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := filepath.Join(dir, "blob.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{'o', 's', 'i', 'm', 'b'})
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rng, size)); err != nil {
		f.Close()
		return "", fmt.Errorf("blobs: writing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	name := hex.EncodeToString(h.Sum(nil))
	return name, os.Rename(tmp, filepath.Join(dir, name))
}
