package initramfs

import (
	"fmt"
	"github.com/klauspost/compress/gzip"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Compression of an initramfs. The kernel unpacks what it was built for
// (CONFIG_RD_GZIP, CONFIG_RD_ZSTD).
const (
	Gzip = "gzip"
	Zstd = "zstd"
)

// Compressions lists what Write accepts.
var Compressions = []string{Gzip, Zstd}

// Ext is the file name extension of a compression (".gz", ".zst").
func Ext(compression string) string {
	if compression == Zstd {
		return ".zst"
	}
	return ".gz"
}

// Write writes a compressed with compression. The gzip header carries no
// name and no time; zstd runs single-threaded, so both are deterministic.
func Write(w io.Writer, a *Archive, compression string) error {
	var zw io.WriteCloser
	switch compression {
	case Gzip:
		g, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		zw = g
	case Zstd:
		z, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
		if err != nil {
			return fmt.Errorf("initramfs: zstd: %w", err)
		}
		zw = z
	default:
		return fmt.Errorf("initramfs: compression %q is not one of %s", compression, strings.Join(Compressions, ", "))
	}
	if _, err := a.WriteTo(zw); err != nil {
		zw.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("initramfs: finishing %s: %w", compression, err)
	}
	return nil
}

// KernelSupports reports whether the kernel built with config (a
// /boot/config-RELEASE file) unpacks an initramfs compressed so
// (CONFIG_RD_GZIP=y, CONFIG_RD_ZSTD=y).
func KernelSupports(config, compression string) (bool, error) {
	b, err := os.ReadFile(config)
	if err != nil {
		return false, fmt.Errorf("initramfs: kernel config: %w", err)
	}
	key := "CONFIG_RD_" + strings.ToUpper(compression) + "=y"
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == key {
			return true, nil
		}
	}
	return false, nil
}
