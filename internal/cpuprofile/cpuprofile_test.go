package cpuprofile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStartWritesAProfileAndEmptyPathWritesNothing: the file holds a
// gzip-compressed pprof profile once stopped; no path, no file.
func TestStartWritesAProfileAndEmptyPathWritesNothing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cpu.prof")
	stop, err := Start(p)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	b, err := os.ReadFile(p)
	if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile %s: %d bytes, err %v; want gzip data", p, len(b), err)
	}
	stop, err = Start("")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := Start(filepath.Join(t.TempDir(), "missing", "cpu.prof")); err == nil {
		t.Fatal("a profile in a missing folder: no error")
	}
}
