// Package blockdev writes an image to a block device: large aligned
// writes from a reader, progress on a clock, fsync, and the kernel told
// to re-read the partition table.
package blockdev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"osim/internal/clock"
)

// BufferBytes is the size of one write: large enough for any device's
// preferred I/O size and to keep the syscalls few.
const BufferBytes = 4 << 20

// align is the buffer's alignment in memory (page size; what O_DIRECT
// would need).
const align = 4096

// Progress is a snapshot during Copy.
type Progress struct {
	Written int64         // bytes written to the device
	Elapsed time.Duration // since Copy began
}

// Rate is the mean write rate in bytes per second.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Written) / p.Elapsed.Seconds()
}

// CopyOptions tune Copy.
type CopyOptions struct {
	Clock clock.Clock
	// Every is how often OnProgress is called (from another goroutine).
	Every      time.Duration
	OnProgress func(Progress)
}

// Copy writes all of src to dev from offset 0 in BufferBytes pieces and
// fsyncs. It answers the bytes written.
func Copy(ctx context.Context, dev *os.File, src io.Reader, o CopyOptions) (int64, error) {
	clk := clock.Or(o.Clock)
	start := clk.Now()
	var written atomic.Int64
	if o.OnProgress != nil && o.Every > 0 {
		tk, ch := clk.NewTicker(o.Every)
		done := make(chan struct{})
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			for {
				select {
				case now := <-ch:
					o.OnProgress(Progress{Written: written.Load(), Elapsed: now.Sub(start)})
				case <-done:
					return
				}
			}
		}()
		defer func() { tk.Stop(); close(done); <-exited }()
	}
	buf := alignedBuffer(BufferBytes)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return off, err
		}
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if _, err := dev.WriteAt(buf[:n], off); err != nil {
				return off, fmt.Errorf("blockdev: writing %s at byte %d: %w", dev.Name(), off, err)
			}
			off += int64(n)
			written.Store(off)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return off, rerr
		}
	}
	if err := dev.Sync(); err != nil {
		return off, fmt.Errorf("blockdev: fsync %s: %w", dev.Name(), err)
	}
	return off, nil
}

func alignedBuffer(n int) []byte {
	b := make([]byte, n+align)
	skip := (align - int(uintptr(unsafe.Pointer(&b[0]))%align)) % align
	return b[skip : skip+n]
}

// Size is the device's (or a regular file's) size in bytes.
func Size(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Mode().IsRegular() {
		return st.Size(), nil
	}
	var n uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n))); e != 0 {
		return 0, fmt.Errorf("blockdev: size of %s: %w", f.Name(), e)
	}
	return int64(n), nil
}

// SectorSize is the device's logical sector size (512 for a file).
func SectorSize(f *os.File) int64 {
	n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil || n <= 0 {
		return 512
	}
	return int64(n)
}

// RereadPartitions asks the kernel to re-read the partition table
// (BLKRRPART), retrying a few times while the device is busy (udev probing
// it after the writes). A regular file has nothing to re-read.
func RereadPartitions(f *os.File) error {
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		return nil
	}
	var err error
	for range 10 {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKRRPART, 0); e == 0 {
			return nil
		} else {
			err = e
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("blockdev: re-reading the partition table of %s: %w", f.Name(), err)
}
