package harness

import (
	"strings"
	"testing"
)

func TestInsertInSectionKeepsEarlierRunsAndOtherSections(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"new file gets a title and the section", "",
			"# Benchmark results\n\nAppended by the bench targets; newest run last in each section.\n\n## bench-tftp\n\nRUN\n"},
		{"section appended after other sections", "# R\n\n## bench-dhcp\n\nold\n",
			"# R\n\n## bench-dhcp\n\nold\n\n## bench-tftp\n\nRUN\n"},
		{"run added at the end of its section", "# R\n\n## bench-tftp\n\nold\n\n## bench-dhcp\n\nx\n",
			"# R\n\n## bench-tftp\n\nold\n\nRUN\n\n## bench-dhcp\n\nx\n"},
		{"run added at the end of the last section", "# R\n\n## bench-tftp\n\nold\n",
			"# R\n\n## bench-tftp\n\nold\n\nRUN\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := insertInSection(tt.doc, Section, "RUN\n"); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestNotesSayWhenWindowsizeWasIgnored(t *testing.T) {
	c := Cell{Kind: Single, Blksize: 1468, Window: 16}
	o := Outcome{OACK: true, Echoed: []string{"blksize", "tsize"}, GotBlk: 1468, GotWindow: 1, Runs: []RunStats{{OK: 1}}}
	got := strings.Join(notes(o, c), "; ")
	if !strings.Contains(got, "n/a: ignores windowsize → lockstep") {
		t.Errorf("notes %q lack the windowsize finding", got)
	}
}

func TestNotesSayWhenBlksizeWasLowered(t *testing.T) {
	c := Cell{Kind: Single, Blksize: 8192}
	o := Outcome{OACK: true, Echoed: []string{"blksize"}, GotBlk: 2263, GotWindow: 1, Runs: []RunStats{{OK: 1}}}
	if got := strings.Join(notes(o, c), "; "); !strings.Contains(got, "blksize 8192→2263") {
		t.Errorf("notes %q lack the blksize finding", got)
	}
}

func TestSingleCellHeadlineIsTheMedianRun(t *testing.T) {
	o := Outcome{Runs: []RunStats{{MBps: 30, CPUS: 3}, {MBps: 10, CPUS: 1}, {MBps: 20, CPUS: 2, Failed: 1, Clients: 1}}}
	summarizeRuns(&o, Cell{Kind: Single})
	if o.MBps != 20 || o.CPUS != 2 || o.Failed != 1 {
		t.Errorf("headline %.0f MB/s %.0f s CPU %d failed, want 20, 2, 1", o.MBps, o.CPUS, o.Failed)
	}
}

func TestBurstHeadlineIsTheAggregateOfTheBursts(t *testing.T) {
	o := Outcome{Runs: []RunStats{{Bytes: 2e6, WallS: 1, CPUS: 1}, {Bytes: 4e6, WallS: 1, CPUS: 2}}}
	summarizeRuns(&o, Cell{Kind: Burst})
	if o.MBps != 3 || o.CPUS != 3 {
		t.Errorf("headline %.1f MB/s %.1f s CPU, want 3 and 3", o.MBps, o.CPUS)
	}
}
