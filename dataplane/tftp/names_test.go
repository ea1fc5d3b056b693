package tftp

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCleanNameNormalisesAndRefuses(t *testing.T) {
	ok := map[string]string{
		"pxelinux.0":             "pxelinux.0",
		"/pxelinux.0":            "pxelinux.0",
		"//boot//x64/wdsnbp.com": "boot/x64/wdsnbp.com",
		`\boot\x64\wdsnbp.com`:   "boot/x64/wdsnbp.com",
		"./a/./b":                "a/b",
		"..a/b..":                "..a/b..",
	}
	for in, want := range ok {
		got, err := CleanName(in)
		if err != nil || got != want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	refused := []string{"..", "../etc/passwd", "a/../../b", `a\..\..\b`, "/..", "a/..", "a\x00b", strings.Repeat("a", 256)}
	for _, in := range refused {
		if _, err := CleanName(in); !errors.Is(err, ErrAccessDenied) {
			t.Errorf("CleanName(%q) = %v, want ErrAccessDenied", in, err)
		}
	}
	if _, err := CleanName(strings.Repeat("a", 255)); err != nil {
		t.Errorf("a 255-byte name was refused: %v", err)
	}
	if _, err := CleanName("/"); !errors.Is(err, ErrFileNotFound) {
		t.Errorf("CleanName(/) = %v, want ErrFileNotFound", err)
	}
}

func TestFolderResolverRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "boot", "x64"), 0o755)
	os.WriteFile(filepath.Join(root, "boot", "x64", "wdsnbp.com"), []byte("nbp"), 0o644)
	os.WriteFile(filepath.Join(root, "target"), []byte("t"), 0o644)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "abs-out"))
	os.Symlink("../"+filepath.Base(outside)+"/secret", filepath.Join(root, "rel-out"))
	os.Symlink(outside, filepath.Join(root, "dir-out"))
	os.Symlink("target", filepath.Join(root, "inside"))

	r, err := NewFolderResolver(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, client := context.Background(), netip.MustParseAddrPort("10.0.0.7:2001")
	for name, want := range map[string]string{`\boot\x64\wdsnbp.com`: "nbp", "/target": "t", "inside": "t"} {
		f, err := r.Resolve(ctx, client, name)
		if err != nil {
			t.Errorf("Resolve(%q): %v", name, err)
			continue
		}
		b := make([]byte, f.Size())
		f.Read(b)
		f.Close()
		if string(b) != want {
			t.Errorf("Resolve(%q) read %q, want %q", name, b, want)
		}
	}
	for _, name := range []string{"abs-out", "rel-out", "dir-out/secret", "../secret", "boot", "boot/x64"} {
		if f, err := r.Resolve(ctx, client, name); !errors.Is(err, ErrAccessDenied) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Resolve(%q) = %v, want ErrAccessDenied", name, err)
		}
	}
	if _, err := r.Resolve(ctx, client, "missing"); !errors.Is(err, ErrFileNotFound) {
		t.Errorf("Resolve(missing) = %v, want ErrFileNotFound", err)
	}
}
