package blockdev

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"osim/internal/clock"
)

func TestCopyWritesEveryByteAndSizeReadsIt(t *testing.T) {
	img := bytes.Repeat([]byte("0123456789abcdef"), (BufferBytes*2+12345)/16)
	f, err := os.Create(filepath.Join(t.TempDir(), "dev"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := Copy(context.Background(), f, bytes.NewReader(img), CopyOptions{})
	if err != nil || n != int64(len(img)) {
		t.Fatalf("wrote %d, %v", n, err)
	}
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, img) {
		t.Error("file differs from the image")
	}
	if sz, err := Size(f); err != nil || sz != int64(len(img)) {
		t.Errorf("Size = %d, %v", sz, err)
	}
}

// gate hands out one piece per receive on next, so the test decides when
// the copy moves.
type gate struct {
	next chan []byte
}

func (g *gate) Read(p []byte) (int, error) {
	b, ok := <-g.next
	if !ok {
		return 0, io.EOF
	}
	return copy(p, b), nil
}

func TestProgressIsReportedOnTheClock(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	f, _ := os.Create(filepath.Join(t.TempDir(), "dev"))
	defer f.Close()
	var mu sync.Mutex
	var seen []Progress
	g := &gate{next: make(chan []byte)}
	done := make(chan error)
	go func() {
		_, err := Copy(context.Background(), f, g, CopyOptions{Clock: clk, Every: 5 * time.Second, OnProgress: func(p Progress) {
			mu.Lock()
			seen = append(seen, p)
			mu.Unlock()
		}})
		done <- err
	}()
	clk.WaitPending(context.Background(), 1)
	clk.Step(4 * time.Second)
	mu.Lock()
	if len(seen) != 0 {
		t.Errorf("progress before 5 s: %+v", seen)
	}
	mu.Unlock()
	clk.Step(time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(g.next)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0].Elapsed != 5*time.Second {
		t.Errorf("progress %+v, want one at 5s", seen)
	}
}
