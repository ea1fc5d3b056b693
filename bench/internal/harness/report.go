package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Tables renders the report as Markdown: MB/s by setting and server, then
// every figure with the notes.
func (r *Report) Tables() string {
	var b strings.Builder
	mode := "full matrix"
	if r.Quick {
		mode = "quick matrix (-quick: smaller files, fewer clients; not comparable to full runs)"
	}
	fmt.Fprintf(&b, "### %s — %s\n\n%s, %.0f s.\n\n", r.Date, r.Machine, mode, r.Elapsed)

	// Pivot: settings in matrix order, servers in run order.
	var cells []string
	label := map[string]string{}
	byKey := map[[2]string]Outcome{}
	for _, o := range r.Outcomes {
		if _, ok := label[o.Cell]; !ok {
			cells = append(cells, o.Cell)
			label[o.Cell] = o.Label
		}
		byKey[[2]string{o.Cell, o.Server}] = o
	}
	fmt.Fprintf(&b, "MB/s (10^6 bytes/s; median of runs for single streams, aggregate for many clients):\n\n")
	fmt.Fprintf(&b, "| setting | %s |\n|---|%s\n", strings.Join(r.Peers, " | "), strings.Repeat("---:|", len(r.Peers)))
	for _, c := range cells {
		row := []string{label[c]}
		for _, p := range r.Peers {
			o, ok := byKey[[2]string{c, p}]
			row = append(row, pivotCell(o, ok))
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
	}

	fmt.Fprintf(&b, "\n| setting | server | MB/s | failed | server CPU s | RSS MiB | tree PSS MiB | notes |\n|---|---|---:|---:|---:|---:|---:|---|\n")
	for _, c := range cells {
		for _, p := range r.Peers {
			o, ok := byKey[[2]string{c, p}]
			if !ok {
				continue
			}
			if o.Skipped != "" {
				fmt.Fprintf(&b, "| %s | %s | – | – | – | – | – | skipped: %s |\n", o.Label, o.Server, escape(o.Skipped))
				continue
			}
			cost := "– | – | –"
			if o.Metered {
				cost = fmt.Sprintf("%.2f | %.1f | %.1f", o.CPUS, o.HWMMiB, o.PSSMiB)
			}
			fmt.Fprintf(&b, "| %s | %s | %.1f | %d/%d | %s | %s |\n",
				o.Label, o.Server, o.MBps, o.Failed, o.Clients, cost, escape(strings.Join(o.Notes, "; ")))
		}
	}
	fmt.Fprintf(&b, "\nPeers:\n\n")
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

func pivotCell(o Outcome, ok bool) string {
	switch {
	case !ok:
		return ""
	case o.Skipped != "":
		return "skipped"
	}
	s := fmt.Sprintf("%.1f", o.MBps)
	for _, n := range o.Notes {
		if strings.HasPrefix(n, "n/a:") {
			s += " (lockstep)"
		}
	}
	if o.Failed > 0 {
		s += fmt.Sprintf(" ✗%d", o.Failed)
	}
	return s
}

func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// WriteJSON writes the raw report to dir/tftp-<time>.json.
func (r *Report) WriteJSON(dir string) (string, error) {
	p := filepath.Join(dir, "tftp-"+r.Started.Format("20060102T150405Z")+".json")
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("harness: encode report: %w", err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return "", fmt.Errorf("harness: write %s: %w", p, err)
	}
	return p, nil
}

// Section is the heading the TFTP results go under in RESULTS.md.
const Section = "## bench-tftp"

// AppendResults adds the tables at the end of the "## bench-tftp" section
// of path, creating the file or the section when missing; earlier runs stay.
func (r *Report) AppendResults(path string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("harness: read %s: %w", path, err)
	}
	out := insertInSection(string(old), Section, r.Tables())
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		return fmt.Errorf("harness: write %s: %w", path, err)
	}
	return nil
}

// insertInSection puts block at the end of the section headed exactly by
// heading (up to the next "## " heading), appending the section if absent.
func insertInSection(doc, heading, block string) string {
	if doc == "" {
		doc = "# Benchmark results\n\nAppended by the bench targets; newest run last in each section.\n"
	}
	lines := strings.SplitAfter(doc, "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimRight(l, "\n") == heading {
			start = i
			break
		}
	}
	if start < 0 {
		return strings.TrimRight(doc, "\n") + "\n\n" + heading + "\n\n" + block
	}
	end := len(lines)
	for i := start + 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "## ") {
			end = i
			break
		}
	}
	before := strings.TrimRight(strings.Join(lines[:end], ""), "\n") + "\n\n" + block
	if end == len(lines) {
		return before
	}
	return before + "\n" + strings.Join(lines[end:], "")
}
