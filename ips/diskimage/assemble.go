package diskimage

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"

	"osim/ips/gpt"
)

type part struct {
	file         string
	offset, size int64
	gpt          gpt.Partition
}

// assemble writes the disk: size for the partitions plus 1 MiB at each
// end (the GPT and its backup), gptmbr.bin, the table, each partition's
// file at its offset. Zero blocks are skipped, so the raw file is sparse.
func assemble(s Spec, parts []part) ([]gpt.Partition, error) {
	last := parts[len(parts)-1]
	total := last.offset + last.size + MiB
	mbr, err := os.ReadFile(s.Tools.GPTMBR)
	if err != nil {
		return nil, fmt.Errorf("diskimage: syslinux's GPT MBR: %w", err)
	}
	if len(mbr) > gpt.BootCodeSize {
		mbr = mbr[:gpt.BootCodeSize]
	}
	t := gpt.Table{DiskGUID: gpt.DerivedGUID(s.Seed + "/disk"), Sectors: uint64(total / gpt.SectorSize), BootCode: mbr}
	for _, p := range parts {
		g := p.gpt
		g.FirstLBA = uint64(p.offset / gpt.SectorSize)
		g.LastLBA = uint64((p.offset+p.size)/gpt.SectorSize) - 1
		t.Partitions = append(t.Partitions, g)
	}
	if err := truncate(s.Out, total); err != nil {
		return nil, err
	}
	out, err := os.OpenFile(s.Out, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("diskimage: %w", err)
	}
	defer out.Close()
	if err := t.Write(out); err != nil {
		return nil, fmt.Errorf("diskimage: %s: %w", s.Out, err)
	}
	for _, p := range parts {
		if err := splice(out, p.file, p.offset, p.size); err != nil {
			return nil, err
		}
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("diskimage: %s: %w", s.Out, err)
	}
	return t.Partitions, nil
}

// splice copies file (at most size bytes) into out at offset, skipping
// blocks of zeros.
func splice(out *os.File, file string, offset, size int64) error {
	in, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("diskimage: %w", err)
	}
	defer in.Close()
	buf := make([]byte, 1<<20)
	zero := make([]byte, 64<<10)
	for pos := int64(0); pos < size; {
		n, err := in.ReadAt(buf[:min(int64(len(buf)), size-pos)], pos)
		for i := 0; i < n; i += len(zero) {
			chunk := buf[i:min(i+len(zero), n)]
			if bytes.Equal(chunk, zero[:len(chunk)]) {
				continue
			}
			if _, werr := out.WriteAt(chunk, offset+pos+int64(i)); werr != nil {
				return fmt.Errorf("diskimage: writing %s into %s: %w", file, out.Name(), werr)
			}
		}
		pos += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("diskimage: reading %s: %w", file, err)
		}
	}
	return nil
}

// compressZstd writes src zstd-compressed to dst, single-threaded so the
// bytes do not depend on the machine, and hashes the result.
func compressZstd(src, dst string) (File, error) {
	in, err := os.Open(src)
	if err != nil {
		return File{}, fmt.Errorf("diskimage: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return File{}, fmt.Errorf("diskimage: %w", err)
	}
	defer out.Close()
	z, err := zstd.NewWriter(out, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return File{}, fmt.Errorf("diskimage: zstd: %w", err)
	}
	if _, err := io.Copy(z, in); err != nil {
		z.Close()
		return File{}, fmt.Errorf("diskimage: compressing %s: %w", src, err)
	}
	if err := z.Close(); err != nil {
		return File{}, fmt.Errorf("diskimage: compressing %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return File{}, fmt.Errorf("diskimage: %s: %w", dst, err)
	}
	return describe(dst)
}
