package diskspace

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"osim/internal/clock"
)

// fakeFS is a filesystem of free bytes that the ballast file takes from
// and gives back to, as a real one would.
type fakeFS struct {
	dir  string
	free atomic.Int64
	read chan struct{} // if set, gets a value after every reading
}

func (f *fakeFS) statfs(string) (int64, error) {
	if f.read != nil {
		defer func() { f.read <- struct{}{} }()
	}
	free := f.free.Load()
	if fi, err := os.Stat(filepath.Join(f.dir, BallastName)); err == nil {
		free -= fi.Size()
	}
	return free, nil
}

func newFake(t *testing.T, free int64) *fakeFS {
	f := &fakeFS{dir: t.TempDir()}
	f.free.Store(free)
	return f
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestWritesAreRefusedBelowTheReserveAndAcceptedWhenSpaceComesBack(t *testing.T) {
	f := newFake(t, 100<<20)
	clk := clock.NewFake(time.Unix(0, 0))
	g := New(f.dir, 10<<20, Options{Statfs: f.statfs, Clock: clk, Logger: quiet()})
	if err := g.Check(50 << 20); err != nil {
		t.Fatalf("50 MiB of 100 with a 10 MiB reserve: %v", err)
	}
	err := g.Check(95 << 20)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrInsufficient) {
		t.Fatalf("95 MiB of 100: %v, want an *Error wrapping ErrInsufficient", err)
	}
	if msg := err.Error(); !strings.Contains(msg, f.dir) || !strings.Contains(msg, "100.0 MiB free") {
		t.Errorf("message %q should name the dir and the free space", msg)
	}
	f.free.Store(5 << 20) // someone filled the disk
	clk.Step(time.Second) // past MaxAge: the reading is not trusted
	if err := g.Check(0); err == nil {
		t.Fatal("a write with 5 MiB free and a 10 MiB reserve was accepted")
	}
	f.free.Store(200 << 20) // and freed it again: no restart needed
	clk.Step(time.Second)
	if err := g.Check(0); err != nil {
		t.Fatalf("after space came back: %v", err)
	}
}

// prepared is a Guard with an 8 MiB ballast and a 10 MiB reserve on 100
// MiB free, prepared.
func prepared(t *testing.T) (*fakeFS, *clock.Fake, *Guard) {
	f := newFake(t, 100<<20)
	clk := clock.NewFake(time.Unix(0, 0))
	g := New(f.dir, 10<<20, Options{Statfs: f.statfs, Ballast: 8 << 20, Logger: quiet(), Clock: clk})
	if low, err := g.Prepare(1 << 20); err != nil || low {
		t.Fatalf("Prepare with 100 MiB free: low %v err %v", low, err)
	}
	return f, clk, g
}

func TestBallastIsReleasedWhenTheDiskFillsAndMadeAgainWhenSpaceReturns(t *testing.T) {
	f, clk, g := prepared(t)
	path := filepath.Join(f.dir, BallastName)
	if fi, err := os.Stat(path); err != nil || fi.Size() != 8<<20 {
		t.Fatalf("ballast after Prepare: %v %v", fi, err)
	}
	f.free.Store(12 << 20) // 4 MiB left beside the ballast
	clk.Step(time.Second)
	if err := g.Check(0); err == nil {
		t.Fatal("write accepted with 4 MiB free")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("ballast still there with 4 MiB free: %v", err)
	}
	f.free.Store(30 << 20)
	clk.Step(time.Second)
	if err := g.Check(0); err != nil {
		t.Fatalf("30 MiB free, no ballast: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("ballast not made again with 30 MiB free: %v", err)
	}
}

func TestWatchReleasesTheBallastWhileNothingWrites(t *testing.T) {
	f, clk, g := prepared(t)
	path := filepath.Join(f.dir, BallastName)
	f.read = make(chan struct{}, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { g.Watch(ctx, time.Second); close(done) }()
	defer func() { cancel(); <-done }()
	if err := clk.WaitPending(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.free.Store(12 << 20) // another process fills the disk: 4 MiB beside the ballast
	clk.Step(999 * time.Millisecond)
	select {
	case <-f.read:
		t.Fatal("Watch read before its interval")
	default:
	}
	clk.Step(time.Millisecond)
	select {
	case <-f.read:
	case <-ctx.Done():
		t.Fatal("Watch did not read after its interval")
	}
	g.mu.Lock() // Watch tends under the lock: it is done once we have it
	g.mu.Unlock()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("ballast still there with 4 MiB free: %v", err)
	}
}

func TestPrepareUsesALeftoverBallastAndRefusesAStartWithoutRoom(t *testing.T) {
	f := newFake(t, 20<<20)
	if err := os.WriteFile(filepath.Join(f.dir, BallastName), make([]byte, 6<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	f.free.Store(8 << 20) // 2 MiB free beside the earlier run's ballast
	g := New(f.dir, 10<<20, Options{Statfs: f.statfs, Ballast: 6 << 20, Logger: quiet()})
	low, err := g.Prepare(4 << 20)
	if err != nil || !low {
		t.Fatalf("Prepare should release the ballast, start read-only: low %v err %v", low, err)
	}
	f.free.Store(1 << 20)
	g = New(f.dir, 10<<20, Options{Statfs: f.statfs, Ballast: 6 << 20, Logger: quiet()})
	if _, err := g.Prepare(4 << 20); err == nil || !strings.Contains(err.Error(), "1.0 MiB free") {
		t.Fatalf("Prepare with 1 MiB free: %v, want a refusal naming the free space", err)
	}
}

// TestChecksNearTheReserveDoNotReadOnEveryCall: while the disk is nearly
// full, each refused write (a DHCP flood's) trusts a reading for a tenth
// of MaxAge instead of calling statfs again; a write that names its size,
// or one the last reading would let through, still reads afresh.
func TestChecksNearTheReserveDoNotReadOnEveryCall(t *testing.T) {
	f := newFake(t, 5<<20)
	reads := 0
	statfs := func(dir string) (int64, error) { reads++; return f.statfs(dir) }
	clk := clock.NewFake(time.Unix(0, 0))
	g := New(f.dir, 10<<20, Options{Statfs: statfs, Clock: clk, Logger: quiet(), MaxAge: time.Second})
	for range 1000 {
		if g.Check(0) == nil {
			t.Fatal("a write with 5 MiB free and a 10 MiB reserve was accepted")
		}
	}
	if reads != 1 {
		t.Fatalf("1000 checks at one instant read statfs %d times, want 1", reads)
	}
	clk.Step(100 * time.Millisecond)
	g.Check(0)
	g.Check(1)
	if reads != 3 {
		t.Fatalf("after a tenth of MaxAge and a sized check: %d reads, want 3", reads)
	}
	f.free.Store(15 << 20) // some space back, still near the reserve...
	clk.Step(100 * time.Millisecond)
	if err := g.Check(0); err != nil {
		t.Fatalf("with 15 MiB free: %v", err)
	}
	f.free.Store(5 << 20) // ...and a fill right after is seen by the next write
	if g.Check(0) == nil {
		t.Fatal("a write accepted on a reading taken before the disk filled")
	}
}
