package mdb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"osim/controlplane/api"
	"osim/internal/clock"
)

// testClock is a Fake that also moves 1 ms on every Now, so the store's
// stamps are distinct and ordered.
type testClock struct {
	mu sync.Mutex
	*clock.Fake
}

func newTestClock(start time.Time) *testClock { return &testClock{Fake: clock.NewFake(start)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Step(time.Millisecond)
	return c.Fake.Now()
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openTest(t testing.TB, opts ...func(*Options)) (*DB, string) {
	t.Helper()
	dir := t.TempDir()
	o := Options{Clock: newTestClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), Logger: quietLogger()}
	for _, f := range opts {
		f(&o)
	}
	d, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d, dir
}

func mac(i int) string {
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
}

func spec(i int, site string) api.TargetSpec {
	return api.TargetSpec{Hostname: fmt.Sprintf("host%d", i), MACs: []string{mac(i)}, Arch: "efi-x64", Site: site,
		Labels: map[string]string{"rack": fmt.Sprintf("r%d", i%3)}}
}

func mustTargets(t testing.TB, d *DB, site string, from, n int) []api.Target {
	t.Helper()
	var specs []api.TargetSpec
	for i := from; i < from+n; i++ {
		specs = append(specs, spec(i, site))
	}
	ts, err := d.CreateTargets(context.Background(), specs)
	if err != nil {
		t.Fatalf("CreateTargets: %v", err)
	}
	return ts
}

func shaOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func upload(t testing.TB, d *DB, content string) api.ImageFile {
	t.Helper()
	b := []byte(content)
	sha := shaOf(b)
	st, err := d.WriteBlob(context.Background(), sha, int64(len(b)), 0, bytes.NewReader(b))
	if err != nil || !st.Complete {
		t.Fatalf("WriteBlob: %+v %v", st, err)
	}
	return api.ImageFile{SHA256: sha, Size: int64(len(b))}
}

func osImage(t testing.TB, d *DB, name string) api.Image {
	t.Helper()
	k := upload(t, d, "kernel of "+name)
	k.Name, k.Role = "vmlinuz", api.RoleKernel
	in := upload(t, d, "initrd of "+name)
	in.Name, in.Role = "initrd.img", api.RoleInitrd
	im, err := d.CreateImage(context.Background(), api.ImageSpec{Name: name, Version: "1", Kind: api.KindOS,
		Files: []api.ImageFile{k, in}, Cmdline: "console=ttyS0"})
	if err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	return im
}

func bootImage(t testing.TB, d *DB, name string) api.Image {
	t.Helper()
	f := upload(t, d, "ipxe of "+name)
	f.Name, f.Role, f.Arch = "ipxe.efi", api.RoleNBP, "efi-x64"
	im, err := d.CreateImage(context.Background(), api.ImageSpec{Name: name, Version: "1", Kind: api.KindBoot, Files: []api.ImageFile{f}})
	if err != nil {
		t.Fatalf("CreateImage boot: %v", err)
	}
	return im
}

// wantErr fails unless err wraps want and mentions every word.
func wantErr(t testing.TB, err, want error, words ...string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("err %q does not mention %q", err, w)
		}
	}
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func rev(t testing.TB, d *DB) uint64 {
	t.Helper()
	r, err := d.Revision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// allChanges reads every change for site after since.
func allChanges(t testing.TB, d *DB, site string, since uint64) ([]api.Change, uint64) {
	t.Helper()
	var out []api.Change
	for {
		r, err := d.Changes(context.Background(), site, since, 1000)
		if err != nil {
			t.Fatalf("Changes(%s, %d): %v", site, since, err)
		}
		out = append(out, r.Changes...)
		if r.Revision == since {
			return out, since
		}
		since = r.Revision
	}
}
