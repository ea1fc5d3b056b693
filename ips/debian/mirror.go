package debian

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// ErrNoMirror: the apt configuration names no archive for the suite.
var ErrNoMirror = errors.New("debian: no Debian archive configured for the suite")

// Source is one archive entry of an apt configuration.
type Source struct {
	URI        string
	Suites     []string
	Components []string
	File       string // where it was read
}

// FindMirror answers the first archive URI of the apt configuration
// under aptDir (normally /etc/apt) that carries suite with component
// main, as `deb` (not deb-src): sources.list first, then
// sources.list.d/*.list and *.sources in name order, as apt reads them.
// The archive is never written into code: the machine's own setting
// (a local mirror, a proxy, a snapshot) is what a build uses.
func FindMirror(aptDir, suite string) (string, error) {
	srcs, err := ReadSources(aptDir)
	if err != nil {
		return "", err
	}
	for _, s := range srcs {
		if slices.Contains(s.Suites, suite) && slices.Contains(s.Components, "main") {
			return s.URI, nil
		}
	}
	return "", fmt.Errorf("%w: %q has no deb entry for suite %q with component main in %d entries", ErrNoMirror, aptDir, suite, len(srcs))
}

// ReadSources reads every enabled `deb` entry with an http, https or
// file URI under aptDir.
func ReadSources(aptDir string) ([]Source, error) {
	files := []string{filepath.Join(aptDir, "sources.list")}
	more, err := filepath.Glob(filepath.Join(aptDir, "sources.list.d", "*"))
	if err != nil {
		return nil, fmt.Errorf("debian: %s: %w", aptDir, err)
	}
	sort.Strings(more)
	files = append(files, more...)
	var out []Source
	for _, f := range files {
		var srcs []Source
		var err error
		switch {
		case strings.HasSuffix(f, ".sources"):
			srcs, err = readDeb822(f)
		case strings.HasSuffix(f, ".list"):
			srcs, err = readOneLine(f)
		default:
			continue // apt ignores other names too (.disabled, .save)
		}
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, srcs...)
	}
	return out, nil
}

// readOneLine parses the one-line format:
// deb [ option=value ... ] uri suite [component ...]
func readOneLine(path string) ([]Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Source
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "deb" {
			continue
		}
		fields = fields[1:]
		if len(fields) > 0 && strings.HasPrefix(fields[0], "[") {
			// options: up to the field that ends with "]"
			for len(fields) > 0 {
				last := strings.HasSuffix(fields[0], "]")
				fields = fields[1:]
				if last {
					break
				}
			}
		}
		if len(fields) < 2 {
			return nil, fmt.Errorf("debian: %s:%d: a deb line needs a URI and a suite", path, n)
		}
		if !usableURI(fields[0]) {
			continue
		}
		out = append(out, Source{URI: fields[0], Suites: fields[1:2], Components: fields[2:], File: path})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("debian: %s: %w", path, err)
	}
	return out, nil
}

// readDeb822 parses the deb822 format (sources.list(5)): stanzas of
// Field: value lines separated by blank lines, values continued on
// lines that start with a space, # comments.
func readDeb822(path string) ([]Source, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Source
	stanza := map[string]string{}
	last := ""
	flush := func() {
		defer func() { stanza, last = map[string]string{}, "" }()
		if len(stanza) == 0 || !slices.Contains(strings.Fields(stanza["types"]), "deb") {
			return
		}
		if e := strings.ToLower(strings.TrimSpace(stanza["enabled"])); e == "no" || e == "false" {
			return
		}
		for _, u := range strings.Fields(stanza["uris"]) {
			if usableURI(u) {
				out = append(out, Source{URI: u, Suites: strings.Fields(stanza["suites"]),
					Components: strings.Fields(stanza["components"]), File: path})
			}
		}
	}
	for n, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("debian: %s:%d: a continuation line outside a field", path, n+1)
			}
			stanza[last] += " " + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("debian: %s:%d: %q is not a Field: value line", path, n+1, line)
			}
			last = strings.ToLower(strings.TrimSpace(k))
			stanza[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return out, nil
}

// usableURI: debootstrap fetches http, https and file archives.
func usableURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https" || u.Scheme == "file") && (u.Host != "" || u.Scheme == "file")
}
