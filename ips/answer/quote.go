package answer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"unicode/utf8"
)

// quoter quotes one value for its flavor's own syntax.
type quoter struct {
	name string
	fn   func(string) (string, error)
	// oneLine: every helper's output must stay on one line (preseed's
	// values, kickstart's commands).
	oneLine bool
}

var quoters = map[string]quoter{
	Preseed:     {name: "preseed", fn: preseedValue, oneLine: true},
	Kickstart:   {name: "ks", fn: ksWord, oneLine: true},
	Autoinstall: {name: "yaml", fn: yamlString},
}

// funcs are a flavor's helpers over d; missing answers {{param "x"}} for
// a parameter d lacks.
func funcs(flavor string, q quoter, d Data, missing func(string) (string, error)) template.FuncMap {
	line := func(name string, f func(string) (string, error)) func(string) (string, error) {
		return func(v string) (string, error) {
			out, err := f(v)
			if err != nil {
				return "", fmt.Errorf("%w: %s: %w", ErrValue, name, err)
			}
			if q.oneLine && strings.ContainsAny(out, "\r\n") {
				return "", fmt.Errorf("%w: %s: a %s value must stay on one line, and this one has a line break", ErrValue, name, flavor)
			}
			return out, nil
		}
	}
	return template.FuncMap{
		q.name: line(q.name, q.fn),
		"sh":   line("sh", shWord),
		"json": line("json", jsonString),
		"param": func(k string) (string, error) {
			if v, ok := d.Params[k]; ok {
				return v, nil
			}
			return missing(k)
		},
		"statusCurl": func(phase, msg string) (string, error) { return statusCommand(d, "curl", phase, msg) },
		"statusWget": func(phase, msg string) (string, error) { return statusCommand(d, "wget", phase, msg) },
	}
}

// checkText refuses invalid UTF-8 and control characters other than tab:
// none belongs in a value a template prints through a helper.
func checkText(s string, allowNewline bool) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	for i, c := range s {
		if c == '\t' || allowNewline && c == '\n' {
			continue
		}
		if c < 0x20 || c == 0x7f || 0x80 <= c && c < 0xa0 {
			return fmt.Errorf("control character %U at byte %d", c, i)
		}
	}
	return nil
}

// preseedValue is a debconf-set-selections value: the rest of its line,
// so no line break, and no trailing backslash (it would join the next
// line). Leading and trailing blanks are trimmed by the parser, so they
// are refused rather than silently lost.
func preseedValue(v string) (string, error) {
	if err := checkText(v, false); err != nil {
		return "", err
	}
	if strings.HasSuffix(v, `\`) {
		return "", fmt.Errorf("a trailing backslash would join the next line")
	}
	if strings.TrimSpace(v) != v {
		return "", fmt.Errorf("leading or trailing blanks would be dropped")
	}
	return v, nil
}

// ksWord double-quotes v for kickstart's command lines, which Anaconda
// splits with Python's shlex (POSIX mode): inside double quotes only the
// backslash and the double quote are escaped.
func ksWord(v string) (string, error) {
	if err := checkText(v, false); err != nil {
		return "", err
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(v) + `"`, nil
}

// yamlString is v as a YAML double-quoted scalar: a JSON string is one
// (YAML 1.2 is a superset of JSON), and its escapes cover every control
// character, so no value can start a new key or list item.
func yamlString(v string) (string, error) {
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("not valid UTF-8")
	}
	return jsonString(v)
}

func jsonString(v string) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// shWord single-quotes v for a POSIX shell: nothing inside single quotes
// is special, and a single quote is closed, escaped and reopened.
func shWord(v string) (string, error) {
	if err := checkText(v, true); err != nil {
		return "", err
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'", nil
}

// statusCommand is a shell command that POSTs {"phase","message"} to the
// status URL with the order's bearer token: curl (Anaconda, subiquity) or
// wget (debian-installer's GNU Wget; busybox's wget takes the same long
// options). It fails the command on an HTTP error, so an installer that
// treats a failed late command as fatal shows it.
func statusCommand(d Data, tool, phase, msg string) (string, error) {
	switch phase {
	case "installing", "done", "failed":
	default:
		return "", fmt.Errorf("%w: status%s: phase %q, want installing, done or failed", ErrValue, strings.ToUpper(tool[:1])+tool[1:], phase)
	}
	if err := checkText(msg, false); err != nil {
		return "", fmt.Errorf("%w: status message: %w", ErrValue, err)
	}
	if d.StatusURL == "" || d.Token == "" {
		return "", fmt.Errorf("%w: status%s: the order has no status URL or token", ErrValue, tool)
	}
	body, _ := json.Marshal(map[string]string{"phase": phase, "message": msg})
	words := []string{}
	auth, ctype := "Authorization: Bearer "+d.Token, "Content-Type: application/json"
	switch tool {
	case "curl":
		words = append(words, "curl", "-fsS", "--retry", "3", "-X", "POST", "-H", auth, "-H", ctype, "--data", string(body), d.StatusURL)
	default:
		words = append(words, "wget", "-q", "-O", "/dev/null", "--header="+auth, "--header="+ctype, "--post-data="+string(body), d.StatusURL)
	}
	out := make([]string, len(words))
	for i, w := range words {
		if isPlainWord(w) {
			out[i] = w
			continue
		}
		q, err := shWord(w)
		if err != nil {
			return "", fmt.Errorf("%w: status command: %w", ErrValue, err)
		}
		out[i] = q
	}
	return strings.Join(out, " "), nil
}

// isPlainWord: a word the shell takes as is (the tool's own options).
func isPlainWord(w string) bool {
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_./=:,", c) >= 0) {
			return false
		}
	}
	return w != ""
}
