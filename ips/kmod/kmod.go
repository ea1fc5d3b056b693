// Package kmod picks kernel modules out of a /lib/modules/RELEASE tree:
// the modules asked for that exist, their dependency closure from
// modules.dep and their "pre" soft dependencies from modules.softdep
// (ext4 needs crc32c through the crypto API, which no dependency names),
// in load order, dependencies first.
package kmod

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Tree is a parsed modules directory.
type Tree struct {
	Dir     string
	files   map[string]string   // module name → path relative to Dir
	deps    map[string][]string // module name → dependency names, as modules.dep lists them
	softPre map[string][]string // module name → softdep pre names (modules or aliases)
	aliases map[string][]string // exact alias → module names
	builtin map[string]bool
}

// Name is the module name of a file path: basename without .ko[.xz|.zst|.gz],
// dashes as underscores (what the kernel and modprobe compare).
func Name(file string) string {
	b := path.Base(file)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// Open reads dir's modules.dep (required), modules.softdep, modules.alias
// and modules.builtin (optional).
func Open(dir string) (*Tree, error) {
	t := &Tree{Dir: dir, files: map[string]string{}, deps: map[string][]string{}, softPre: map[string][]string{}, aliases: map[string][]string{}, builtin: map[string]bool{}}
	if err := eachLine(filepath.Join(dir, "modules.dep"), true, t.depLine); err != nil {
		return nil, err
	}
	if err := eachLine(filepath.Join(dir, "modules.softdep"), false, t.softdepLine); err != nil {
		return nil, err
	}
	if err := eachLine(filepath.Join(dir, "modules.alias"), false, t.aliasLine); err != nil {
		return nil, err
	}
	if err := eachLine(filepath.Join(dir, "modules.builtin"), false, func(l string) error {
		t.builtin[Name(l)] = true
		return nil
	}); err != nil {
		return nil, err
	}
	return t, nil
}

func eachLine(file string, required bool, fn func(string) error) error {
	f, err := os.Open(file)
	if os.IsNotExist(err) && !required {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kmod: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if err := fn(l); err != nil {
			return fmt.Errorf("kmod: %s line %d: %w", file, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("kmod: reading %s: %w", file, err)
	}
	return nil
}

// depLine parses "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko ...".
func (t *Tree) depLine(l string) error {
	mod, deps, ok := strings.Cut(l, ":")
	if !ok || mod == "" {
		return fmt.Errorf("%q is not \"module: deps\"", l)
	}
	n := Name(mod)
	t.files[n] = mod
	for _, d := range strings.Fields(deps) {
		t.deps[n] = append(t.deps[n], Name(d))
	}
	return nil
}

// softdepLine parses "softdep ext4 pre: crypto-crc32c post: ...".
func (t *Tree) softdepLine(l string) error {
	f := strings.Fields(l)
	if len(f) < 2 || f[0] != "softdep" {
		return nil
	}
	n, pre := Name(f[1]), false
	for _, w := range f[2:] {
		switch w {
		case "pre:":
			pre = true
		case "post:":
			pre = false
		default:
			if pre {
				t.softPre[n] = append(t.softPre[n], w)
			}
		}
	}
	return nil
}

// aliasLine keeps "alias NAME MODULE" lines without wildcards.
func (t *Tree) aliasLine(l string) error {
	f := strings.Fields(l)
	if len(f) == 3 && f[0] == "alias" && !strings.ContainsAny(f[1], "*?[") {
		t.aliases[f[1]] = append(t.aliases[f[1]], Name(f[2]))
	}
	return nil
}

// Selection is what Resolve picked.
type Selection struct {
	// Files are module paths relative to Dir in load order.
	Files []string
	// Missing names asked for that are neither a module nor built in.
	Missing []string
	// Builtin names asked for that the kernel has built in.
	Builtin []string
}

// Resolve returns the modules named (as files to load, dependencies
// first, each once), skipping built-in ones and noting missing ones.
// A soft dependency naming an alias brings every module with that alias
// (crypto-crc32c: crc32c_intel and crc32c_generic); loading one that does
// not fit the CPU fails harmlessly.
func (t *Tree) Resolve(names []string) Selection {
	var s Selection
	seen := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, p := range t.softPre[n] {
			for _, m := range t.lookup(p) {
				visit(m)
			}
		}
		for _, d := range t.deps[n] {
			visit(d)
		}
		s.Files = append(s.Files, t.files[n])
	}
	for _, raw := range names {
		n := Name(raw)
		switch {
		case t.files[n] != "":
			visit(n)
		case t.builtin[n]:
			s.Builtin = append(s.Builtin, n)
		default:
			s.Missing = append(s.Missing, raw)
		}
	}
	return s
}

// lookup maps a module name or exact alias to module names that exist.
func (t *Tree) lookup(name string) []string {
	if n := Name(name); t.files[n] != "" {
		return []string{n}
	}
	var out []string
	for _, m := range t.aliases[name] {
		if t.files[m] != "" {
			out = append(out, m)
		}
	}
	return out
}
