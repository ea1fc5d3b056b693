package dirtar

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
)

func TestReadGivesBackWhatWriteTook(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{"a": "alpha", "db/000001.sst": "table", "blobs/sha256/ab/abcd": "blob"}
	for name, content := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "dir.tar.gz")
	if err := Write(tarball, src); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Read(tarball, dst); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(b) != content {
			t.Errorf("%s: %q, %v; want %q", name, b, err, content)
		}
		if st, _ := os.Stat(filepath.Join(dst, name)); st == nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode not kept: %v", name, st)
		}
	}
	if st, err := os.Stat(filepath.Join(dst, "empty")); err != nil || !st.IsDir() {
		t.Errorf("the empty directory: %v", err)
	}
}

// A name climbing out of the target is not written anywhere but inside.
func TestReadKeepsEveryFileInsideItsDir(t *testing.T) {
	tarball := filepath.Join(t.TempDir(), "evil.tar.gz")
	f, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	body := []byte("x")
	for _, name := range []string{"../../escaped", "/abs"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	zw.Close()
	f.Close()
	parent := t.TempDir()
	dst := filepath.Join(parent, "a", "b")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Read(tarball, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(parent, "escaped")); err == nil {
		t.Fatal("a ../ name was written outside the target")
	}
	if _, err := os.Stat(filepath.Join(dst, "escaped")); err != nil {
		t.Errorf("../../escaped should land inside as escaped: %v", err)
	}
}
