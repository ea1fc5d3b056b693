package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"osim/controlplane/api"
)

// pageNames are the templates/*.html files that are whole pages; each is
// parsed with layout.html and parts.html.
var pageNames = []string{"signin", "overview", "targets", "target", "reimage", "batch", "images", "image",
	"bootservers", "events", "tokens", "error", "rollouts", "rollout"}

var funcs = template.FuncMap{
	// when renders a time for the <time> element: UTC text, RFC 3339 for
	// the browser to show in its zone (console.js), UTC on hover.
	"when": func(t time.Time) map[string]string {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return map[string]string{"ISO": t.Format(time.RFC3339), "UTC": t.Format("2006-01-02 15:04:05 UTC")}
	},
	"join": strings.Join,
	// pathEscape makes an id one path segment of a link: an id a boot
	// server named cannot point the link at another page.
	"pathEscape": url.PathEscape,
	"labels":     labelString,
	"sorted": func(m map[string]string) [][2]string {
		out := make([][2]string, 0, len(m))
		for k, v := range m {
			out = append(out, [2]string{k, v})
		}
		sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
		return out
	},
	"pct": func(n, total int) int {
		if total <= 0 {
			return 0
		}
		return n * 100 / total
	},
	"bytes": humanBytes,
	// mbps shows a rate in bytes/s as MB/s.
	"mbps": func(b float64) string { return fmt.Sprintf("%.0f MB/s", b/1e6) },
	"add":  func(a, b int) int { return a + b },
	// stat shows one of a boot server's heartbeat stats: a count, or
	// bytes with a unit when the name says bytes; "–" when not reported.
	"stat": func(m map[string]float64, name string) string {
		v, ok := m[name]
		if !ok {
			return "–"
		}
		if strings.Contains(name, "bytes") {
			return humanBytes(int64(v))
		}
		return fmt.Sprintf("%.0f", v)
	},
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func labelString(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[name] = t
	}
	if _, err := fs.Stat(staticFS, "static/htmx.min.js"); err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	return pages, nil
}

// view is what every page template sees.
type view struct {
	Page    string
	Title   string
	Session *sessionView
	Flash   string
	Error   string
	Data    any
}

// sessionView is the signed-in user as templates see it: never the secret.
type sessionView struct {
	Name, Role, TokenID, CSRF string
	CanChange, Admin          bool
}

func viewOf(s *session) *sessionView {
	if s == nil {
		return nil
	}
	return &sessionView{Name: s.name, Role: s.role, TokenID: s.tokenID, CSRF: s.csrf,
		CanChange: s.canChange(), Admin: s.role == api.RoleAdmin}
}

// render executes page into a buffer first, so a template error is a 500
// and never half a page. ?fragment=1 renders only the page's "live" block.
func (c *Console) render(w http.ResponseWriter, r *http.Request, page string, s *session, data any) {
	v := view{Page: page, Session: viewOf(s), Data: data}
	if m, ok := data.(map[string]any); ok {
		if e, ok := m["Error"].(string); ok {
			v.Error = e
		}
		if t, ok := m["Title"].(string); ok {
			v.Title = t
		}
	}
	name := "layout"
	if r.URL.Query().Get("fragment") != "" && c.pages[page].Lookup("live") != nil {
		name = "live"
	} else {
		v.Flash = c.sessions.takeFlash(s) // a whole page shows it, once
	}
	var b bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&b, name, v); err != nil {
		c.log.Error("console: render", "page", page, "err", err)
		http.Error(w, "console: the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}

// failed renders the error page for an API error (its code and message).
func (c *Console) failed(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code, msg := apiError(err)
	if code == 499 {
		return
	}
	if code < 400 || code > 599 {
		code = http.StatusBadGateway
	}
	w.WriteHeader(code)
	c.render(w, r, "error", s, map[string]any{"Title": http.StatusText(code), "Error": msg, "Code": code})
}
