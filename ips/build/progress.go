package build

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Progress shows long steps (debootstrap, compression, upload): on a
// terminal a bar redrawn in place, elsewhere one plain line per step
// when it ends. A nil *Progress shows nothing.
type Progress struct {
	w   io.Writer
	tty bool
	// Now is the clock (tests set it); redraws are at most every 100 ms.
	Now func() time.Time
}

// NewProgress writes to w; tty says whether w is a terminal.
func NewProgress(w io.Writer, tty bool) *Progress {
	return &Progress{w: w, tty: tty, Now: time.Now}
}

// IsTerminal says whether f is a terminal (TCGETS answers).
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Step is one running step.
type Step struct {
	p           *Progress
	name        string
	total, done int64
	start, last time.Time
	mu          sync.Mutex
}

// Step starts a step of total bytes (0: unknown, shown as elapsed time).
func (p *Progress) Step(name string, total int64) *Step {
	if p == nil {
		return nil
	}
	now := p.Now()
	s := &Step{p: p, name: name, total: total, start: now}
	s.draw(now)
	return s
}

// Add counts n more bytes done.
func (s *Step) Add(n int64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done += n
	if now := s.p.Now(); now.Sub(s.last) >= 100*time.Millisecond {
		s.draw(now)
	}
}

// Write counts len(b) bytes: a Step is an io.Writer for io.TeeReader.
func (s *Step) Write(b []byte) (int, error) {
	s.Add(int64(len(b)))
	return len(b), nil
}

// Done ends the step with its outcome.
func (s *Step) Done(err error) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.p.Now().Sub(s.start).Round(100 * time.Millisecond)
	what := "done"
	if err != nil {
		what = "failed"
	}
	size := ""
	if s.done > 0 {
		size = ", " + mib(s.done)
	}
	cr := ""
	if s.p.tty {
		cr = "\r\x1b[K"
	}
	fmt.Fprintf(s.p.w, "%s%s: %s in %v%s\n", cr, s.name, what, d, size)
}

func (s *Step) draw(now time.Time) {
	s.last = now
	if !s.p.tty {
		return
	}
	el := now.Sub(s.start).Round(time.Second)
	if s.total <= 0 {
		fmt.Fprintf(s.p.w, "\r\x1b[K%s: %v %s", s.name, el, mib(s.done))
		return
	}
	const width = 30
	frac := min(float64(s.done)/float64(s.total), 1)
	n := int(frac * width)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < n {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(s.p.w, "\r\x1b[K%s [%s] %3.0f%% %s of %s %v", s.name, bar, frac*100, mib(s.done), mib(s.total), el)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// reader counts what passes through r (Seek keeps the count right for
// a resumed upload).
type reader struct {
	r io.ReadSeeker
	s *Step
}

func (r reader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.s.Add(int64(n))
	return n, err
}

func (r reader) Seek(off int64, whence int) (int64, error) { return r.r.Seek(off, whence) }
