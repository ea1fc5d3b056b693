package debian

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeApt lays out an apt configuration directory: file name → content.
func writeApt(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The archives are made up (.test is reserved): no test names a real mirror.
func TestFindMirrorReadsTheSuitesArchiveFromEitherFormat(t *testing.T) {
	deb822 := `Types: deb
# a comment between fields
URIs: http://archive.example.test/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example.test/debian-security
Suites: bookworm-security
Components: main
`
	cases := []struct {
		name  string
		files map[string]string
		suite string
		want  string
	}{
		{"deb822", map[string]string{"sources.list.d/debian.sources": deb822}, "bookworm", "http://archive.example.test/debian"},
		{"deb822 second suite of a stanza", map[string]string{"sources.list.d/debian.sources": deb822}, "bookworm-updates", "http://archive.example.test/debian"},
		{"deb822 second stanza", map[string]string{"sources.list.d/debian.sources": deb822}, "bookworm-security", "http://security.example.test/debian-security"},
		{"one-line", map[string]string{"sources.list": "# comment\ndeb http://one.example.test/debian bookworm main\n"}, "bookworm", "http://one.example.test/debian"},
		{"one-line with options", map[string]string{"sources.list": "deb [arch=amd64 signed-by=/k.gpg] https://opt.example.test/debian bookworm main # tail\n"},
			"bookworm", "https://opt.example.test/debian"},
		{"sources.list before sources.list.d", map[string]string{
			"sources.list":                  "deb http://first.example.test/debian bookworm main\n",
			"sources.list.d/debian.sources": deb822}, "bookworm", "http://first.example.test/debian"},
		{"deb-src and other suites skipped", map[string]string{"sources.list": "deb-src http://src.example.test/debian bookworm main\n" +
			"deb http://old.example.test/debian bullseye main\ndeb http://new.example.test/debian bookworm main\n"}, "bookworm", "http://new.example.test/debian"},
		{"without main skipped", map[string]string{"sources.list": "deb http://nf.example.test/debian bookworm non-free\n" +
			"deb http://main.example.test/debian bookworm main non-free\n"}, "bookworm", "http://main.example.test/debian"},
		{"disabled stanza skipped", map[string]string{"sources.list.d/a.sources": "Types: deb\nURIs: http://off.example.test/d\nSuites: bookworm\nComponents: main\nEnabled: no\n",
			"sources.list.d/b.sources": "Types: deb deb-src\nURIs: http://on.example.test/d\nSuites: bookworm\nComponents: main\n"}, "bookworm", "http://on.example.test/d"},
		{"other file names ignored", map[string]string{"sources.list.d/x.list.disabled": "deb http://dis.example.test/d bookworm main\n",
			"sources.list.d/y.list": "deb http://en.example.test/d bookworm main\n"}, "bookworm", "http://en.example.test/d"},
		{"cdrom skipped", map[string]string{"sources.list": "deb cdrom:[Debian 12]/ bookworm main\ndeb file:/srv/mirror bookworm main\n"}, "bookworm", "file:/srv/mirror"},
		{"continuation lines", map[string]string{"sources.list.d/c.sources": "Types: deb\nURIs:\n http://cont.example.test/d\nSuites: trixie\n bookworm\nComponents: main\n"},
			"bookworm", "http://cont.example.test/d"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := FindMirror(writeApt(t, c.files), c.suite)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("FindMirror(%s) = %q, want %q", c.suite, got, c.want)
			}
		})
	}
}

func TestFindMirrorSaysWhenNoArchiveCarriesTheSuite(t *testing.T) {
	dir := writeApt(t, map[string]string{"sources.list": "deb http://a.example.test/debian bullseye main\n"})
	_, err := FindMirror(dir, "bookworm")
	if !errors.Is(err, ErrNoMirror) || !strings.Contains(err.Error(), "bookworm") {
		t.Errorf("err = %v, want ErrNoMirror naming the suite", err)
	}
	if _, err := FindMirror(t.TempDir(), "bookworm"); !errors.Is(err, ErrNoMirror) {
		t.Errorf("an empty apt directory: err = %v, want ErrNoMirror", err)
	}
}

func TestFindMirrorRefusesMalformedFiles(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"deb line without suite":    {"sources.list": "deb http://a.example.test/debian\n"},
		"deb822 line without colon": {"sources.list.d/a.sources": "Types deb\nURIs: http://a.example.test/d\n"},
		"deb822 stray continuation": {"sources.list.d/a.sources": " http://a.example.test/d\n"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FindMirror(writeApt(t, files), "bookworm")
			if err == nil || errors.Is(err, ErrNoMirror) {
				t.Fatalf("err = %v, want a parse error", err)
			}
			for f := range files {
				if !strings.Contains(err.Error(), filepath.Base(f)) {
					t.Errorf("error %q does not name %s", err, f)
				}
			}
		})
	}
}
